"""The transcript file format (DESIGN section 7): read, write, re-chunk.

    # quecmqtt transcript 1
    # module: EC200U-CN  (comment lines start with '#')
    > AT+QMTOPEN=0,"iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com",1883\\r
    < \\r\\nOK\\r\\n
    <@0.512 \\r\\n+QMTOPEN: 0,0\\r\\n

``>`` is host to module, ``<`` module to host, ``@SECONDS`` the optional time since the
start. Records are separated by LF alone. Escapes: ``\\r \\n \\t \\\\``, ``\\xHH`` for other
control bytes and bytes that are not UTF-8, ``\\uHHHH`` for U+0085, U+2028, U+2029 (line
breaks to some editors), ``\\x20`` for a space ending a record, ``\\{`` for a ``{`` that would
otherwise start ``{{``. ``{{name:length}}`` stands for a secret of exactly that many bytes.
"""

from __future__ import annotations

import io
import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Literal

from quecmqtt.errors import TranscriptError

MAGIC = "# quecmqtt transcript 1"
_MAGIC_RE = re.compile(r"# quecmqtt transcript (\S+)")
HOST: Literal[">"] = ">"
MODULE: Literal["<"] = "<"
Direction = Literal[">", "<"]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A secret of exactly `length` bytes, written ``{{name:length}}``."""

    name: str
    length: int


Segment = bytes | Placeholder


@dataclass(frozen=True, slots=True)
class Record:
    direction: Direction
    segments: tuple[Segment, ...]
    time: float | None = None
    line: int = 0  # line number in the file it came from; 0 if built in memory

    @classmethod
    def of(cls, direction: Direction, data: bytes, time: float | None = None) -> Record:
        return cls(direction, (data,) if data else (), time)

    @property
    def is_host(self) -> bool:
        return self.direction == HOST

    @property
    def length(self) -> int:
        return sum(s.length if isinstance(s, Placeholder) else len(s) for s in self.segments)

    def resolve(self, secrets: Mapping[str, bytes] | None = None, filler: bytes = b"*") -> bytes:
        """The record's bytes, placeholders replaced by the given secret (which must have
        the recorded length) or by `filler` bytes."""
        out = bytearray()
        for seg in self.segments:
            if isinstance(seg, Placeholder):
                value = (secrets or {}).get(seg.name)
                if value is None:
                    out += (filler * seg.length)[: seg.length]
                elif len(value) != seg.length:
                    raise TranscriptError(
                        f"line {self.line}: secret {seg.name!r} has {len(value)} bytes, the record says {seg.length}"
                    )
                else:
                    out += value
            else:
                out += seg
        return bytes(out)


@dataclass
class Transcript:
    records: list[Record] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # header comments, without '# '
    path: str | None = None

    # -- reading ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Transcript:
        with open(path, encoding="utf-8", newline="") as fh:
            return cls.loads(fh.read(), path=str(path))

    @classmethod
    def loads(cls, text: str, path: str | None = None) -> Transcript:
        where = path or "<transcript>"
        records: list[Record] = []
        comments: list[str] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw[:-1] if raw.endswith("\r") else raw  # an editor's CR, never data
            if not line.strip():
                continue
            if line.startswith("#"):
                magic = _MAGIC_RE.fullmatch(line.strip())
                if magic and magic.group(1) != "1":
                    raise TranscriptError(f"{where}:{number}: transcript version {magic.group(1)} is not supported")
                if not magic and not records:
                    comments.append(line[1:].strip())
                continue
            records.append(parse_record(line, number, where))
        return cls(records, comments, path)

    # -- writing ----------------------------------------------------------------------

    def dumps(self) -> str:
        out = io.StringIO()
        writer = TranscriptWriter(out, comments=self.comments)
        for record in self.records:
            writer.write(record)
        return out.getvalue()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the transcript, readable by its owner only (0600)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(self.dumps())

    # -- views ------------------------------------------------------------------------

    def host_bytes(self, secrets: Mapping[str, bytes] | None = None) -> bytes:
        return b"".join(r.resolve(secrets) for r in self.records if r.is_host)

    def module_bytes(self, secrets: Mapping[str, bytes] | None = None) -> bytes:
        return b"".join(r.resolve(secrets) for r in self.records if not r.is_host)


class TranscriptWriter:
    """Writes records as they happen (the recorder uses it), flushing each one."""

    def __init__(self, target: IO[str], comments: Iterable[str] = ()) -> None:
        self._out = target
        self._out.write(MAGIC + "\n")
        for comment in comments:
            for part in comment.split("\n"):
                self._out.write(f"# {part}\n" if part else "#\n")
        self._out.flush()

    def write(self, record: Record) -> None:
        stamp = f"@{record.time:.3f}" if record.time is not None else ""
        self._out.write(f"{record.direction}{stamp} {escape_segments(record.segments)}\n")
        self._out.flush()

    def comment(self, text: str) -> None:
        for part in text.split("\n"):
            self._out.write(f"# {part}\n")
        self._out.flush()


# --- escaping --------------------------------------------------------------------------------

_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\"}
_LINE_BREAKS = {"\x85", "\u2028", "\u2029"}
_PLACEHOLDER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def escape(data: bytes) -> str:
    """Escape bytes for one record (no placeholders)."""
    return escape_segments((data,))


def escape_segments(segments: Iterable[Segment]) -> str:
    parts: list[str] = []
    segs = list(segments)
    for index, seg in enumerate(segs):
        if isinstance(seg, Placeholder):
            if not _PLACEHOLDER_NAME.match(seg.name):
                raise ValueError(f"bad placeholder name {seg.name!r}")
            parts.append(f"{{{{{seg.name}:{seg.length}}}}}")
            continue
        follows_placeholder = index + 1 < len(segs) and isinstance(segs[index + 1], Placeholder)
        parts.append(_escape_text(seg, follows_placeholder))
    text = "".join(parts)
    if text.endswith(" "):
        text = text[:-1] + "\\x20"
    return text


def _escape_text(data: bytes, brace_follows: bool) -> str:
    text = data.decode("utf-8", errors="surrogateescape")
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch in _LINE_BREAKS:
            out.append(f"\\u{code:04x}")
        elif ch == "{" and ((i < last and text[i + 1] == "{") or (i == last and brace_follows)):
            out.append("\\{")
        else:
            out.append(ch)
    return "".join(out)


_RECORD_RE = re.compile(r"([<>])(?:@(\d+(?:\.\d*)?))?(?: (.*))?\Z", re.DOTALL)
_TOKEN_RE = re.compile(
    r"\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})|\\(.)|\{\{([^{}:]*):(\d+)\}\}|(\{\{)|([^\\{]+|\{)",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "{": b"{"}


def parse_record(line: str, number: int = 0, where: str = "<transcript>") -> Record:
    m = _RECORD_RE.match(line)
    if m is None:
        raise TranscriptError(
            f"{where}:{number}: not a record: a line must start with '>' or '<' (or '#' for a comment): {line[:60]!r}"
        )
    direction, stamp, body = m.group(1), m.group(2), m.group(3) or ""
    return Record(direction, tuple(unescape(body, number, where)), float(stamp) if stamp else None, number)  # type: ignore[arg-type]


def unescape(text: str, number: int = 0, where: str = "<transcript>") -> list[Segment]:
    segments: list[Segment] = []
    current = bytearray()
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() != pos:  # cannot happen: the last alternative takes any other text
            raise TranscriptError(f"{where}:{number}: cannot parse record data at column {pos + 3}")
        pos = m.end()
        hex_byte, uni, simple, ph_name, ph_len, bad_brace, plain = m.groups()
        if hex_byte is not None:
            current.append(int(hex_byte, 16))
        elif uni is not None:
            current += chr(int(uni, 16)).encode("utf-8")
        elif simple is not None:
            value = _SIMPLE_ESCAPES.get(simple)
            if value is None:
                raise TranscriptError(
                    f"{where}:{number}: unknown escape '\\{simple}' at column {m.start() + 3}; "
                    "use \\r \\n \\t \\\\ \\xHH \\uHHHH or \\{"
                )
            current += value
        elif ph_len is not None:
            if not _PLACEHOLDER_NAME.match(ph_name):
                raise TranscriptError(f"{where}:{number}: bad placeholder name {ph_name!r}")
            if current:
                segments.append(bytes(current))
                current = bytearray()
            segments.append(Placeholder(ph_name, int(ph_len)))
        elif bad_brace is not None:
            raise TranscriptError(
                f"{where}:{number}: '{{{{' at column {m.start() + 3} starts no {{{{name:length}}}} placeholder; "
                "write a literal brace as \\{"
            )
        else:
            current += plain.encode("utf-8")
    if pos != len(text):
        raise TranscriptError(f"{where}:{number}: cannot parse record data at column {pos + 3}")
    if current:
        segments.append(bytes(current))
    return segments


# --- re-chunking -----------------------------------------------------------------------------

Chunking = Literal["whole", "bytes", "random"]


def rechunk(
    chunks: list[bytes], mode: Chunking = "whole", rng: random.Random | None = None, max_size: int = 64
) -> Iterator[bytes]:
    """Re-cut a run of module output. ``whole`` keeps the recorded boundaries; ``bytes``
    gives one byte at a time; ``random`` cuts the joined bytes at random sizes of 1 to
    `max_size` with `rng` (seeded by the caller)."""
    if mode == "whole":
        yield from (c for c in chunks if c)
        return
    data = b"".join(chunks)
    if mode == "bytes":
        for i in range(len(data)):
            yield data[i : i + 1]
        return
    if mode == "random":
        rng = rng or random.Random(0)
        i = 0
        while i < len(data):
            size = rng.randint(1, max_size)
            yield data[i : i + size]
            i += size
        return
    raise ValueError(f"unknown chunking {mode!r}; use whole, bytes or random")
