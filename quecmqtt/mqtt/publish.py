"""Publishing on the module: which command form it has and its limits, msg ids, handles.

The form is probed once per module (``AT+QMTPUBEX=?``, then ``AT+QMTPUB=?``): the length
forms are binary-safe; the Ctrl-Z form is used only when nothing else exists and refuses
payloads holding Ctrl-Z or ESC. The limit is read from the same answer (its last field, a
range such as ``(1-4096)``), so a message the module can never take is known before it is
sent: the session dead-letters it at once instead of reconnecting over it.

Msg ids are taken per client, 1-65535, and never one the module may still use: an id is
free again when its result came, or, when the caller went away (cancelled) after the
command may have gone out, only once the module's own time-out for that result is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass

from quecmqtt.at import commands as C
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError, InvalidArgument, MqttError
from quecmqtt.runtime import Modem, Pending
from quecmqtt.runtime.waiters import Waiter

log = logging.getLogger("quecmqtt.mqtt")

FORM_PUBEX = "pubex"  # AT+QMTPUBEX=...,<length>
FORM_FIXED = "pub-fixed"  # AT+QMTPUB=...,<length>
FORM_CTRLZ = "pub-ctrlz"  # AT+QMTPUB=... then data and Ctrl-Z
_LAST_RANGE = re.compile(r"\((\d+)-(\d+)\)\s*\Z")
_TABLE_LIMIT = {FORM_PUBEX: 10240, FORM_FIXED: 4096, FORM_CTRLZ: 4096}


@dataclass(frozen=True)
class PublishForm:
    """A publish command form and the largest payload the module takes with it."""

    name: str
    max_length: int

    def command(self, index: int, msg_id: int, qos: int, retain: bool, topic: str, length: int) -> Command:
        if self.name == FORM_PUBEX:
            return C.QMTPUBEX(index, msg_id, qos, int(retain), topic, length)
        if self.name == FORM_FIXED:
            return C.QMTPUB(index, msg_id, qos, int(retain), topic, length)
        return C.QMTPUB_CTRLZ(index, msg_id, qos, int(retain), topic)

    def problem(self, payload: bytes) -> str | None:
        """Why this module can never publish `payload` with this form, or None."""
        if not payload:
            return "the payload is empty (the module's publish commands need at least one byte)"
        if len(payload) > self.max_length:
            return f"the payload is {len(payload)} bytes; this module publishes at most {self.max_length}"
        if self.name == FORM_CTRLZ and (b"\x1a" in payload or b"\x1b" in payload):
            return "this module publishes only with Ctrl-Z: the payload cannot hold 0x1A or 0x1B"
        return None


def form_named(name: str) -> PublishForm:
    """A form given by name (no probe): the command table's limit."""
    if name not in _TABLE_LIMIT:
        raise InvalidArgument(f"unknown publish form {name!r}; one of {', '.join(_TABLE_LIMIT)}")
    return PublishForm(name, _TABLE_LIMIT[name])


def _limit(fields: list[tuple[object, ...]], default: int) -> int:
    """The upper bound of the last range in a ``=?`` answer, within the table's limit."""
    if fields and fields[0]:
        match = _LAST_RANGE.search(str(fields[0][-1]))
        if match is not None:
            return max(1, min(default, int(match.group(2))))
    return default


async def probe_publish_form(modem: Modem) -> PublishForm:
    """Which publish command the module has (the length forms first: binary-safe), and
    its payload limit."""
    with contextlib.suppress(CommandError):
        reply = await modem.execute(C.QMTPUBEX_TEST())
        return PublishForm(FORM_PUBEX, _limit(reply.fields("+QMTPUBEX"), _TABLE_LIMIT[FORM_PUBEX]))
    try:
        reply = await modem.execute(C.QMTPUB_TEST())
    except CommandError as exc:
        raise MqttError("the module has neither AT+QMTPUBEX nor AT+QMTPUB", -1) from exc
    fields = reply.fields("+QMTPUB")
    # a last range such as (1-4096) means a length parameter: the fixed-length form
    if fields and len(fields[0]) >= 6 and str(fields[0][-1]).startswith("("):
        return PublishForm(FORM_FIXED, _limit(fields, _TABLE_LIMIT[FORM_FIXED]))
    return PublishForm(FORM_CTRLZ, _TABLE_LIMIT[FORM_CTRLZ])


def check_topic_name(topic: str) -> None:
    """A topic to publish to: not empty, no wildcards (the broker would drop the link)."""
    if not topic:
        raise InvalidArgument("the topic is empty")
    if "+" in topic or "#" in topic:
        raise InvalidArgument(f"cannot publish to {topic!r}: wildcards (+, #) are for subscriptions only")


class MsgIds:
    """Packet ids 1-65535 for one client: never one that is in flight or quarantined."""

    def __init__(self) -> None:
        self._next = 1
        self.in_flight: set[int] = set()
        self._quarantine: dict[int, float] = {}  # id -> loop time until which the module may use it

    def take(self) -> int:
        if self._quarantine:
            now = asyncio.get_running_loop().time()
            for msg_id in [i for i, until in self._quarantine.items() if until <= now]:
                del self._quarantine[msg_id]
        if len(self.in_flight) + len(self._quarantine) >= 65535:
            raise MqttError("no free msg id: 65535 operations in flight", -1)
        while self._next in self.in_flight or self._next in self._quarantine:
            self._next = self._next % 65535 + 1
        msg_id = self._next
        self.in_flight.add(msg_id)
        self._next = self._next % 65535 + 1
        return msg_id

    def release(self, msg_id: int) -> None:
        self.in_flight.discard(msg_id)

    def quarantine(self, msg_id: int, until: float) -> None:
        """The caller is gone but the module may still use `msg_id` until `until`."""
        if msg_id in self.in_flight:
            self.in_flight.discard(msg_id)
            self._quarantine[msg_id] = until

    def settle(self, msg_id: int, waiter: Waiter) -> None:
        """`waiter` is over: its result came (or failed, or expired), or it was dropped
        because its caller went away, when the module may still answer until its deadline."""
        if waiter.future.cancelled():
            self.quarantine(msg_id, waiter.deadline)
        else:
            self.release(msg_id)

    def reset(self) -> None:
        """The module restarted: nothing it knew is in flight any more."""
        self.in_flight.clear()
        self._quarantine.clear()

    def __len__(self) -> int:
        return len(self.in_flight) + len(self._quarantine)


class PublishHandle:
    """A publish the module has taken: `await handle.result()` for the broker's answer.
    Its msg id is freed when the result is in, whether or not anyone awaits it."""

    def __init__(self, index: int, ids: MsgIds, msg_id: int, pending: Pending | None) -> None:
        self.msg_id = msg_id
        self.index = index
        self._pending = pending
        if pending is not None and pending.waiter is not None:
            pending.waiter.add_done_callback(lambda waiter: ids.settle(msg_id, waiter))
        else:
            ids.release(msg_id)

    async def result(self) -> None:
        """Returns when the module reports the message sent (QoS 0) or acknowledged; raises
        MqttError (the module gave up), LinkLost, or what the runtime raises."""
        if self._pending is None:
            return
        urc = await self._pending.result()
        result = urc.fields[2] if len(urc.fields) > 2 and isinstance(urc.fields[2], int) else -1
        if result != 0:
            raise MqttError(f"publish {self.msg_id} on client {self.index} failed: {urc.text}", result)
