"""A marker that outlives the process: "a data entry is open on this port".

After a fixed-length prompt (``> `` for a publish of ``<len>`` bytes, ``CONNECT`` for an
upload) the module counts the next ``<len>`` bytes as data, whoever sends them. If the
process dies between the prompt and the data, the next process's first bytes (``AT``,
ESC, ``AT+CMEE?``) would complete the entry and be published on the dead process's topic.
No byte can be taken back once the module has it, so the only safe thing is for the next
process not to send any before the entry is over.

So while an entry is open the runtime keeps a small record in shared memory (a file in
``/dev/shm`` mapped with mmap: setting and clearing it are memory writes, no system call
and no disk on the path of each publish). A process that opens the port first reads it; an
entry left open by someone else is waited out:

* a Ctrl-Z entry is cancelled at once with ESC (the manuals document ESC for it);
* an entry whose module-side time-out is known (an edit time-out a layer configured and
  passes as `entry_timeout`, or the input time the command table gives for an upload) is
  waited out until that time-out has passed, counted from when it opened;
* an entry without a known time-out is waited out for `unknown_wait` seconds (the longest
  documented edit time, 180 s) unless a reset hook can power-cycle the module first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

log = logging.getLogger("quecmqtt.runtime")

_FORMAT = struct.Struct("<4sBBBxIQQII")  # magic, version, state, kind, pid, token, opened ns, timeout ms, length
_MAGIC = b"QMEM"
_VERSION = 1
_UNKNOWN = 0xFFFFFFFF
_STATE = 5  # offset of the state byte
SIZE = 64


class EntryKind(IntEnum):
    COUNTED = 0  # ends after <length> bytes (or the module's time-out)
    CTRL_Z = 1  # ends with Ctrl-Z; ESC cancels it


@dataclass(frozen=True)
class OpenEntry:
    """An entry some process left open."""

    kind: EntryKind
    pid: int
    opened: float  # time.monotonic() when it opened (the clock is system-wide)
    timeout: float | None  # the module's own time-out, if known
    length: int

    @property
    def ends(self) -> float | None:
        """When the module has given the entry up by itself (time.monotonic())."""
        return None if self.timeout is None else self.opened + self.timeout


def marker_directory() -> Path:
    for candidate in (Path("/dev/shm"), Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"))):
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return candidate
    return Path(tempfile.gettempdir())


class EntryMarker:
    """The marker of one port. `attach()` maps it (call it off the event loop: it opens a
    file); `set`/`clear` are memory writes."""

    def __init__(self, port: str, directory: Path | None = None) -> None:
        digest = hashlib.sha256(os.path.abspath(port).encode()).hexdigest()[:16]
        self.path = (directory or marker_directory()) / f"quecmqtt-{digest}.entry"
        self.port = port
        self._map: mmap.mmap | None = None
        self._token = int.from_bytes(os.urandom(8), "little")

    def attach(self) -> OpenEntry | None:
        """Map the marker; return an entry that another process (or an earlier runtime in
        this one) left open, and forget it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        left = self._read()
        self._write(0, EntryKind.COUNTED, 0.0, None, 0)
        return left

    def _read(self) -> OpenEntry | None:
        assert self._map is not None
        magic, version, state, kind, pid, _token, opened, timeout, length = _FORMAT.unpack_from(self._map, 0)
        if magic != _MAGIC or version != _VERSION or state != 1:
            return None
        try:
            entry_kind = EntryKind(kind)
        except ValueError:
            entry_kind = EntryKind.COUNTED
        return OpenEntry(entry_kind, pid, opened / 1e9, None if timeout == _UNKNOWN else timeout / 1000, length)

    def _write(self, state: int, kind: EntryKind, opened: float, timeout: float | None, length: int) -> None:
        if self._map is None:
            return
        ms = _UNKNOWN if timeout is None else min(_UNKNOWN - 1, int(timeout * 1000))
        record = _FORMAT.pack(_MAGIC, _VERSION, 0, int(kind), os.getpid(), self._token, int(opened * 1e9), ms, length)
        self._map[: _FORMAT.size] = record
        self._map[_STATE : _STATE + 1] = bytes(
            [state]
        )  # the state byte last: a reader never sees half a record as open

    def set(self, kind: EntryKind, timeout: float | None, length: int) -> None:
        """An entry is open from now on (call it right before answering the prompt)."""
        self._write(1, kind, time.monotonic(), timeout, length)

    def clear(self) -> None:
        """The entry is over (its data written, or aborted)."""
        if self._map is not None:
            self._map[_STATE : _STATE + 1] = b"\x00"

    def left_open(self) -> OpenEntry | None:
        """The entry still marked open (a write that failed half-way), and forget it."""
        if self._map is None:
            return None
        entry = self._read()
        self.clear()
        return entry

    def detach(self) -> None:
        """Unmap; remove the file unless an entry is open (the next process must see it)."""
        if self._map is None:
            return
        open_entry = self._map[_STATE] == 1
        self._map.close()
        self._map = None
        if not open_entry:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
