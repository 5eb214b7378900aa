"""Serial port transport over pyserial-asyncio-fast.

This is the only module that imports `serial_asyncio_fast`, so a later move to another
serial library touches one file. Prefer stable ``/dev/serial/by-id/...`` paths: a USB
module that re-enumerates may come back as another ``ttyUSBn``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import serial
import serial_asyncio_fast

from quecmqtt.errors import PortLost
from quecmqtt.transport.base import Transport

READ_SIZE = 4096


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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        await self.close()
        try:
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
                url=self.url, baudrate=self.baudrate, rtscts=self.rtscts, exclusive=self.exclusive, **self.options
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortLost(f"cannot open {self.url}: {exc}") from exc

    async def read(self) -> bytes:
        reader = self._reader
        if reader is None:
            raise PortLost(f"{self.url} is not open")
        try:
            data = await reader.read(READ_SIZE)
        except (serial.SerialException, OSError) as exc:
            raise PortLost(f"{self.url}: {exc}") from exc
        if not data:
            raise PortLost(f"{self.url}: end of stream")
        return data

    async def write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise PortLost(f"{self.url} is not open")
        try:
            writer.write(data)
            await writer.drain()
        except (serial.SerialException, OSError, RuntimeError) as exc:
            raise PortLost(f"{self.url}: {exc}") from exc

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        try:
            writer.close()
            await writer.wait_closed()
        except (serial.SerialException, OSError, RuntimeError):
            return  # the port is already gone; closing it is all we wanted
