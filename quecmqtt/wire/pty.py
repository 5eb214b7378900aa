"""The emulator's serial port: a pseudo-terminal behind a stable symlink.

Measured pitfalls this follows (reference/test-infra.md 2.1 to 2.4): the master is put in
raw mode at once (termios on the master acts on the slave: without it, what the module
writes before the driver opens the port is echoed back and mangled); the emulator keeps
its own slave fd open for the pty's lifetime (reads on the master fail with EIO while no
slave fd is open, so a driver closing and reopening would lose bytes); the driver gets a
symlink that re-plugging re-points atomically. Unplugging closes the master: a driver
then sees exactly the SerialException a USB unplug gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from pathlib import Path


class PtyPort:
    def __init__(self, link: str | os.PathLike[str], on_data: Callable[[bytes], None]) -> None:
        self.link = Path(link)
        self._on_data = on_data
        self._master = -1
        self._slave = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outgoing = bytearray()
        self.plugged = False

    @property
    def device(self) -> str:
        """The /dev/pts/N behind the link (changes when re-plugged)."""
        return os.ttyname(self._slave) if self.plugged else ""

    def plug(self) -> None:
        """A new pty behind the link. Refused (RuntimeError) while plugged: a plug needs an
        unplug first, as a USB device does; the link would otherwise look like another
        program's live pty."""
        if self.plugged:
            raise RuntimeError(f"{self.link} is plugged; unplug it first")
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        try:
            self._check_link()
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave = master, slave
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.{id(self):x}.tmp")  # ours alone
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)  # atomic: the link never dangles while plugged
        self._loop.add_reader(master, self._readable)
        self.plugged = True

    def _check_link(self) -> None:
        """Only a stale link may be replaced: one that dangles (its pty is gone). A file, a
        device node, a udev link (/dev/serial/by-id/...) or another emulator's live pty named
        by mistake is left alone."""
        if not self.link.parent.is_dir():
            raise FileNotFoundError(f"{self.link.parent}: no such directory for the link {self.link}")
        if self.link.is_symlink():
            if not self.link.exists():
                return
            target = os.readlink(self.link)
            raise FileExistsError(f"{self.link} is a live link to {target} (another program's?); it is left alone")
        if self.link.exists():
            raise FileExistsError(f"{self.link} exists and is not a link; it is left alone")

    def unplug(self) -> None:
        """Vanish like a USB device: the link dangles, the driver's port fails."""
        if not self.plugged:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        self._loop.remove_writer(self._master)
        self._outgoing.clear()
        os.close(self._master)
        os.close(self._slave)
        with contextlib.suppress(OSError):
            if self.link.is_symlink() and os.readlink(self.link).startswith("/dev/pts/"):
                self.link.unlink()
        self.plugged = False

    def write(self, data: bytes) -> None:
        """Queue bytes for the driver; never blocks the loop (a pty holds ~18 KiB)."""
        if not self.plugged or not data:
            return
        assert self._loop is not None
        if not self._outgoing:
            self._loop.add_writer(self._master, self._writable)
        self._outgoing += data
        self._writable()

    @property
    def backlog(self) -> int:
        return len(self._outgoing)

    def _writable(self) -> None:
        if not self._outgoing:
            return
        try:
            written = os.write(self._master, self._outgoing)
        except BlockingIOError:
            return
        except OSError:  # nobody reads (hang-up): keep it for later, like a full UART FIFO
            return
        del self._outgoing[:written]
        if not self._outgoing and self._loop is not None:
            self._loop.remove_writer(self._master)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:  # no slave open for a moment: nothing to read
            return
        if data:
            self._on_data(data)

    def close(self) -> None:
        self.unplug()
