"""Serial port transport over pyserial-asyncio-fast.

This is the only module that imports `serial_asyncio_fast`, so a later move to another
serial library touches one file. Prefer stable ``/dev/serial/by-id/...`` paths: a USB
module that re-enumerates may come back as another ``ttyUSBn``.

A port that vanishes mid-write is an event a device lives through (an unplugged or
re-enumerating USB module), not a bug: the library's transport would report the failed
write to the event loop's exception handler ("Fatal write error on serial transport", with a
traceback, on every unplug). Ours hands it to the protocol instead, where it becomes the
`PortLost` the runtime handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from typing import Any

import serial
import serial_asyncio_fast

from quecmqtt.errors import PortLost
from quecmqtt.transport.base import Transport

READ_SIZE = 4096
HIGH_WATER = 256 * 1024  # bytes read but not taken before reading pauses


class _QuietSerialTransport(serial_asyncio_fast.SerialTransport):
    """The library's transport, with a failed read or write told to the protocol rather than
    to the loop's exception handler."""

    _lost_called = False

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on serial transport") -> None:
        protocol = self._protocol
        if isinstance(protocol, _PortProtocol):
            protocol.port_failed(exc)
        self._abort(exc)

    async def _call_connection_lost(self, exc: Exception | None, *, flush: bool) -> None:
        # A read error (close) and a write error or our close (abort) may both schedule
        # this; the library's version must run once (it clears the protocol).
        if self._lost_called:
            return
        self._lost_called = True
        await super()._call_connection_lost(exc, flush=flush)


class _PortProtocol(asyncio.Protocol):
    """Bytes read wait here for `read()`; a loss is kept for the next `read()`/`write()`."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.lost: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._wakeup = asyncio.Event()
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self.closed = asyncio.get_running_loop().create_future()  # the port's fd is released

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wakeup.set()
        if len(self.buffer) > HIGH_WATER and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def port_failed(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        self._wake_all()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.lost is None:
            self.lost = exc if exc is not None else EOFError("end of stream")
        self._wake_all()
        if not self.closed.done():
            self.closed.set_result(None)

    def _wake_all(self) -> None:
        self._wakeup.set()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # flow control of our writes
    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self) -> None:
        if self._drained is not None and not self._drained.done():
            await self._drained

    async def read(self) -> bytes:
        while not self.buffer:
            if self.lost is not None:
                raise self.lost
            self._wakeup.clear()
            await self._wakeup.wait()
        data = bytes(self.buffer[: READ_SIZE * 16])
        del self.buffer[: len(data)]
        if self._paused and len(self.buffer) < HIGH_WATER // 4 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data


class SerialTransport(Transport):
    """A serial port (or any pyserial URL). `rtscts` enables hardware flow control; it
    is off by default because many boards do not wire RTS/CTS and a pty has no lines."""

    def __init__(
        self, url: str, baudrate: int = 115200, *, rtscts: bool = False, exclusive: bool = True, **options: Any
    ) -> None:
        self.url = url
        self.name = url
        self.baudrate = baudrate
        self.rtscts = rtscts
        self.exclusive = exclusive
        self.options = options
        self._protocol: _PortProtocol | None = None
        self._transport: asyncio.Transport | None = None

    @property
    def marker_key(self) -> str | None:
        """A device path names one module: the runtime keeps its data-entry marker by it."""
        return None if "://" in self.url else os.path.abspath(self.url)

    async def open(self) -> None:
        await self.close()
        loop = asyncio.get_running_loop()
        protocol = _PortProtocol()
        kwargs = dict(baudrate=self.baudrate, rtscts=self.rtscts, exclusive=self.exclusive, **self.options)
        try:
            if "://" in self.url:
                transport, _ = await serial_asyncio_fast.create_serial_connection(
                    loop, lambda: protocol, self.url, **kwargs
                )
            else:
                port = await loop.run_in_executor(None, partial(serial.serial_for_url, self.url, **kwargs))
                transport = _QuietSerialTransport(loop, protocol, port)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortLost(f"cannot open {self.url}: {exc}") from exc
        self._protocol, self._transport = protocol, transport

    async def read(self) -> bytes:
        protocol = self._protocol
        if protocol is None:
            raise PortLost(f"{self.url} is not open")
        try:
            return await protocol.read()
        except EOFError:
            raise PortLost(f"{self.url}: end of stream") from None
        except (serial.SerialException, OSError) as exc:
            raise PortLost(f"{self.url}: {exc}") from exc

    async def write(self, data: bytes) -> None:
        protocol, transport = self._protocol, self._transport
        if protocol is None or transport is None:
            raise PortLost(f"{self.url} is not open")
        if protocol.lost is not None or transport.is_closing():
            raise PortLost(f"{self.url}: {protocol.lost or 'closed'}")
        transport.write(data)  # tries at once; a failure reaches protocol.lost
        await protocol.drain()
        if protocol.lost is not None:
            raise PortLost(f"{self.url}: {protocol.lost}")

    async def close(self) -> None:
        transport, protocol = self._transport, self._protocol
        self._transport = self._protocol = None
        if transport is None or protocol is None:
            return
        try:
            # abort, not close: every write was drained already, and a graceful close would
            # wait (tcdrain) for a module that may never read again
            if not transport.is_closing():
                transport.abort()
        except (serial.SerialException, OSError, RuntimeError):
            return  # the port is already gone; closing it is all we wanted
        # until the fd is released: an exclusive reopen would fail while it is held
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(protocol.closed)
