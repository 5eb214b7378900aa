"""The emulator's own reading of a command line. It shares no code with `quecmqtt.at` on
purpose: a parsing bug cannot hide by being the same on both sides of the test.

`parse_line` is total: whatever bytes a host sends, it returns a line or None and never
raises (an exception here would cost the rest of the read it came in)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Arg = int | str  # an unquoted integer, or a string (quoted or bare)


@dataclass
class AtLine:
    name: str  # "+QMTOPEN", "E", "I", "&F", "" for a bare AT
    form: str  # "exec" | "read" | "test" | "write"
    args: list[Arg] = field(default_factory=list)
    quoted: list[bool] = field(default_factory=list)  # which args were quoted

    def arg(self, index: int, default: Arg | None = None) -> Arg | None:
        return self.args[index] if index < len(self.args) else default


_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also takes "²" and "٣"


def _integer(token: str, signed: bool = True) -> int | None:
    """The value of a plain decimal integer token, else None (then it is a bare string)."""
    if _INTEGER.fullmatch(token) is None or (not signed and token.startswith("-")):
        return None
    try:
        return int(token)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
        return None


def parse_line(line: bytes) -> AtLine | None:
    """None if the line is not an AT command. Never raises."""
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if len(text) < 2 or text[:2].upper() != "AT":
        return None
    rest = text[2:]
    if not rest:
        return AtLine("", "exec")
    if rest[0] in "+&$%^*#":
        i = 1
        while i < len(rest) and (rest[i].isalnum() or rest[i] == "_"):
            i += 1
        name, tail = rest[:i].upper(), rest[i:]
        if tail == "":
            return AtLine(name, "exec")
        if tail == "?":
            return AtLine(name, "read")
        if tail == "=?":
            return AtLine(name, "test")
        if tail.startswith("="):
            args, quoted = split_args(tail[1:])
            return AtLine(name, "write", args, quoted)
        return None
    # basic commands: a letter, then an optional number (ATE0, ATI, ATV1)
    name = rest[0].upper()
    number = rest[1:]
    if number == "":
        return AtLine(name, "exec")
    value = _integer(number, signed=False)
    if value is not None:
        return AtLine(name, "exec", [value], [False])
    return None


def split_args(text: str) -> tuple[list[Arg], list[bool]]:
    args: list[Arg] = []
    quoted: list[bool] = []
    i = 0
    while i <= len(text):
        if i < len(text) and text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                end = len(text)
            args.append(text[i + 1 : end])
            quoted.append(True)
            i = end + 1
            while i < len(text) and text[i] != ",":
                i += 1
        else:
            end = text.find(",", i)
            if end < 0:
                end = len(text)
            token = text[i:end].strip()
            value = _integer(token)  # "--1", "-", "1-" stay strings: the handler refuses them
            args.append(token if value is None else value)
            quoted.append(False)
            i = end
        i += 1  # the comma
    return args, quoted
