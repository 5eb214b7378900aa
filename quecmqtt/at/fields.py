"""Splitting the value part of a ``+PREFIX: a,"b",(0-5)`` line into typed fields, and the
small shape language command specs use to say which lines are theirs.

Field kinds: ``i`` an unquoted integer, ``s`` a quoted string, ``e`` an empty field,
``b`` any other bare token (``0xFFFF``, ``READY``, ``(0-5)``, ``4f64``).

A shape is a comma-separated list of kinds; ``x`` matches any one field, a trailing ``?``
makes a field optional (only trailing fields may be optional), and a final ``*`` accepts
any number of further fields. ``"i,i"`` is the ``AT+QMTCONN?`` answer, ``"s,*"`` any
``+QMTCFG`` read-back, ``"*"`` anything.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

Field = int | str

INT, STR, EMPTY, BARE = "i", "s", "e", "b"


def tokenize(text: str) -> tuple[tuple[str, Field], ...]:
    """Split on commas outside quotes and parentheses; return (kind, value) pairs.

    A quoted field ends at a quote followed by a comma or the end of the line, so a stray
    quote inside a string does not derail the split. An empty value part gives no fields.
    """
    if text == "":
        return ()
    out: list[tuple[str, Field]] = []
    i, n = 0, len(text)
    while True:
        # skip blanks before a field ("+QMTSTAT: 0, 1" appears in some firmware)
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == '"':
            j = i + 1
            while True:
                j = text.find('"', j)
                if j < 0:  # unterminated: the rest of the line is the string
                    out.append((STR, text[i + 1 :]))
                    return tuple(out)
                k = j + 1
                while k < n and text[k] == " ":
                    k += 1
                if k >= n or text[k] == ",":
                    break
                j += 1
            out.append((STR, text[i + 1 : j]))
            i = k
        else:
            depth = 0
            j = i
            while j < n:
                c = text[j]
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth = max(0, depth - 1)
                elif c == "," and depth == 0:
                    break
                j += 1
            token = text[i:j].strip()
            if token == "":
                out.append((EMPTY, ""))
            elif _is_int(token):
                out.append((INT, int(token)))
            else:
                out.append((BARE, token))
            i = j
        if i >= n:
            return tuple(out)
        # text[i] is a comma
        i += 1
        if i >= n:
            out.append((EMPTY, ""))
            return tuple(out)


def _is_int(token: str) -> bool:
    body = token[1:] if token[:1] in "+-" else token
    return body.isdigit() and body.isascii() and len(body) < 20


ShapeMatcher = Callable[[tuple[str, ...]], bool]


@lru_cache(maxsize=256)
def compile_shape(shape: str) -> ShapeMatcher:
    """Compile a shape string into a predicate over a tuple of field kinds."""
    parts = [p.strip() for p in shape.split(",")] if shape.strip() else []
    rest = bool(parts) and parts[-1] == "*"
    if rest:
        parts = parts[:-1]
    required: list[str] = []
    optional: list[str] = []
    for part in parts:
        kind, is_optional = (part[:-1], True) if part.endswith("?") else (part, False)
        if kind not in (INT, STR, EMPTY, BARE, "x"):
            raise ValueError(f"unknown field kind {kind!r} in shape {shape!r}")
        if is_optional:
            optional.append(kind)
        elif optional:
            raise ValueError(f"a required field follows an optional one in shape {shape!r}")
        else:
            required.append(kind)
    allowed = required + optional
    low, high = len(required), len(allowed)

    def match(kinds: tuple[str, ...]) -> bool:
        count = len(kinds)
        if count < low or (count > high and not rest):
            return False
        return all(want in ("x", got) for want, got in zip(allowed, kinds, strict=False))

    return match
