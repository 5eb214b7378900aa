"""A transcript served on a pseudo-terminal as a fake module: whatever opens the device must
write the transcript's host records (placeholders match any bytes of their length), and gets
its module records back. For testing a program that is not quecmqtt against a recorded
session, or quecmqtt itself across processes."""

from __future__ import annotations

import asyncio
import contextlib
import os

from quecmqtt.transcripts.replay import ReplayMismatch, ReplayTransport
from quecmqtt.wire.pty import PtyPort


class ReplayServer:
    def __init__(self, transcript: str, link: str | os.PathLike[str]) -> None:
        self.replay = ReplayTransport(transcript)
        self.pty = PtyPort(link, self._from_host)
        self.failure: ReplayMismatch | None = None
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()  # the pty is there

    @property
    def link(self) -> str:
        return str(self.pty.link)

    def _from_host(self, data: bytes) -> None:
        if self.failure is not None:
            return
        try:
            self.replay.feed(data)
        except ReplayMismatch as exc:
            self.failure = exc
        self._changed.set()

    async def run(self, stop: asyncio.Event, linger: float = 0.3) -> None:
        """Serve until the transcript is complete (then `linger` seconds for the host to read
        the last records), a mismatch (`failure` is set), or `stop`."""
        await self.replay.open()
        self.pty.plug()
        self.ready.set()
        pump = asyncio.create_task(self._pump())
        try:
            while not stop.is_set() and self.failure is None and not self.replay.done:
                self._changed.clear()
                waiter = asyncio.create_task(stop.wait())
                changed = asyncio.create_task(self._changed.wait())
                await asyncio.wait({waiter, changed}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                changed.cancel()
            if self.replay.done and self.failure is None:
                await asyncio.sleep(linger)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ReplayMismatch):
                await pump
            self.pty.unplug()

    async def _pump(self) -> None:
        with contextlib.suppress(ReplayMismatch):
            while True:
                data = await self.replay.read()
                self.pty.write(data)
                self._changed.set()
