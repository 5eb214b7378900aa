"""An in-memory port: the runtime on one side, a script playing the module on the other.

No file descriptor, no thread, no clock of its own: everything happens in the event loop, so
tests of time-outs, back-off and recovery can run under a virtual clock (a loop whose time
jumps to the next timer) and take no real time at all.

    port = MemoryPort()
    modem = Modem(port.transport)
    opening = asyncio.create_task(modem.open())
    await port.answer(b"AT", b"\\r\\nOK\\r\\n")
    ...
    port.unplug()          # the next read and write raise PortLost; reopening fails
    port.replug()          # reopening works again
"""

from __future__ import annotations

import asyncio

from quecmqtt.errors import PortLost
from quecmqtt.transport.base import Transport


class MemoryTransport(Transport):
    """The runtime's end of a `MemoryPort`."""

    def __init__(self, port: MemoryPort, *, reopenable: bool = True) -> None:
        self._port = port
        self.reopenable = reopenable
        self.name = "memory://module"
        self._open = False

    async def open(self) -> None:
        if not self._port.plugged:
            raise PortLost(f"cannot open {self.name}: unplugged")
        self._open = True
        self._port._to_host.clear()

    async def read(self) -> bytes:
        port = self._port
        while True:
            if not self._open or not port.plugged:
                raise PortLost(f"{self.name}: unplugged")
            if port._to_host:
                data = bytes(port._to_host)
                port._to_host.clear()
                return data
            port._host_wakeup.clear()
            await port._host_wakeup.wait()

    async def write(self, data: bytes) -> None:
        if not self._open or not self._port.plugged:
            raise PortLost(f"{self.name}: unplugged")
        self._port._from_host(data)

    async def close(self) -> None:
        self._open = False
        self._port._host_wakeup.set()


class MemoryPort:
    """The module's end: see what the runtime wrote, answer it."""

    def __init__(self) -> None:
        self.plugged = True
        self.received = bytearray()  # everything the runtime ever wrote
        self._buffer = bytearray()  # what `expect` has not consumed yet
        self._to_host = bytearray()
        self._host_wakeup = asyncio.Event()
        self._arrived = asyncio.Event()
        self.transport = MemoryTransport(self)

    def _from_host(self, data: bytes) -> None:
        self.received += data
        self._buffer += data
        self._arrived.set()

    def send(self, data: bytes) -> None:
        """Bytes from the module to the runtime."""
        if self.plugged:
            self._to_host += data
            self._host_wakeup.set()

    async def expect(self, token: bytes) -> bytes:
        """Until the runtime has written `token`; consume and return up to and including it."""
        while True:
            at = self._buffer.find(token)
            if at >= 0:
                out = bytes(self._buffer[: at + len(token)])
                del self._buffer[: at + len(token)]
                return out
            self._arrived.clear()
            await self._arrived.wait()

    async def answer(self, command: bytes, response: bytes) -> None:
        """Expect the command line `command` (CR added) and send `response`."""
        await self.expect(command + b"\r")
        self.send(response)

    def unplug(self) -> None:
        self.plugged = False
        self._to_host.clear()
        self._host_wakeup.set()

    def replug(self) -> None:
        self.plugged = True
