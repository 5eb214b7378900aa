"""The emulator's own reading of a command line. It shares no code with `quecmqtt.at` on
purpose: a parsing bug cannot hide by being the same on both sides of the test."""

from __future__ import annotations

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


def parse_line(line: bytes) -> AtLine | None:
    """None if the line is not an AT command."""
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
    if number.isdigit():
        return AtLine(name, "exec", [int(number)], [False])
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
            if token.lstrip("-").isdigit() and token.lstrip("-").isascii():
                args.append(int(token))
            else:
                args.append(token)
            quoted.append(False)
            i = end
        i += 1  # the comma
    return args, quoted
