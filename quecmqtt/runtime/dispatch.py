"""Routing what the reader decodes: answers to the command channel, two-phase results to
their waiters, lifecycle banners to the supervisor, everything else through the bus."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from quecmqtt.at import commands as C
from quecmqtt.at.events import (
    CommandComplete,
    Event,
    Garbage,
    ModuleReady,
    PoweredDown,
    Prompt,
    PsmEntered,
    ResponseOverflow,
    UnsolicitedFinal,
    Urc,
)
from quecmqtt.errors import LinkLost
from quecmqtt.secret import Secret

if TYPE_CHECKING:
    from quecmqtt.runtime.modem import Modem

log = logging.getLogger("quecmqtt.runtime")

GARBAGE_REPORT_EVERY = 10.0  # seconds between two warnings about garbage from the module


class Dispatcher:
    def __init__(self, modem: Modem) -> None:
        self._modem = modem
        self._garbage_reported = -1e9
        self._garbage_quiet = 0

    def dispatch_all(self) -> None:
        modem = self._modem
        for secret in modem.codec.take_secrets():  # before the recorder writes their line
            modem.redactor.add(secret)
        for event in modem.codec.events():
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        match event:
            case CommandComplete():
                for response in event.responses:  # secrets read back join the redactor
                    for value in response.fields:
                        if isinstance(value, Secret):
                            self._modem.redactor.add(value)
                self._modem.channel.completed(event)
            case Prompt():
                self._modem.channel.prompted(event)
            case ResponseOverflow():
                self._modem.channel.overflowed(event)
            case Urc() if self._modem.waiters.resolve(event):
                return  # a two-phase result, taken by the command waiting for it
            case ModuleReady():
                self._modem.supervisor.ready_banner(event.banner)
                self._modem.bus.publish(event)
            case PoweredDown():
                self._modem.supervisor.powered_down(event.banner)
                self._modem.bus.publish(event)
            case PsmEntered():
                self._modem.supervisor.psm_entered(event.banner)
                self._modem.bus.publish(event)
            case UnsolicitedFinal():
                log.debug("late final result ignored: %s", event.final.text)
                self._modem.channel.unsolicited()
            case Garbage():
                self._report_garbage(event)
                self._modem.bus.publish(event)
            case _:
                self._deliver(event)

    def _deliver(self, event: Event) -> None:
        """A URC or another report: a late result (stale), held back by a gate, or it fails
        the waiters the command table says it fails, and then goes to listeners and
        subscribers."""
        if isinstance(event, Urc) and event.prefix in _RESULT_PREFIXES:
            log.debug("stale result ignored: %s", self._modem.redactor.redact_text(event.text))
            return
        reason = self._modem.bus.held_back(event)
        if reason is not None:
            log.debug("held back (%s): %r", reason, event)
            return
        prefix = getattr(event, "prefix", None)
        if prefix in _FAILING_PREFIXES:
            fields = getattr(event, "fields", ())
            if fields and isinstance(fields[0], int):
                code = fields[1] if len(fields) > 1 and isinstance(fields[1], int) else -1
                self._modem.waiters.fail_scope(prefix, fields[0], LinkLost(fields[0], code, prefix))
        if not self._modem.bus.publish(event):
            log.debug("unhandled: %r", event)

    def _report_garbage(self, event: Garbage) -> None:
        """One warning per `GARBAGE_REPORT_EVERY` seconds, with the count of those not
        reported: a noisy line must not turn the log into a flood."""
        now = asyncio.get_running_loop().time()
        if now - self._garbage_reported < GARBAGE_REPORT_EVERY:
            self._garbage_quiet += 1
            log.debug("garbage from the module (%d bytes): %s", event.length, event.reason)
            return
        quiet, self._garbage_quiet = self._garbage_quiet, 0
        self._garbage_reported = now
        more = f" ({quiet} more since the last report)" if quiet else ""
        log.warning("garbage from the module (%d bytes): %s%s", event.length, event.reason, more)


# Prefixes of every two-phase result in the command table: such a URC that no waiter took is
# a late result of an operation given up (or of an earlier process): stale. And the prefixes
# of the reports that fail a waiter whose scope they name.
_RESULT_PREFIXES = frozenset(s.result.prefix for s in C.ALL if s.result is not None)
_FAILING_PREFIXES = frozenset(p for s in C.ALL if s.result is not None for p in s.result.fails_on)
