"""Publishing on the module: which command form it has and its limits, msg ids, handles.

The form is probed once per module (``AT+QMTPUBEX=?``, then ``AT+QMTPUB=?``) from the last
field of each answer: a range or a length name means a length form, the topic last means the
Ctrl-Z form, a message name the inline form (BG95/BG77 ``AT+QMTPUBEX``). The length forms are
binary-safe and preferred; the Ctrl-Z form refuses payloads holding Ctrl-Z or ESC; the inline
form is the last resort (text without quotes, 560 bytes). The limit is read from the same
answer, so a message the module can never take is known before it is sent: the session
dead-letters it at once instead of reconnecting over it.

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
FORM_PUBEX_INLINE = "pubex-inline"  # AT+QMTPUBEX=...,"<message>" (BG95/BG77)
FORM_PUB_INLINE = "pub-inline"  # AT+QMTPUB=...,"<message>"
_INLINE = frozenset({FORM_PUBEX_INLINE, FORM_PUB_INLINE})
_LAST_RANGE = re.compile(r"\((\d+)-(\d+)\)\s*\Z")
# the command table's limits; the inline one is LooUQ's figure for BG95 ("PUBEX=560")
_TABLE_LIMIT = {FORM_PUBEX: 10240, FORM_FIXED: 4096, FORM_CTRLZ: 4096, FORM_PUBEX_INLINE: 560, FORM_PUB_INLINE: 560}
# what a module shows as the last field of its =? answer, when it is a name and not a range
_LENGTH_NAMES = ("len",)
_TOPIC_NAMES = ("topic", "topic_name")


@dataclass(frozen=True)
class PublishForm:
    """A publish command form and the largest payload the module takes with it.

    `fallback`: a form to try once if this one is refused with ERROR. ``AT+QMTPUB=?`` on a
    real BG96 ends in ``(1-1548)``, which reads like a length parameter but is the most the
    Ctrl-Z entry takes (its MQTT AN has no length form): the fixed form is tried first and,
    if the module refuses it while the Ctrl-Z form works, the Ctrl-Z form is kept."""

    name: str
    max_length: int
    fallback: PublishForm | None = None

    @property
    def inline(self) -> bool:
        return self.name in _INLINE

    def command(self, index: int, msg_id: int, qos: int, retain: bool, topic: str, payload: bytes) -> Command:
        """The command for this payload (its length for the length forms, the message
        itself for the inline forms); InvalidArgument if the payload cannot go that way."""
        if self.name == FORM_PUBEX:
            return C.QMTPUBEX(index, msg_id, qos, int(retain), topic, len(payload))
        if self.name == FORM_FIXED:
            return C.QMTPUB(index, msg_id, qos, int(retain), topic, len(payload))
        if self.inline:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument("this module publishes inline: the payload must be UTF-8 text") from None
            make = C.QMTPUBEX_INLINE if self.name == FORM_PUBEX_INLINE else C.QMTPUB_INLINE
            return make(index, msg_id, qos, int(retain), topic, message)
        return C.QMTPUB_CTRLZ(index, msg_id, qos, int(retain), topic)

    def problem(self, payload: bytes) -> str | None:
        """Why this module can never publish `payload` with this form, or None."""
        if not payload:
            return "the payload is empty (the module's publish commands need at least one byte)"
        if len(payload) > self.max_length:
            return f"the payload is {len(payload)} bytes; this module publishes at most {self.max_length}"
        if self.name == FORM_CTRLZ and (b"\x1a" in payload or b"\x1b" in payload):
            return "this module publishes only with Ctrl-Z: the payload cannot hold 0x1A or 0x1B"
        if self.inline and (b'"' in payload or any(b < 0x20 or b == 0x7F for b in payload)):
            return "this module publishes the message inline: it cannot hold a quote or control characters"
        return None


def form_named(name: str) -> PublishForm:
    """A form given by name (no probe): the command table's limit."""
    if name not in _TABLE_LIMIT:
        raise InvalidArgument(f"unknown publish form {name!r}; one of {', '.join(_TABLE_LIMIT)}")
    return PublishForm(name, _TABLE_LIMIT[name])


def read_last_field(fields: list[tuple[object, ...]]) -> tuple[str, int | None]:
    """What the last field of a publish ``=?`` answer says: ("length", upper bound) for a
    range such as ``(1-4096)``, ("length", None) for a name such as ``"length"`` (a real
    EC800M), ("none", None) when the topic is last, ("inline", None) for a message name
    such as ``"msg"``."""
    if not fields or not fields[0]:
        return "none", None
    row = fields[0]
    last = str(row[-1]).strip()
    match = _LAST_RANGE.search(last)
    if match is not None:
        return "length", int(match.group(2))
    word = last.strip('"<> ').lower()
    if any(name in word for name in _LENGTH_NAMES):
        return "length", None
    if word in _TOPIC_NAMES or len(row) < 6:
        return "none", None
    return "inline", None


def _bounded(form: str, limit: int | None) -> int:
    return max(1, min(_TABLE_LIMIT[form], limit)) if limit else _TABLE_LIMIT[form]


async def probe_publish_form(modem: Modem) -> PublishForm:
    """Which publish command the module has, read from the last field of the ``=?``
    answers, and its payload limit. Preference: the length forms (binary-safe), then
    Ctrl-Z, then inline (text only, shortest)."""
    pubex: tuple[str, int | None] = ("absent", None)
    with contextlib.suppress(CommandError):
        pubex = read_last_field((await modem.execute(C.QMTPUBEX_TEST())).fields("+QMTPUBEX"))
    if pubex[0] == "length":
        return PublishForm(FORM_PUBEX, _bounded(FORM_PUBEX, pubex[1]))
    pub: tuple[str, int | None] = ("absent", None)
    with contextlib.suppress(CommandError):
        pub = read_last_field((await modem.execute(C.QMTPUB_TEST())).fields("+QMTPUB"))
    if pub[0] == "length":
        ctrlz = PublishForm(FORM_CTRLZ, _bounded(FORM_CTRLZ, pub[1]))
        return PublishForm(FORM_FIXED, _bounded(FORM_FIXED, pub[1]), fallback=ctrlz)
    if pub[0] == "none":
        return PublishForm(FORM_CTRLZ, _TABLE_LIMIT[FORM_CTRLZ])
    if pubex[0] == "inline":
        return PublishForm(FORM_PUBEX_INLINE, _TABLE_LIMIT[FORM_PUBEX_INLINE])
    if pub[0] == "inline":
        return PublishForm(FORM_PUB_INLINE, _TABLE_LIMIT[FORM_PUB_INLINE])
    raise MqttError("the module has neither AT+QMTPUBEX nor AT+QMTPUB", -1)


def check_topic_name(topic: str) -> None:
    """A topic to publish to: not empty, no wildcards (the broker would drop the link)."""
    if not topic:
        raise InvalidArgument("the topic is empty")
    if "+" in topic or "#" in topic:
        raise InvalidArgument(f"cannot publish to {topic!r}: wildcards (+, #) are for subscriptions only")


def check_topic_filter(topic: str) -> None:
    """A topic filter to subscribe to: not empty; `#` only as the whole last level, `+` only
    as a whole level (MQTT 3.1.1, 4.7.1). A broker drops the link of a malformed filter."""
    if not topic:
        raise InvalidArgument("a topic filter cannot be empty")
    levels = topic.split("/")
    for number, level in enumerate(levels):
        if "#" in level and (level != "#" or number != len(levels) - 1):
            raise InvalidArgument(f"topic filter {topic!r}: '#' must be a whole level, and the last")
        if "+" in level and level != "+":
            raise InvalidArgument(f"topic filter {topic!r}: '+' must be a whole level")


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
