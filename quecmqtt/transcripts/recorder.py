"""Record a session as a redacted transcript while passing bytes through.

Host writes are recorded at once: the runtime registers a command's secrets (and the
command line itself, for secrets of any length) with the shared `Redactor` *before* it
writes, so the record already shows ``{{password:40}}``. Module output is held back until
the runtime says the parser has turned it into events (`settle`): a read-back such as
``+QMTCFG: "aliauth",...``, a registration reply in a payload or an HTTP body, or a
multi-line echo teaches the redactor its secret only once it is complete. Each read stays
its own record, so read boundaries survive; reads a secret straddles are merged into one.

Module output that was still being parsed when the host wrote is recorded after that host
record (secrecy over order); replaying it gives the same events.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import IO

from quecmqtt.redact import Redactor
from quecmqtt.transcripts.format import HOST, MODULE, Placeholder, Record, Segment, TranscriptWriter
from quecmqtt.transport.base import Transport


def open_private(path: str | os.PathLike[str]) -> IO[str]:
    """A transcript for writing, readable by its owner only (0600, also when it existed): it
    is redacted, but what a module sent in a form no rule knew may still be in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


class RecorderTransport(Transport):
    def __init__(
        self,
        inner: Transport,
        target: str | os.PathLike[str] | IO[str],
        redactor: Redactor | None = None,
        *,
        comments: tuple[str, ...] = (),
        timestamps: bool = True,
    ) -> None:
        self.inner = inner
        self.name = f"record:{inner.name}"
        self.reopenable = inner.reopenable
        self.redactor = redactor if redactor is not None else Redactor()
        if isinstance(target, str | os.PathLike):
            self._file: IO[str] | None = open_private(target)
            out: IO[str] = self._file
        else:
            self._file = None
            out = target
        self._writer = TranscriptWriter(out, comments=comments or (f"recorded from {inner.name}",))
        self._timestamps = timestamps
        self._start: float | None = None
        self._held: list[tuple[bytes, float | None]] = []
        self._held_host: list[tuple[bytes, float | None]] = []
        self._module_base = 0  # offset of the first held module byte in all the module has sent
        self._module_extra: list[tuple[int, int, str]] = []  # (start, end, name) to hide, same offsets

    def _now(self) -> float | None:
        if not self._timestamps:
            return None
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        return loop.time() - self._start

    async def open(self) -> None:
        self._now()
        await self.inner.open()

    async def read(self) -> bytes:
        data = await self.inner.read()
        self._held.append((data, self._now()))
        return data

    async def write(self, data: bytes) -> None:
        self.settle_host(0)
        self._write_record(HOST, [(data, self._now())])
        await self.inner.write(data)

    async def pass_through(self, data: bytes) -> None:
        """Send host bytes now and record them at `settle_host`: a proxy sees a line typed byte by
        byte and knows its secret only once the line is complete."""
        self._held_host.append((data, self._now()))
        await self.inner.write(data)

    async def reopen(self) -> None:
        """The port was lost: keep the transcript open across the reopen."""
        self.settle_host(0)
        self.settle(0)
        await self.inner.reopen()
        self._writer.comment("port reopened")

    async def drop(self) -> None:
        self.settle_host(0)
        self.settle(0)
        await self.inner.drop()

    async def close(self) -> None:
        self.settle_host(0)
        self.settle(0)
        await self.inner.close()
        self.close_file()

    def close_file(self) -> None:
        """Close the transcript file this recorder opened (a given stream is the caller's)."""
        if self._file is not None and not self._file.closed:
            self._file.close()

    def settle(self, unsettled: int) -> None:
        """Write the held module output except the last `unsettled` bytes, which the
        parser still holds (a partial line, a payload, a body). Whole reads only."""
        base = self._module_base
        extra = [(s - base, e - base, name) for s, e, name in self._module_extra]
        self._held, written = self._settle(MODULE, self._held, unsettled, extra)
        self._module_base += written
        self._module_extra = [span for span in self._module_extra if span[1] > self._module_base]

    def settle_host(self, unsettled: int) -> None:
        """Write the host bytes held by `pass_through` except the last `unsettled` bytes (a
        command line still being typed). Whole writes only."""
        self._held_host, _ = self._settle(HOST, self._held_host, unsettled)

    @property
    def module_held(self) -> tuple[int, bytes]:
        """The module output not written yet, and the offset of its first byte in all the
        module has sent."""
        return self._module_base, b"".join(data for data, _ in self._held)

    def hide_module(self, start: int, end: int, name: str) -> None:
        """Hide module bytes [start, end) (offsets in all the module has sent) when they are
        written, whatever the redactor finds: a proxy uses it for an echo that a URC cut in
        two, which no whole-line template matches."""
        self._module_extra.append((start, end, name))

    def _settle(
        self,
        direction: str,
        held: list[tuple[bytes, float | None]],
        unsettled: int,
        extra: list[tuple[int, int, str]] | None = None,
    ) -> tuple[list[tuple[bytes, float | None]], int]:
        ready = sum(len(data) for data, _ in held) - unsettled
        count = done = 0
        for data, _ in held:
            if done + len(data) > ready:
                break
            done += len(data)
            count += 1
        if count:
            self._write_record(direction, held[:count], extra or [])
        return held[count:], done

    def comment(self, text: str) -> None:
        self.settle_host(0)
        self.settle(0)
        self._writer.comment(text)

    # -- redaction ----------------------------------------------------------------------

    def _write_record(
        self, direction: str, chunks: list[tuple[bytes, float | None]], extra: Sequence[tuple[int, int, str]] = ()
    ) -> None:
        joined = b"".join(d for d, _ in chunks)
        within = [(max(s, 0), min(e, len(joined)), name) for s, e, name in extra if s < len(joined) and e > 0]
        spans = _merge(self.redactor.spans(joined) + within)
        # chunk boundaries (offsets) that a secret straddles are not kept
        cut_points: list[int] = []
        offset = 0
        for data, _ in chunks[:-1]:
            offset += len(data)
            cut_points.append(offset)
        kept = {p for p in cut_points if not any(s < p < e for s, e, _ in spans)}
        start = offset = 0
        stamp: float | None = None
        for data, when in chunks:
            if offset == start:
                stamp = when
            offset += len(data)
            if offset in kept or offset == len(joined):
                self._emit(direction, joined[start:offset], start, spans, stamp)
                start = offset

    def _emit(
        self, direction: str, data: bytes, base: int, spans: list[tuple[int, int, str]], stamp: float | None
    ) -> None:
        if not data:
            return
        segments: list[Segment] = []
        pos = 0
        for s, e, name in spans:
            s, e = s - base, e - base
            if e <= 0 or s >= len(data):
                continue
            if s > pos:
                segments.append(data[pos:s])
            segments.append(Placeholder(name, e - s))
            pos = e
        if pos < len(data):
            segments.append(data[pos:])
        self._writer.write(Record(direction, tuple(segments), stamp))  # type: ignore[arg-type]


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Sorted, with overlapping spans joined."""
    merged: list[tuple[int, int, str]] = []
    for start, end, name in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, name))
    return merged
