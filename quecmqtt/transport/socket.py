"""``socket://host:port`` transport: a module (or an emulator) behind a TCP socket, e.g. a
serial server or an emulator in another container. It exercises none of the tty paths;
the pty stays the primary test transport."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from quecmqtt.errors import InvalidArgument, PortLost
from quecmqtt.transport.base import Transport

READ_SIZE = 4096


class SocketTransport(Transport):
    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "socket" or not parts.hostname or not parts.port:
            raise InvalidArgument(f"expected socket://HOST:PORT, got {url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.name = url
        self.connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        await self.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise PortLost(f"cannot connect to {self.name}: {exc}") from exc

    async def read(self) -> bytes:
        if self._reader is None:
            raise PortLost(f"{self.name} is not open")
        try:
            data = await self._reader.read(READ_SIZE)
        except OSError as exc:
            raise PortLost(f"{self.name}: {exc}") from exc
        if not data:
            raise PortLost(f"{self.name}: connection closed by the peer")
        return data

    async def write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise PortLost(f"{self.name} is not open")
        try:
            writer.write(data)
            await writer.drain()
        except OSError as exc:
            raise PortLost(f"{self.name}: {exc}") from exc

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            return  # already reset by the peer
