"""Turn a command line as written on the wire back into a `Command` (used by `decode`,
which sees only the host's bytes, and by the console and the recording proxy, which must
know a typed line's secrets). The line is matched against the command table by name, form,
fixed arguments (the QMTCFG key), argument count and argument kinds; a line no spec fits
gets a generic spec whose own prefix is its response prefix.

Secrets are found however the line is written: a module also takes an unquoted PIN
(``AT+CPIN=1234``), lower case, spaces, and several commands joined by ``;``. Their byte
spans come from the line itself, so a recording can cut them out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from quecmqtt.at import commands
from quecmqtt.at.fields import BARE, EMPTY, INT, STR, tokenize
from quecmqtt.at.spec import Command, CommandSpec, Form, Kind, Resp
from quecmqtt.errors import InvalidArgument
from quecmqtt.secret import REDACTED, Secret

# V.250 lets blanks stand between the parts of a command line (`AT + QMTCONN = 0,...`), and a
# module may take them: the name is found across them, so its secrets are found too
_EXTENDED = re.compile(r"([+&$%^#*])\s*([A-Za-z0-9_]+)\s*(.*)\Z", re.DOTALL)


@lru_cache(maxsize=1)
def _index() -> dict[tuple[str, Form], list[CommandSpec]]:
    table: dict[tuple[str, Form], list[CommandSpec]] = {}
    for spec in commands.ALL:
        table.setdefault((spec.name.upper(), spec.form), []).append(spec)
    return table


def parse_command(line: bytes) -> Command:
    """A `Command` for `line` (without its CR). Never raises."""
    lead = len(line) - len(line.lstrip())
    if lead:  # spans must point into the line as given
        inner = parse_command(line.lstrip())
        spans = tuple((s + lead, e + lead, n) for s, e, n in inner.secret_spans)
        return Command.raw(inner.spec, line, inner.values, inner.redacted, inner.secrets, spans)
    pieces = _split_concatenated(line)
    if len(pieces) > 1:
        return _concatenated(line, pieces)
    return _parse_one(line)


# `ATE0+CPIN=1234`, `AT&F+QMTCONN=...`: basic commands in front of an extended one
_BASIC_PREFIX = re.compile(rb"AT\s*((?:&?[A-Za-z]\d*)+)(?=\s*[+$%^#*])", re.IGNORECASE)


def _split_concatenated(line: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the commands of `AT+A;+B;+C` (quotes respected), with basic commands in
    front of an extended one split off; one range for most lines."""
    ranges, start, quoted = [], 0, False
    for i, byte in enumerate(line):
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x3B and not quoted:
            ranges.append((start, i))
            start = i + 1
    ranges.append((start, len(line)))
    basic = _BASIC_PREFIX.match(line)
    if basic is not None and ranges[0][1] > basic.end(1):
        ranges[0:1] = [(0, basic.end(1)), (basic.end(1), ranges[0][1])]
    return [r for r in ranges if line[r[0] : r[1]].strip()]


def _parsed_pieces(line: bytes, pieces: list[tuple[int, int]]) -> Iterator[tuple[int, Command]]:
    """Each piece of `AT+CSQ;+QMTCONN=...` parsed as its own command (`AT` + piece), with the
    offset in `line` that its spans count from."""
    for n, (start, end) in enumerate(pieces):
        start += len(line[start:end]) - len(line[start:end].lstrip())  # `AT+CSQ; +CPIN=1234`
        piece = line[start:end].rstrip()
        prefix = b"" if n == 0 or piece[:2].upper() == b"AT" else b"AT"
        yield start - len(prefix), _parse_one(prefix + piece)


def has_unknown_arguments(line: bytes) -> bool:
    """`line` holds a command the table does not know, written with arguments (`AT+VENDOR=...`,
    also as a piece of `AT+CSQ;+VENDOR=...`): which of them are secret nobody can say."""
    stripped = line.strip()
    for _, part in _parsed_pieces(stripped, _split_concatenated(stripped)):
        if part.spec.id.startswith("UNKNOWN") and part.spec.form is Form.WRITE and part.values:
            return True
    return False


def _concatenated(line: bytes, pieces: list[tuple[int, int]]) -> Command:
    """`AT+CSQ;+QMTCONN=...`: each piece parsed as its own command so that the secrets of
    every one are known; shown joined again."""
    secrets: list[Secret] = []
    spans: list[tuple[int, int, str]] = []
    shown: list[str] = []
    for n, (shift, part) in enumerate(_parsed_pieces(line, pieces)):
        secrets.extend(part.secrets)
        spans.extend((s + shift, e + shift, name) for s, e, name in part.secret_spans)
        shown.append(part.redacted if n == 0 else part.redacted[2:].lstrip())
    text = line.decode("utf-8", errors="replace").strip()
    first = _parse_one(line[pieces[0][0] : pieces[0][1]]).spec.name.upper()  # its prefix, as for any unknown line
    return Command.raw(_generic(first, Form.EXEC), line, {}, ";".join(shown) or text, tuple(secrets), tuple(spans))


def _parse_one(line: bytes) -> Command:
    text = line.decode("utf-8", errors="replace").strip()
    if text[:2].upper() != "AT":
        return Command.raw(_generic("", Form.EXEC), line, {}, text)
    body = text[2:].lstrip()  # `AT +CPIN=1234`
    m = _EXTENDED.match(body)
    if m is not None:
        name, rest = (m.group(1) + m.group(2)).upper(), m.group(3)
    else:
        name, rest = body.upper(), ""
    if rest == "":
        form, args = Form.EXEC, ""
    elif rest == "?":
        form, args = Form.READ, ""
    elif rest == "=?":
        form, args = Form.TEST, ""
    elif rest.startswith("="):
        form, args = Form.WRITE, rest[1:].strip()
    else:
        return Command.raw(_generic(name, Form.EXEC), line, {}, text)
    tokens = tokenize(args)
    specs = _index().get((name, form), [])
    for lenient in (False, True):  # lenient: a string argument written without quotes (AT+CPIN=1234)
        for spec in specs:
            values = _bind(spec, tokens, lenient=lenient)
            if values is not None:
                return _with_secrets(spec, line, values) or _raw(spec, line, values, text, tokens)
    guarded = [spec for spec in specs if any(p.secret for p in spec.params) and _same_key(spec, tokens)]
    if guarded and form is Form.WRITE:
        return _all_arguments_secret(guarded[0], line, text, tokens)
    if form is Form.WRITE and not tokens:  # AT+QHTTPGET: a write form with every argument left out
        for spec in _index().get((name, Form.WRITE), []):
            if all(p.optional or p.const is not None for p in spec.params):
                return Command.raw(spec, line, {}, text)
    if form is Form.EXEC:
        for spec in _index().get((name, Form.WRITE), []):
            if all(p.optional for p in spec.params):
                return Command.raw(spec, line, {}, text)
    return Command.raw(_generic(name, form), line, {t[0]: t[1] for t in enumerate(tokens)}, text)  # type: ignore[misc]


def _with_secrets(spec: CommandSpec, line: bytes, values: dict[str, int | str]) -> Command | None:
    """For a line with secret arguments, the command built from the table with those
    values as `Secret`s (so its secrets and their spans are known), if it gives the same
    bytes back; None otherwise."""
    secret = {p.name for p in spec.params if p.secret and values.get(p.name) not in (None, "")}
    if not secret:
        return None
    free = {p.name for p in spec.params if p.const is None}
    kwargs = {k: (Secret(str(v), k) if k in secret else v) for k, v in values.items() if k in free}
    try:
        built = spec.build(**kwargs)
    except (InvalidArgument, TypeError):
        return None
    return built if built.line == line.strip() else None


def _same_key(spec: CommandSpec, tokens: tuple[tuple[str, int | str], ...]) -> bool:
    """The line names the spec's fixed key, if it has one (`"aliauth"`, not `"keepalive"`)."""
    return all(
        p.const is None or (i < len(tokens) and str(tokens[i][1]).lower() == str(p.const).lower())
        for i, p in enumerate(spec.params)
    )


def _all_arguments_secret(
    spec: CommandSpec, line: bytes, text: str, tokens: tuple[tuple[str, int | str], ...]
) -> Command:
    """A command that carries secrets, written in a way no form of the table fits (a trailing
    comma, an argument too many, a stray quote, the PUK form of AT+CPIN): every argument is
    treated as secret, except a leading key such as QMTCFG's "aliauth". Safe over exact."""
    offsets = _argument_spans(line)
    keys = {str(p.const).lower() for s in _index().get((spec.name.upper(), spec.form), []) for p in s.params if p.const}
    first = 1 if tokens and str(tokens[0][1]).lower() in keys else 0
    spans = tuple((s, e, "secret") for s, e in offsets[first:] if e > s)
    secrets = tuple(Secret(line[s:e].decode("utf-8", errors="replace"), "secret") for s, e, _ in spans)
    shown = text[: text.index("=") + 1] + (f'"{tokens[0][1]}",' if first else "") + REDACTED
    return Command.raw(_generic(spec.name.upper(), Form.WRITE), line, {}, shown, secrets, spans)


def _raw(
    spec: CommandSpec, line: bytes, values: dict[str, int | str], text: str, tokens: tuple[tuple[str, int | str], ...]
) -> Command:
    """The line as given, with its secret arguments found by their place in the line."""
    secrets: list[Secret] = []
    spans: list[tuple[int, int, str]] = []
    offsets = _argument_spans(line)
    if any(p.secret for p in spec.params) and len(offsets) != len(tokens):  # a stray quote: places untrustworthy
        return _all_arguments_secret(spec, line, text, tokens)
    for i, p in enumerate(spec.params):
        if p.secret and i < len(tokens) and i < len(offsets) and tokens[i][1] != "":
            start, end = offsets[i]
            secrets.append(Secret(line[start:end].decode("utf-8", errors="replace"), p.name))  # as written
            spans.append((start, end, p.name))
    return Command.raw(spec, line, values, _redact(text, spec, tokens), tuple(secrets), tuple(spans))


def _argument_spans(line: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the arguments after `=`, without their quotes and surrounding blanks."""
    eq = line.find(b"=")
    if eq < 0:
        return []
    spans, start, quoted = [], eq + 1, False
    for i in range(eq + 1, len(line) + 1):
        byte = line[i] if i < len(line) else 0x2C
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x2C and (not quoted or i == len(line)):
            s, e = start, i
            while s < e and line[s] in b" \t\r\n":
                s += 1
            while e > s and line[e - 1] in b" \t\r\n":
                e -= 1
            if e - s >= 1 and line[s] == 0x22:
                s += 1
                if e > s and line[e - 1] == 0x22:
                    e -= 1
            spans.append((s, e))
            start = i + 1
    return spans


def _bind(
    spec: CommandSpec, tokens: tuple[tuple[str, int | str], ...], *, lenient: bool = False
) -> dict[str, int | str] | None:
    params = spec.params
    required = sum(1 for p in params if not p.optional)
    if not required <= len(tokens) <= len(params):
        return None
    values: dict[str, int | str] = {}
    for p, (kind, value) in zip(params, tokens, strict=False):
        if p.const is not None:
            if kind not in ((STR, BARE) if lenient else (STR,)) or str(value).lower() != str(p.const).lower():
                return None
        elif p.kind is Kind.STR and lenient and kind in (INT, BARE):
            value = str(value)
        elif (p.kind is Kind.INT and kind != INT) or (p.kind is Kind.STR and kind not in (STR, EMPTY)):
            return None
        values[p.name] = value
    return values


def _redact(text: str, spec: CommandSpec, tokens: tuple[tuple[str, int | str], ...]) -> str:
    """The line with secret arguments replaced, rebuilt by position (a secret may equal
    another argument's value). Lines without secrets are shown as sent."""
    secret_at = {i for i, p in enumerate(spec.params) if p.secret and i < len(tokens) and tokens[i][1] != ""}
    if not secret_at:
        return text
    parts = []
    for i, (kind, value) in enumerate(tokens):
        if i in secret_at:
            parts.append(f'"{REDACTED}"')
        elif kind == STR:
            parts.append(f'"{value}"')
        else:
            parts.append(str(value))
    return text[: text.index("=") + 1] + ",".join(parts)


@lru_cache(maxsize=256)
def _generic(name: str, form: Form) -> CommandSpec:
    responses = (Resp(name, "*"),) if name.startswith("+") else ()
    return CommandSpec(f"UNKNOWN{name}{form.value}", name, form, "Not in the command table.", responses=responses)
