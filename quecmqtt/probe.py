"""What the module says about itself: the answers of ``=?`` test commands, asked once per
modem and kept (a firmware does not change while the port is open).

The driver adapts by these answers, never by the model name: which ``AT+QSSLCFG`` keys to
send and in which form, how long a URL may be, whether ``AT+QHTTPSTOP`` exists.

    answers = TestAnswers.of(modem)
    keys = await answers.keys(C.QSSLCFG_TEST())      # {"sslversion": '(0-5),(0-4)', ...}
"""

from __future__ import annotations

import asyncio
import re
import weakref

from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError
from quecmqtt.runtime import Modem

_KEYED = re.compile(r'\+[A-Z]+ ?: ?"([^"]+)",?(.*)\Z')
_RANGE = re.compile(r"\((\d+)-(\d+)\)")
_ANSWERS: weakref.WeakKeyDictionary[Modem, TestAnswers] = weakref.WeakKeyDictionary()


class TestAnswers:
    """The ``=?`` answers of one modem; `of(modem)` gives its one instance."""

    __test__ = False  # not a pytest test class

    @classmethod
    def of(cls, modem: Modem) -> TestAnswers:
        answers = _ANSWERS.get(modem)
        if answers is None:
            answers = _ANSWERS[modem] = cls(modem)
        return answers

    def __init__(self, modem: Modem) -> None:
        self.modem = modem
        self._cache: dict[bytes, tuple[str, ...] | None] = {}
        self._lock = asyncio.Lock()

    async def lines(self, command: Command) -> tuple[str, ...] | None:
        """The answer's lines, or None if the module answered ERROR (it lacks the command)."""
        async with self._lock:
            if command.line not in self._cache:
                try:
                    reply = await self.modem.execute(command)
                except CommandError:
                    self._cache[command.line] = None
                else:
                    self._cache[command.line] = reply.lines
            return self._cache[command.line]

    async def keys(self, command: Command) -> dict[str, str] | None:
        """For keyed answers (``+QSSLCFG: "sni",(0-5),(0,1)``): key -> the rest of its line."""
        lines = await self.lines(command)
        return None if lines is None else keyed(lines)

    async def has(self, command: Command) -> bool:
        return await self.lines(command) is not None


def keyed(lines: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        match = _KEYED.match(line.strip())
        if match is not None:
            out[match.group(1)] = match.group(2)
    return out


def first_range(text: str) -> tuple[int, int] | None:
    """The first ``(lo-hi)`` range in a ``=?`` answer line."""
    match = _RANGE.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def last_field_is_name(rest: str) -> bool:
    """A setting whose last field is a quoted or bracketed name takes a string
    (``"sni",(0-5),"<sni>"``); a range or list takes a number (``"sni",(0-5),(0,1)``)."""
    return not rest.rstrip().endswith(")")
