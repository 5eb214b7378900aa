"""Events the AT codec produces. All are frozen; none holds a secret in clear text in its
`repr` (secret response fields are `Secret` objects, and `text` is redacted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quecmqtt.at.cme import cme_description
from quecmqtt.secret import Secret

if TYPE_CHECKING:
    from quecmqtt.at.spec import Command

FieldValue = int | str | Secret


class Event:
    """Base class of every codec event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Final(Event):
    """A final result line. `kind` is ``OK``, ``ERROR``, ``+CME ERROR``, ``+CMS ERROR``,
    ``NO CARRIER``, ``SEND OK``, ``SEND FAIL``, ``BUSY``, ``NO ANSWER`` or ``NO DIALTONE``."""

    kind: str
    text: str
    cme: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("OK", "SEND OK")

    @property
    def description(self) -> str:
        return cme_description(self.cme) if self.cme is not None else ""


@dataclass(frozen=True, slots=True)
class Response(Event):
    """A line that belongs to the pending command: ``prefix`` is ``"+CSQ"`` for
    ``+CSQ: 20,99`` and None for an unprefixed intermediate line (``ATI``, ``AT+CGSN``)."""

    prefix: str | None
    fields: tuple[FieldValue, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Urc(Event):
    """An unsolicited line: ``+QMTOPEN: 0,0``, ``+QIURC: "pdpdeact",1``, ``RING``.

    Two-phase results (``+QMTOPEN``, ``+QMTPUBEX``, ``+QHTTPGET``...) are URCs too: the
    runtime correlates them with the command that asked for them."""

    prefix: str
    fields: tuple[FieldValue, ...]
    text: str


@dataclass(frozen=True, slots=True)
class MqttMessage(Event):
    """A received MQTT message: pushed as ``+QMTRECV`` or read from the module's buffer.

    `declared_length` is the module's length field, None when the module sent none."""

    client: int
    msg_id: int
    topic: str
    payload: bytes
    declared_length: int | None = None
    buffered: bool = False

    def __repr__(self) -> str:  # payloads can be large and may carry secrets
        return (
            f"MqttMessage(client={self.client}, msg_id={self.msg_id}, topic={self.topic!r}, "
            f"payload=<{len(self.payload)} bytes>, buffered={self.buffered})"
        )


@dataclass(frozen=True, slots=True)
class MqttStatus(Event):
    """``+QMTSTAT: <client>,<code>``: the module closed the client's link."""

    client: int
    code: int

    @property
    def prefix(self) -> str:
        return "+QMTSTAT"

    @property
    def fields(self) -> tuple[int, int]:
        return (self.client, self.code)


@dataclass(frozen=True, slots=True)
class ModuleReady(Event):
    """``RDY`` or ``APP RDY``: the module (re)started."""

    banner: str


@dataclass(frozen=True, slots=True)
class PoweredDown(Event):
    """``POWERED DOWN`` / ``NORMAL POWER DOWN``: the module is switching off or rebooting."""

    banner: str


@dataclass(frozen=True, slots=True)
class PsmEntered(Event):
    """``PSM POWER DOWN``: the module enters power saving mode and answers nothing until it
    wakes (PON or its timer) with ``RDY``. (FreeRTOS's BG96 port; the BG96 PSM AN's
    example shows ``POWER DOWN`` after ``+QPSMTIMER``, which is taken the same way.)"""

    banner: str


@dataclass(frozen=True, slots=True)
class SimStatus(Event):
    """The SIM changed: ``+CPIN: NOT READY`` or ``+QSIMSTAT: <en>,0`` (removed), ``+CPIN:
    READY`` or ``+QSIMSTAT: <en>,1`` (back), ``+CPIN: SIM PIN`` (back, locked). BG96 AT
    manual 5.9, 5.10. `inserted` is None for ``+QSIMSTAT: <en>,2`` (not known yet)."""

    inserted: bool | None
    ready: bool
    text: str


@dataclass(frozen=True, slots=True)
class Prompt(Event):
    """The module waits for the pending command's data: ``> `` or ``CONNECT``.
    Answer with `AtCodec.send_data` (or `abort_data` for Ctrl-Z entry)."""

    command: Command
    marker: str


@dataclass(frozen=True, slots=True)
class CommandComplete(Event):
    """The pending command received its final result.

    `results` holds two-phase result URCs for this command that arrived before the final
    result (they were also emitted as `Urc` events); `body` is the data a ``CONNECT``
    download phase delivered (``AT+QHTTPREAD``)."""

    command: Command
    final: Final
    responses: tuple[Response, ...] = ()
    results: tuple[Urc, ...] = ()
    body: bytes | None = field(default=None, repr=False)
    echoed: bool = False
    overflowed: bool = False  # more lines came than the codec keeps (see ResponseOverflow)

    @property
    def ok(self) -> bool:
        return self.final.ok

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(r.text for r in self.responses)


@dataclass(frozen=True, slots=True)
class ResponseOverflow(Event):
    """The pending command got more response lines (or bytes) than the codec keeps for it:
    `kept` lines and `size` bytes were kept, the rest is counted through. The runtime fails
    the command at once; memory stays bounded however much a module floods."""

    command: Command
    kept: int
    size: int


@dataclass(frozen=True, slots=True)
class UnsolicitedFinal(Event):
    """A final result with no command pending (a late answer to an abandoned command, or
    a plain capture decoded with no host side)."""

    final: Final


@dataclass(frozen=True, slots=True)
class Garbage(Event):
    """Bytes that fit nothing: noise, a cut line, a line over the length cap, a payload
    whose length field lied. `data` is at most the first `GARBAGE_SAMPLE` bytes; `length`
    is the true count."""

    data: bytes
    length: int
    reason: str

    def __repr__(self) -> str:
        return f"Garbage(length={self.length}, reason={self.reason!r})"


GARBAGE_SAMPLE = 256
