"""A scripted module on a real pseudo-terminal, for runtime tests.

The driver opens a stable symlink to the pty slave with its real serial transport; the
test plays the module on the master: `expect` what the driver writes, `send` what a
module would answer. Following the pitfalls measured in reference/test-infra.md: the
master is put in raw mode at once, the peer keeps its own slave fd open (otherwise reads
on the master fail with EIO while the driver has the port closed), and unplugging closes
the master and removes the link (the driver sees the same SerialException a USB unplug
gives); re-plugging makes a new pty and re-points the link atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path


class ScriptedPeer:
    def __init__(self, directory: Path, name: str = "ttyUSB2") -> None:
        self.link = directory / name
        self._master = -1
        self._slave = -1
        self._buffer = bytearray()
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.received = bytearray()  # everything the driver ever wrote
        self.plugged = False

    @property
    def path(self) -> str:
        return str(self.link)

    def plug(self) -> None:
        """Create a pty and point the link at its slave."""
        self._loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master, self._slave = master, slave
        os.set_blocking(master, False)
        self._outgoing = bytearray()
        tmp = self.link.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)
        self._loop.add_reader(master, self._on_readable)
        self.plugged = True

    def unplug(self) -> None:
        """Vanish like a USB module: close the master, remove the link."""
        if not self.plugged:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        self._loop.remove_writer(self._master)
        self._outgoing.clear()
        os.close(self._master)
        os.close(self._slave)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.plugged = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:
            data = b""
        if data:
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

    async def expect_command(self, line: bytes, timeout: float = 3.0) -> bytes:
        return await self.expect(line + b"\r", timeout)

    def pending_input(self) -> bytes:
        return bytes(self._buffer)

    def send(self, data: bytes) -> None:
        """Queue bytes for the driver; written as the pty takes them (about 18 KiB fit
        at once), so a large burst never blocks the event loop the driver runs in."""
        assert self._loop is not None
        if not self._outgoing:
            self._loop.add_writer(self._master, self._on_writable)
        self._outgoing += data
        self._on_writable()

    def _on_writable(self) -> None:
        try:
            written = os.write(self._master, self._outgoing)
        except BlockingIOError:
            return
        del self._outgoing[:written]
        if not self._outgoing and self._loop is not None:
            self._loop.remove_writer(self._master)

    async def answer(self, command: bytes, response: bytes, timeout: float = 3.0) -> None:
        """Expect `command` (a line, CR added) and send `response`."""
        await self.expect_command(command, timeout)
        self.send(response)

    async def serve_init(self, *, reconcile: bool = True) -> None:
        """Answer the driver's default start-up: AT, reconciliation, init script."""
        await self.answer(b"AT", b"\r\nOK\r\n")
        if reconcile:
            await self.answer(b"AT+QMTCONN?", b"\r\nOK\r\n")
            await self.answer(b"AT+QMTOPEN?", b"\r\nOK\r\n")
        await self.answer(b"ATE0", b"\r\nOK\r\n")
        await self.answer(b"AT+CMEE=2", b"\r\nOK\r\n")

    def close(self) -> None:
        self.unplug()
