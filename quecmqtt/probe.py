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

from quecmqtt.at.events import Event, ModuleReady
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError
from quecmqtt.runtime import Modem

_KEYED = re.compile(r'\+[A-Z]+ ?: ?"([^"]+)",?(.*)\Z')
_RANGE = re.compile(r"\((\d+)-(\d+)\)")
_ANSWERS: weakref.WeakKeyDictionary[Modem, TestAnswers] = weakref.WeakKeyDictionary()


class TestAnswers:
    """The ``=?`` answers of one modem; `of(modem)` gives its one instance.

    A plain ``ERROR`` (or ``+CME ERROR: 4``, not supported) means the module lacks the
    command and is kept; any other error is not kept, the question is asked again next time.
    Everything is forgotten when the module restarts (a firmware update comes with one).
    Concurrent askers of one question share one exchange; different questions never wait
    for each other (a start-up step may ask while a caller's question waits for recovery)."""

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
        self._asking: dict[bytes, asyncio.Future[tuple[str, ...] | None]] = {}
        modem.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ModuleReady):
            self._cache.clear()

    async def lines(self, command: Command) -> tuple[str, ...] | None:
        """The answer's lines, or None if the module lacks the command."""
        key = command.line
        if key in self._cache:
            return self._cache[key]
        asking = self._asking.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[tuple[str, ...] | None] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            try:
                reply = await self.modem.execute(command)
            except CommandError as exc:
                lacks = exc.cme is None or exc.cme == 4
                answer: tuple[str, ...] | None = None
                if lacks:
                    self._cache[key] = None
            else:
                answer = self._cache[key] = reply.lines
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the ones sharing it get it through their await
            raise
        finally:
            del self._asking[key]

    async def keys(self, command: Command) -> dict[str, str] | None:
        """For keyed answers (``+QSSLCFG: "sni",(0-5),(0,1)``): key -> the rest of its line.
        None when the module lacks the command or its answer lists no key at all."""
        lines = await self.lines(command)
        found = keyed(lines) if lines is not None else {}
        return found or None

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
