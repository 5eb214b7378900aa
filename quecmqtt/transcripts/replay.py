"""Replay a transcript as if it were the module.

What the driver writes must equal the transcript's ``>`` stream (compared as one byte
stream: how the driver splits its writes does not matter). After the bytes of a ``>``
record have all been written, the ``<`` records that follow it are delivered, re-cut as
asked. A mismatch raises `ReplayMismatch` with the record's line number and an
expected-vs-actual excerpt; the same error is raised by later reads and writes.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Mapping

from quecmqtt.errors import QuecError
from quecmqtt.secret import Secret
from quecmqtt.transcripts.format import Chunking, Placeholder, Record, Transcript, escape, rechunk
from quecmqtt.transport.base import Transport

CONTEXT = 40


class ReplayMismatch(QuecError, AssertionError):
    """The driver did not write what the transcript recorded (an AssertionError too, for tests)."""


class ReplayTransport(Transport):
    reopenable = False

    def __init__(
        self,
        transcript: Transcript | str,
        *,
        secrets: Mapping[str, str | bytes | Secret] | None = None,
        chunking: Chunking = "whole",
        seed: int = 0,
        max_chunk: int = 64,
    ) -> None:
        self.transcript = Transcript.load(transcript) if isinstance(transcript, str) else transcript
        self.name = f"replay:{self.transcript.path or '<memory>'}"
        self.secrets = {k: _as_bytes(v) for k, v in (secrets or {}).items()}
        self.chunking: Chunking = chunking
        self.max_chunk = max_chunk
        self._rng = random.Random(seed)
        self._records = self.transcript.records
        self._next = 0  # index of the next record to process
        self._host_pos = 0  # bytes of the current host record already matched
        self._host_seen = bytearray()  # those bytes, for the mismatch report
        self._queue: deque[bytes] = deque()
        self._arrived = asyncio.Event()
        self._failure: ReplayMismatch | None = None
        self.written = bytearray()  # everything the driver wrote, for diagnostics

    # -- Transport ----------------------------------------------------------------------

    async def open(self) -> None:
        self._deliver_module_records()

    async def read(self) -> bytes:
        while True:
            if self._failure is not None:
                raise self._failure
            if self._queue:
                chunk = self._queue.popleft()
                return chunk
            self._arrived.clear()
            await self._arrived.wait()

    async def write(self, data: bytes) -> None:
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Match host bytes against the transcript (what `write` does, for callers that
        are not a runtime); raises ReplayMismatch."""
        if self._failure is not None:
            raise self._failure
        self.written += data
        for i in range(len(data)):
            self._match_byte(data, i)
            if self._failure is not None:
                self._arrived.set()
                raise self._failure

    async def close(self) -> None:
        self._queue.clear()

    # -- inspection -------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when every record has been matched or delivered."""
        return self._next >= len(self._records) and not self._queue

    def assert_complete(self) -> None:
        """Raise `ReplayMismatch` unless the driver wrote every host record."""
        if self._failure is not None:
            raise self._failure
        for record in self._records[self._next :]:
            if record.is_host:
                expected = record.resolve(self.secrets)
                raise ReplayMismatch(
                    f"{self._where(record)}: the driver stopped before writing this record\n"
                    f"  expected: {escape(expected[self._host_pos :])[: CONTEXT * 3]}"
                )

    # -- matching -----------------------------------------------------------------------

    def _match_byte(self, data: bytes, i: int) -> None:
        record = self._current_host_record()
        if record is None:
            self._failure = ReplayMismatch(
                f"{self._where(None)}: the transcript has no more host records, but the driver wrote\n"
                f"  actual:   {escape(data[i : i + CONTEXT * 3])}"
            )
            return
        want = self._expected_byte(record, self._host_pos)
        got = data[i]
        if want is not None and want != got:
            expected = record.resolve(self.secrets)
            start = max(0, self._host_pos - CONTEXT)
            actual = bytes(self._host_seen) + data[i : i + CONTEXT]
            self._failure = ReplayMismatch(
                f"{self._where(record)}: the driver wrote something else at byte {self._host_pos} of this record\n"
                f"  expected: {escape(expected[start : self._host_pos + CONTEXT])}\n"
                f"  actual:   {escape(actual[start : self._host_pos + CONTEXT])}\n"
                f"  {' ' * 10}{' ' * len(escape(expected[start : self._host_pos]))}^"
            )
            return
        self._host_pos += 1
        self._host_seen.append(got)
        if self._host_pos >= record.length:
            self._host_pos = 0
            self._host_seen.clear()
            self._next += 1
            self._deliver_module_records()

    def _current_host_record(self) -> Record | None:
        while self._next < len(self._records):
            record = self._records[self._next]
            if record.is_host and record.length > 0:
                return record
            if record.is_host:  # an empty host record matches nothing
                self._next += 1
                continue
            self._deliver_module_records()
        return None

    def _expected_byte(self, record: Record, pos: int) -> int | None:
        """The byte at `pos`, or None where a placeholder with no given value accepts any."""
        for seg in record.segments:
            size = seg.length if isinstance(seg, Placeholder) else len(seg)
            if pos < size:
                if isinstance(seg, Placeholder):
                    value = self.secrets.get(seg.name)
                    return value[pos] if value is not None and pos < len(value) else None
                return seg[pos]
            pos -= size
        return None

    def _deliver_module_records(self) -> None:
        """Queue the module records that follow, up to the next host record."""
        run: list[bytes] = []
        while self._next < len(self._records) and not self._records[self._next].is_host:
            run.append(self._records[self._next].resolve(self.secrets, filler=b"x"))
            self._next += 1
        if run:
            self._queue.extend(rechunk(run, self.chunking, self._rng, self.max_chunk))
            self._arrived.set()

    def _where(self, record: Record | None) -> str:
        path = self.transcript.path or "<transcript>"
        if record is None:
            last = self._records[-1].line if self._records else 0
            return f"{path}:{last}"
        return f"{path}:{record.line}"


def _as_bytes(value: str | bytes | Secret) -> bytes:
    if isinstance(value, Secret):
        return value.reveal_bytes()
    return value.encode("utf-8") if isinstance(value, str) else value
