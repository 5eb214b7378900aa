"""Redaction of known secret values in free text and byte streams.

Commands redact their own secret arguments structurally (see `quecmqtt.at.spec`). What
structure cannot catch is the *same* value showing up elsewhere: the module's echo of the
command, a read-back such as ``+QMTCFG: "aliauth",...``, a payload. A `Redactor` remembers
every secret value the runtime has seen and finds it anywhere.

Values shorter than `MIN_SCAN_LENGTH` bytes are not searched for in free text: redacting
every "12" in a transcript would destroy it while protecting nothing. They are still
redacted where they are passed as a secret argument.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator

from quecmqtt.secret import REDACTED, Secret

MIN_SCAN_LENGTH = 4


class Redactor:
    """A bounded set of secret values, searched for in bytes and text. Thread-safe.

    Bounded: at most `MAX_SECRETS` values and `MAX_LINES` line templates are kept, the
    least recently added going first (a host-signed login carries a fresh password on every
    reconnect; over months only the recent ones can still appear). The search patterns are
    rebuilt lazily, on the first search after a change, never per added value: adding a
    value that is already known costs a dictionary lookup."""

    MAX_SECRETS = 512
    #: line templates kept: commands with secrets, for their echoes
    MAX_LINES = 256

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self._names: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._bytes_re: re.Pattern[bytes] | None = None
        self._text_re: re.Pattern[str] | None = None
        self._values_dirty = False
        self._lines: dict[bytes, tuple[tuple[int, int, str], ...]] = {}
        self._lines_re: re.Pattern[bytes] | None = None
        self._lines_dirty = False
        self.rebuilds = 0  # how often the patterns were compiled (for tests and benchmarks)
        for secret in secrets:
            self.add(secret)

    def add(self, value: Secret | str | bytes, name: str | None = None) -> None:
        if isinstance(value, Secret):
            name = name or value.name
            raw = value.reveal_bytes()
        elif isinstance(value, str):
            raw = value.encode("utf-8", errors="surrogatepass")
        else:
            raw = value
        if len(raw) < MIN_SCAN_LENGTH:
            return
        with self._lock:
            if raw in self._names:
                return
            self._names[raw] = name or "secret"
            while len(self._names) > self.MAX_SECRETS:
                del self._names[next(iter(self._names))]
            self._values_dirty = True

    def add_line(self, line: bytes, spans: Iterable[tuple[int, int, str]]) -> None:
        """A line whose `spans` (start, end, name) are secret wherever the whole line
        appears: a command and the module's echo of it. Secrets of any length are covered
        this way, also those too short to search for on their own."""
        spans = tuple(spans)
        if not spans or not line:
            return
        with self._lock:
            if self._lines.get(line) == spans:
                return
            self._lines.pop(line, None)
            self._lines[line] = spans
            while len(self._lines) > self.MAX_LINES:
                del self._lines[next(iter(self._lines))]
            self._lines_dirty = True

    def _patterns(self) -> tuple[re.Pattern[bytes] | None, re.Pattern[str] | None, re.Pattern[bytes] | None]:
        if self._values_dirty or self._lines_dirty:
            with self._lock:
                if self._values_dirty:
                    ordered = sorted(self._names, key=len, reverse=True)
                    if ordered:
                        self._bytes_re = re.compile(b"|".join(re.escape(v) for v in ordered))
                        texts = [v.decode("utf-8", errors="surrogateescape") for v in ordered]
                        self._text_re = re.compile("|".join(re.escape(t) for t in texts))
                    else:
                        self._bytes_re = self._text_re = None
                    self._values_dirty = False
                    self.rebuilds += 1
                if self._lines_dirty:
                    ordered = sorted(self._lines, key=len, reverse=True)
                    self._lines_re = re.compile(b"|".join(re.escape(v) for v in ordered)) if ordered else None
                    self._lines_dirty = False
                    self.rebuilds += 1
        return self._bytes_re, self._text_re, self._lines_re

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, value: bytes) -> bool:
        return value in self._names

    def spans(self, data: bytes) -> list[tuple[int, int, str]]:
        """(start, end, name) of every secret occurrence, left to right, non-overlapping."""
        found: list[tuple[int, int, str]] = []
        pattern, _, lines = self._patterns()
        if pattern is not None:
            names = self._names
            found.extend((m.start(), m.end(), names.get(m.group(), "secret")) for m in pattern.finditer(data))
        if lines is not None:
            for m in lines.finditer(data):
                found.extend((m.start() + s, m.start() + e, name) for s, e, name in self._lines.get(m.group(), ()))
        if not found:
            return found
        found.sort()
        merged = [found[0]]
        for start, end, name in found[1:]:
            last_start, last_end, last_name = merged[-1]
            if start < last_end:  # overlapping: one span covering both
                merged[-1] = (last_start, max(end, last_end), last_name)
            else:
                merged.append((start, end, name))
        return merged

    def redact_text(self, text: str) -> str:
        _, pattern, _ = self._patterns()
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)


#: JSON keys whose string values are secrets where a layer expects a document to carry one:
#: a registration reply carries the DeviceSecret or a deviceToken the cloud shows once. The
#: runtime never scans payloads for them: only the layer that asked for such a reply does.
SECRET_KEYS = frozenset(
    {"deviceSecret", "productSecret", "deviceToken", "password", "passwd", "secret", "token", "accessKey"}
)
MAX_JSON = 256 * 1024  # registration replies are small: larger payloads are not parsed
_RAW_VALUE = re.compile(
    rb'"(' + b"|".join(re.escape(k.encode()) for k in sorted(SECRET_KEYS)) + rb')"\s*:\s*"((?:[^"\\]|\\.)*)"'
)
_KEY_HINT = re.compile(b"|".join(re.escape(b'"' + k.encode() + b'"') for k in sorted(SECRET_KEYS)))


def secrets_in_json(data: bytes) -> Iterator[Secret]:
    """Secret values in a JSON document, found by key (`SECRET_KEYS`), at any depth.
    Cheap for data that mentions none of the keys; silent for data that is not JSON."""
    if len(data) > MAX_JSON or _KEY_HINT.search(data) is None:
        return
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
        return
    found: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SECRET_KEYS and isinstance(value, str) and value:
                    found.add(value)
                    yield Secret(value, key)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    # the bytes as written: a value with an escape (`\/`, `\u00e9`) is not its decoded text, and
    # a transcript or log holds the bytes
    for match in _RAW_VALUE.finditer(data):
        raw = match.group(2).decode("utf-8", errors="replace")
        if raw and raw not in found and match.group(1).decode() in SECRET_KEYS:
            found.add(raw)
            yield Secret(raw, match.group(1).decode())
