"""Transports other than the pty: socket://, serial options, and reopen after loss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from quecmqtt.at import commands as C
from quecmqtt.errors import InvalidArgument, PortLost
from quecmqtt.modem import Modem, State
from quecmqtt.transport import open_transport
from quecmqtt.transport.serial import SerialTransport
from quecmqtt.transport.socket import SocketTransport
from tests.peer import ScriptedPeer, wait_state


class SocketModule:
    """A module behind a TCP socket (a serial server): answers AT, ATE0, CMEE, CSQ."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)
        try:
            while line := await reader.readuntil(b"\r"):
                if line == b"AT+CSQ\r":
                    writer.write(b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n")
                elif line.startswith((b"AT\r", b"ATE0\r", b"AT+CMEE=2\r", b"AT+QMT")):
                    writer.write(b"\r\nOK\r\n")  # no MQTT clients open: the reads answer OK alone
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def drop_all(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.connections:
            writer.close()
        await self.server.wait_closed()
        self.connections.clear()


@pytest_asyncio.fixture
async def socket_module() -> AsyncIterator[SocketModule]:
    module = SocketModule()
    await module.start()
    yield module
    if module.server is not None:
        module.server.close()


async def test_socket_transport_runs_commands_and_reopens_after_loss(socket_module: SocketModule) -> None:
    transport = open_transport(f"socket://127.0.0.1:{socket_module.port}")
    assert isinstance(transport, SocketTransport)
    async with Modem(transport, reopen_backoff=(0.02, 0.1)) as modem:
        assert (await modem.execute(C.CSQ())).fields("+CSQ") == [(17, 99)]
        generation = modem.generation
        await socket_module.drop_all()  # the serial server goes away
        await wait_state(modem, State.PORT_LOST)
        with pytest.raises(PortLost):
            await modem.execute(C.CSQ(), timeout=0.3)
        await socket_module.start(socket_module.port)  # and comes back on the same port
        await modem.wait_ready(5)
        assert modem.generation > generation
        assert (await modem.execute(C.CSQ())).fields("+CSQ") == [(17, 99)]


def test_socket_url_is_checked() -> None:
    with pytest.raises(InvalidArgument, match="socket://HOST:PORT"):
        SocketTransport("socket://nohost")


async def test_opening_a_missing_port_is_a_clear_port_lost(tmp_path: object) -> None:
    with pytest.raises(PortLost, match="cannot open"):
        await SerialTransport("/dev/does-not-exist-quecmqtt").open()


async def test_rts_cts_option_works_on_a_port_without_modem_lines(peer: ScriptedPeer) -> None:
    modem = Modem(SerialTransport(peer.path, rtscts=True), reconcile=False)
    opening = asyncio.create_task(modem.open())
    await peer.serve_init(reconcile=False)
    await opening
    try:
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 3,99\r\n\r\nOK\r\n")
        assert (await task).fields("+CSQ") == [(3, 99)]
    finally:
        await modem.close()
