"""Command specifications as data, and commands built from them.

A `CommandSpec` declares one command *form* (``AT+QMTOPEN=...``, ``AT+QMTOPEN?``,
``AT+QMTOPEN=?`` are three specs): its parameters and which of them are secret, the
response lines that belong to it (prefix and shape), its time-out, its data phase, and
for two-phase commands the URC that completes it and the URCs that fail it. The table of
all specs (`quecmqtt.at.commands`) is the normative contract between the codec, the
runtime and the documentation.

Arguments are validated when a command is built: a string can never carry a quote, CR,
LF or other control character, so no argument can end the command early or inject a
second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from quecmqtt.at.fields import compile_shape
from quecmqtt.errors import InvalidArgument
from quecmqtt.secret import REDACTED, Secret


class Form(Enum):
    EXEC = ""  # AT+QPOWD, ATI
    READ = "?"  # AT+QMTCONN?
    TEST = "=?"  # AT+QMTCFG=?
    WRITE = "="  # AT+QMTOPEN=0,"host",1883


class Kind(Enum):
    INT = "int"
    STR = "string"  # sent quoted
    HEX = "hex"  # sent bare, e.g. 0xFFFF (AT+QSSLCFG="ciphersuite")
    WORD = "word"  # sent bare, letters/digits only


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind = Kind.INT
    optional: bool = False
    secret: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None  # bytes, for strings
    const: int | str | None = None  # fixed value (e.g. the QMTCFG key)

    def describe(self) -> str:
        if self.const is not None:
            return f'"{self.const}"' if self.kind is Kind.STR else str(self.const)
        text = f'"<{self.name}>"' if self.kind is Kind.STR else f"<{self.name}>"
        return text


@dataclass(frozen=True, slots=True)
class Resp:
    """A response line the command may produce: prefix and shape (see `fields`).
    `secret_fields` are field indices whose values are secrets (negative counts from the
    end), e.g. the device secret in the ``AT+QMTCFG="aliauth",0`` read-back."""

    prefix: str
    shape: str = "*"
    secret_fields: tuple[int, ...] = ()

    def matches(self, kinds: tuple[str, ...]) -> bool:
        return compile_shape(self.shape)(kinds)


class DataKind(Enum):
    PROMPT = "prompt"  # "> " then the host writes the data
    UPLOAD = "upload"  # CONNECT then the host writes exactly <length> bytes
    DOWNLOAD = "download"  # CONNECT then the module writes a body, then OK


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds to wait; if `param` is given and present, its value plus `extra` instead
    (``AT+QHTTPGET=<rsptime>`` waits rsptime plus a margin)."""

    seconds: float
    param: str | None = None
    extra: float = 0.0

    def resolve(self, values: dict[str, Any]) -> float:
        if self.param is not None and isinstance(values.get(self.param), int):
            return float(values[self.param]) + self.extra
        return self.seconds


@dataclass(frozen=True, slots=True)
class DataPhase:
    kind: DataKind
    length_param: str | None = None  # the parameter that announces the byte count
    terminator: bytes = b""  # b"\x1a" for Ctrl-Z entry
    abort: bytes | None = None  # b"\x1b" where the module lets the host cancel entry
    max_length: int | None = None
    timeout: float = 10.0  # for the prompt to appear
    # How long the module itself waits for the data before it gives the entry up, where
    # the manual says (an argument, or the default); None: not documented.
    input_timeout: Timeout | None = None


@dataclass(frozen=True, slots=True)
class ResultSpec:
    """The URC that completes a two-phase command: ``+QMTOPEN: <client>,<result>``.
    `key` names the parameters whose values must equal the URC's first fields."""

    prefix: str
    key: tuple[str, ...] = ()
    timeout: Timeout = Timeout(60.0)
    fails_on: tuple[str, ...] = ()  # URC prefixes whose field 0 == the scope's value fail the wait


@dataclass(frozen=True)
class CommandSpec:
    id: str
    name: str  # "+QMTOPEN", "I", "E0", "" for plain AT
    form: Form
    summary: str
    params: tuple[Param, ...] = ()
    responses: tuple[Resp, ...] = ()
    timeout: Timeout = Timeout(5.0)
    data: DataPhase | None = None
    result: ResultSpec | None = None
    # The parameter naming what the command acts on (a client index): a URC in the result's
    # `fails_on` whose first field equals its value fails the command's result wait.
    scope: str | None = None
    together: tuple[tuple[str, ...], ...] = ()  # optional parameters given all or none
    ends_scope: bool = False  # closes what `scope` names: a failure report may follow it
    _prefix_map: dict[str, tuple[Resp, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        groups: dict[str, list[Resp]] = {}
        for resp in self.responses:
            groups.setdefault(resp.prefix.upper(), []).append(resp)
        self._prefix_map.update({k: tuple(v) for k, v in groups.items()})
        seen_optional = False
        for p in self.params:
            if p.optional:
                seen_optional = True
            elif seen_optional:
                raise ValueError(f"{self.id}: required parameter {p.name} after optional")

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        return self is other

    # -- classification ---------------------------------------------------------------

    def response_for(self, prefix: str, kinds: tuple[str, ...]) -> Resp | None:
        """The response declaration a ``+PREFIX: ...`` line fits, or None (then it is a URC)."""
        for resp in self._prefix_map.get(prefix.upper(), ()):
            if resp.matches(kinds):
                return resp
        return None

    # -- building -----------------------------------------------------------------------

    @property
    def syntax(self) -> str:
        head = "AT" + self.name
        if self.form is not Form.WRITE:
            return head + str(self.form.value)
        parts: list[str] = []
        optional_open = 0
        for p in self.params:
            if p.optional:
                parts.append("[," if parts else "[")
                optional_open += 1
            elif parts:
                parts.append(",")
            parts.append(p.describe())
        text = "".join(parts) + "]" * optional_open
        if self.params and all(p.optional for p in self.params):
            return f"{head}[={text[1:-1]}]" if optional_open == 1 else f"{head}={text}"
        return f"{head}={text}"

    def __call__(self, *args: Any, **kwargs: Any) -> Command:
        return self.build(*args, **kwargs)

    def build(self, *args: Any, **kwargs: Any) -> Command:
        free = [p for p in self.params if p.const is None]
        if len(args) > len(free):
            raise InvalidArgument(f"{self.id}: expected at most {len(free)} arguments, got {len(args)}")
        values: dict[str, Any] = {}
        for p, value in zip(free, args, strict=False):
            values[p.name] = value
        for name, value in kwargs.items():
            if name in values:
                raise InvalidArgument(f"{self.id}: argument {name!r} given twice")
            if not any(p.name == name and p.const is None for p in self.params):
                raise InvalidArgument(f"{self.id}: unknown argument {name!r}")
            values[name] = value
        for p in self.params:
            if p.const is not None:
                values[p.name] = p.const
        return Command._create(self, values)


# The longest command line sent, "AT" to CR. No manual found gives the number (BG96 AT manual
# V2.2 2.15 table 3 only says an over-long line is answered ERROR); 4096 is the line buffer the
# emulator's profiles model [R]. A longer line is refused here, before anything is written.
MAX_LINE = 4096
_HEX_RE = re.compile(r"0[xX][0-9A-Fa-f]{1,32}\Z")  # cipher suites, and band masks of 100+ bits
_WORD_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}\Z")


def encode_arg(spec_id: str, p: Param, value: Any) -> tuple[str, str, Secret | None]:
    """Validate one argument; return (wire text, redacted text, secret or None)."""
    secret: Secret | None = None
    if p.kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{spec_id}: {p.name} must be an int, not {type(value).__name__}")
        if p.minimum is not None and value < p.minimum:
            raise InvalidArgument(f"{spec_id}: {p.name}={value} is below {p.minimum}")
        if p.maximum is not None and value > p.maximum:
            raise InvalidArgument(f"{spec_id}: {p.name}={value} is above {p.maximum}")
        text = str(value)
        return text, text, None
    if isinstance(value, Secret):
        secret = value if value.name != "secret" or not p.secret else Secret(value, p.name)
        raw = value.reveal_bytes()
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:  # an unpaired surrogate: say where, never what (a secret?)
            raise InvalidArgument(f"{spec_id}: {p.name} is not valid text (position {exc.start})") from None
        if p.secret:
            secret = Secret(raw, p.name)
    elif isinstance(value, bytes):
        raw = value
        if p.secret:
            secret = Secret(raw, p.name)
    else:
        raise InvalidArgument(f"{spec_id}: {p.name} must be a string, not {type(value).__name__}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{spec_id}: {p.name} is not valid UTF-8") from None
    if p.kind is Kind.HEX:
        if not _HEX_RE.match(text):
            raise InvalidArgument(f"{spec_id}: {p.name} must look like 0xFFFF")
        return text, text, None
    if p.kind is Kind.WORD:
        if not _WORD_RE.match(text):
            raise InvalidArgument(f"{spec_id}: {p.name} must be a bare word")
        return text, text, None
    # C0 and C1 controls too: a broker drops the link over U+0085 in a topic or client id
    bad = next((c for c in text if c == '"' or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        what = "a quote" if bad == '"' else f"control character {ord(bad):#04x}"
        shown = REDACTED if secret else repr(text if len(text) <= 60 else text[:57] + "...")
        raise InvalidArgument(
            f"{spec_id}: {p.name} {shown} contains {what}; the module's AT parser cannot "
            "carry it inside a quoted argument"
        )
    if p.max_length is not None and len(raw) > p.max_length:
        raise InvalidArgument(f"{spec_id}: {p.name} is {len(raw)} bytes, the limit is {p.max_length}")
    wire = f'"{text}"'
    return wire, (f'"{REDACTED}"' if secret is not None else wire), secret


class Command:
    """A command ready to send: its spec, validated values, wire bytes and redacted text.

    `repr()` and `str()` show only the redacted text."""

    __slots__ = ("line", "redacted", "secret_spans", "secrets", "spec", "values")

    spec: CommandSpec
    values: dict[str, Any]
    line: bytes
    redacted: str
    secrets: tuple[Secret, ...]
    #: (start, end, name) of each secret argument's value in `line`, however short
    secret_spans: tuple[tuple[int, int, str], ...]

    @classmethod
    def _create(cls, spec: CommandSpec, values: dict[str, Any]) -> Command:
        wire_parts: list[str] = []
        shown_parts: list[str] = []
        secrets: list[Secret] = []
        secret_at: dict[int, str] = {}  # index in wire_parts -> secret name
        missing_optional = False
        for p in spec.params:
            if p.name not in values or values[p.name] is None:
                if not p.optional:
                    raise InvalidArgument(f"{spec.id}: missing argument {p.name!r}")
                missing_optional = True
                continue
            if missing_optional:
                raise InvalidArgument(f"{spec.id}: {p.name!r} given but an earlier optional argument is missing")
            wire, shown, secret = encode_arg(spec.id, p, values[p.name])
            if secret is not None:
                secrets.append(secret)
                secret_at[len(wire_parts)] = secret.name
            wire_parts.append(wire)
            shown_parts.append(shown)
        for group in spec.together:
            given = [name for name in group if values.get(name) is not None]
            if given and len(given) != len(group):
                raise InvalidArgument(f"{spec.id}: {', '.join(group)} go together; got only {', '.join(given)}")
        head = "AT" + spec.name
        if spec.form is Form.WRITE:
            if wire_parts:
                wire_text = head + "=" + ",".join(wire_parts)
                shown_text = head + "=" + ",".join(shown_parts)
            else:
                wire_text = shown_text = head
        else:
            wire_text = shown_text = head + spec.form.value
        if len(wire_text.encode("utf-8")) > MAX_LINE:
            raise InvalidArgument(
                f"{spec.id}: the command line would be {len(wire_text.encode('utf-8'))} bytes; modules take at most "
                f"{MAX_LINE} (give fewer or shorter arguments)"
            )
        spans: list[tuple[int, int, str]] = []
        offset = len(head.encode()) + 1
        for index, part in enumerate(wire_parts):
            size = len(part.encode("utf-8"))
            if index in secret_at:  # the value inside its quotes
                spans.append((offset + 1, offset + size - 1, secret_at[index]))
            offset += size + 1
        self = cls.__new__(cls)
        self.spec = spec
        self.values = values
        self.line = wire_text.encode("utf-8")
        self.redacted = shown_text
        self.secrets = tuple(secrets)
        self.secret_spans = tuple(spans)
        return self

    @classmethod
    def raw(
        cls,
        spec: CommandSpec,
        line: bytes,
        values: dict[str, Any],
        redacted: str,
        secrets: tuple[Secret, ...] = (),
        secret_spans: tuple[tuple[int, int, str], ...] = (),
    ) -> Command:
        """A command parsed from a line (decode, replay, a console); the line is taken as given."""
        self = cls.__new__(cls)
        self.spec = spec
        self.values = values
        self.line = line
        self.redacted = redacted
        self.secrets = secrets
        self.secret_spans = secret_spans
        return self

    @property
    def wire(self) -> bytes:
        return self.line + b"\r"

    @property
    def scope(self) -> int | None:
        """The value of the spec's `scope` parameter (a client index), if it has one."""
        name = self.spec.scope
        value = self.values.get(name) if name else None
        return value if isinstance(value, int) else None

    client = scope  # the MQTT layer's name for it

    @property
    def data_length(self) -> int | None:
        phase = self.spec.data
        if phase is None or phase.length_param is None:
            return None
        value = self.values.get(phase.length_param)
        return value if isinstance(value, int) else None

    @property
    def timeout(self) -> float:
        return self.spec.timeout.resolve(self.values)

    @property
    def input_timeout(self) -> float | None:
        """The module's own time-out for this command's data entry, if documented."""
        phase = self.spec.data
        if phase is None or phase.input_timeout is None:
            return None
        return phase.input_timeout.resolve(self.values)

    @property
    def result_timeout(self) -> float | None:
        result = self.spec.result
        return result.timeout.resolve(self.values) if result else None

    def result_key(self) -> tuple[Any, ...] | None:
        result = self.spec.result
        if result is None:
            return None
        return tuple(self.values.get(name) for name in result.key)

    def __repr__(self) -> str:
        return f"<Command {self.redacted}>"

    def __str__(self) -> str:
        return self.redacted
