"""A scripted module on a real pseudo-terminal, for runtime tests.

The driver opens a stable symlink to the pty slave with its real serial transport; the
test plays the module on the master: `expect` what the driver writes, `send` what a
module would answer. The pty is the emulator's `PtyPort`, which handles the pitfalls
measured in reference/test-infra.md (raw master, its own slave fd kept open, an unplug
that gives the driver a USB unplug's SerialException, a re-plug that re-points the link).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

from quecmqtt.at.events import Urc
from quecmqtt.runtime import Modem, State
from quecmqtt.wire.pty import PtyPort


class ScriptedPeer:
    def __init__(self, directory: Path, name: str = "ttyUSB2") -> None:
        self.link = directory / name
        self._port = PtyPort(self.link, self._on_data)  # the emulator's pty: same pitfalls handled
        self._buffer = bytearray()
        self._arrived: asyncio.Event | None = None
        self.received = bytearray()  # everything the driver ever wrote

    @property
    def path(self) -> str:
        return str(self.link)

    @property
    def plugged(self) -> bool:
        return self._port.plugged

    def plug(self) -> None:
        """Create a pty and point the link at its slave."""
        self._arrived = asyncio.Event()
        self._port.plug()

    def unplug(self) -> None:
        """Vanish like a USB module: close the master, remove the link."""
        self._port.unplug()

    def _on_data(self, data: bytes) -> None:
        self._buffer += data
        self.received += data
        assert self._arrived is not None
        self._arrived.set()

    async def expect(self, token: bytes, timeout: float = 3.0) -> bytes:
        """Wait until the driver has written `token`; consume and return everything up
        to and including it."""

        async def _wait() -> bytes:
            assert self._arrived is not None
            while True:
                at = self._buffer.find(token)
                if at >= 0:
                    out = bytes(self._buffer[: at + len(token)])
                    del self._buffer[: at + len(token)]
                    return out
                self._arrived.clear()
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"driver did not write {token!r}; it wrote {bytes(self._buffer)!r}") from None

    async def wait_received(self, count: int, timeout: float = 3.0) -> None:
        """Until the driver has written at least `count` bytes in all."""

        async def _wait() -> None:
            assert self._arrived is not None
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"driver wrote {len(self.received)} bytes, not {count}") from None

    async def expect_command(self, line: bytes, timeout: float = 3.0) -> bytes:
        return await self.expect(line + b"\r", timeout)

    @property
    def backlog(self) -> int:
        """Bytes sent but not yet taken by the pty."""
        return self._port.backlog

    def pending_input(self) -> bytes:
        return bytes(self._buffer)

    def send(self, data: bytes) -> None:
        """Queue bytes for the driver; written as the pty takes them (about 18 KiB fit
        at once), so a large burst never blocks the event loop the driver runs in."""
        self._port.write(data)

    async def answer(self, command: bytes, response: bytes, timeout: float = 3.0) -> None:
        """Expect `command` (a line, CR added) and send `response`."""
        await self.expect_command(command, timeout)
        self.send(response)

    async def serve_init(self, *, reconcile: bool = False) -> None:
        """Answer the driver's default start-up: AT, the MQTT layer's reconciliation when
        it was there before open, the init script."""
        await self.answer(b"AT", b"\r\nOK\r\n")
        if reconcile:
            await self.serve_reconcile()
        await self.answer(b"ATE0", b"\r\nOK\r\n")
        await self.answer(b"AT+CMEE=2", b"\r\nOK\r\n")

    async def serve_reconcile(self) -> None:
        """No MQTT client left open by an earlier process."""
        await self.answer(b"AT+QMTCONN?", b"\r\nOK\r\n")
        await self.answer(b"AT+QMTOPEN?", b"\r\nOK\r\n")

    def close(self) -> None:
        self.unplug()


_barriers = itertools.count()


async def settled(peer: ScriptedPeer, modem: Modem, timeout: float = 3.0) -> None:
    """Until the runtime has dealt with everything the peer sent so far: a URC sent now comes
    out of the reader after all of it (the port and the reader keep the order). The way to
    assert that something did *not* happen, without sleeping and hoping."""
    number = next(_barriers)
    with modem.subscribe("+QTESTBARRIER", maxsize=4) as events:
        peer.send(f"\r\n+QTESTBARRIER: {number}\r\n".encode())
        async with asyncio.timeout(timeout):
            while True:
                event = await events.get()
                if isinstance(event, Urc) and event.fields[:1] == (number,):
                    return


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Until `predicate()` holds (checked after each turn of the event loop, then less and less
    often up to every 20 ms), or fail after `timeout`. A deadline, not a guess: the test
    waits as long as the machine needs and no longer."""
    pause = 0.0
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(pause)
            pause = min(0.02, pause * 2 or 0.0005)


async def wait_state(modem: Modem, state: State, timeout: float = 3.0) -> None:
    """Until the runtime is in `state`."""
    async with asyncio.timeout(timeout):
        while modem.state is not state:
            await modem.supervisor.changed()
