"""What the MQTT layer tracks about the module's client links, per modem.

* **Owned clients**: the indices this process drives (one `MqttClient` each).
* **Reconciliation**: at open, clients an earlier process left open or connected on indices
  nobody here owns are disconnected and closed (``AT+QMTCONN?``, ``AT+QMTOPEN?``, then
  ``AT+QMTDISC``/``AT+QMTCLOSE``), so a leftover link cannot take messages meant for us. A
  module that never answers ``AT+QMTOPEN?`` (BGx over UART) costs 3 s, not the start-up. It
  is a start-up step that runs only at open (a reboot leaves no links), or, when the first
  client is made on a modem that is open already, before that client's first open.
* **The own-close window**: after our own ``AT+QMTDISC``/``AT+QMTCLOSE`` the module reports
  ``+QMTSTAT: <c>,5`` (or another code); that report is expected, not a link loss, so it is
  held back (a gate on the modem's event bus) until 5 s after the command, or until the next
  ``AT+QMTOPEN`` on that index.

The runtime knows none of this: it is registered here as a gate, a command observer and a
start-up step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

from quecmqtt.at import commands as C
from quecmqtt.at.events import Event, MqttStatus
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError, CommandTimeout, LocalProtocolError, QuecError
from quecmqtt.runtime import Modem, ModuleReset, State, StepHandle

log = logging.getLogger("quecmqtt.mqtt")

CLOSE_WINDOW = 5.0  # seconds after our own close during which +QMTSTAT is expected
OPEN_READ_TIMEOUT = 3.0  # AT+QMTOPEN? answers at once where it answers at all
_CLOSING = frozenset({"+QMTCLOSE", "+QMTDISC"})
_LINKS: weakref.WeakKeyDictionary[Modem, MqttLinks] = weakref.WeakKeyDictionary()


class MqttLinks:
    """See the module docstring; `MqttLinks.of(modem)` gives the one of a modem."""

    @classmethod
    def of(cls, modem: Modem) -> MqttLinks:
        links = _LINKS.get(modem)
        if links is None:
            links = _LINKS[modem] = cls(modem)
        return links

    def __init__(self, modem: Modem) -> None:
        self.modem = modem
        self.owned: set[int] = set()
        self._closing: dict[int, float] = {}  # client -> until when +QMTSTAT is expected
        self._reconciled: asyncio.Future[None] | None = None
        modem.add_gate(self._gate)
        modem.add_listener(self._on_event)
        modem.observe_commands(self._observe)
        # at open (a first_only step, gone once it ran); a modem open already reconciles
        # before the first client opens instead
        self._pending_reconcile = modem.state is not State.CLOSED and modem.reconcile
        self.step: StepHandle | None = None
        if modem.state is State.CLOSED:
            self.step = modem.add_init_step(
                self._reconcile, name="mqtt: close clients left open", required=False, first_only=True,
                key="mqtt-reconcile",
            )  # fmt: skip

    def claim(self, client: int, *, exclusive: bool = False) -> None:
        """Mark an index as driven by this process (reconciliation leaves it alone).
        `exclusive`: raise if it is claimed already (two objects driving one index)."""
        if exclusive and client in self.owned:
            raise LocalProtocolError(f"MQTT client index {client} is already in use on this modem")
        self.owned.add(client)

    def release(self, client: int) -> None:
        self.owned.discard(client)

    async def ensure_reconciled(self) -> None:
        """Reconcile now if this layer came to a modem that was open already (once)."""
        if not self._pending_reconcile:
            return
        if self._reconciled is None:
            self._reconciled = asyncio.get_running_loop().create_future()
            try:
                await self._reconcile(self.modem)
            finally:
                self._pending_reconcile = False
                self._reconciled.set_result(None)
        else:
            await asyncio.shield(self._reconciled)

    # -- the window after our own close -----------------------------------------------------

    def _observe(self, command: Command, what: str) -> None:
        client = command.scope
        if client is None:
            return
        name = command.spec.name
        if command.spec.ends_scope and name in _CLOSING:
            self._closing[client] = float("inf") if what == "sent" else asyncio.get_running_loop().time() + CLOSE_WINDOW
        elif name == "+QMTOPEN" and what == "sent":
            self._closing.pop(client, None)  # a new connection: its reports are real again

    def _gate(self, event: Event) -> str | None:
        if not isinstance(event, MqttStatus):
            return None
        until = self._closing.get(event.client)
        if until is not None and asyncio.get_running_loop().time() < until:
            return f"+QMTSTAT: {event.client},{event.code} after our own close"
        return None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ModuleReset):
            self._closing.clear()

    # -- reconciliation ------------------------------------------------------------------------

    async def _reconcile(self, modem: Modem) -> None:
        """Close MQTT clients an earlier process left open, unless owned here."""
        self._pending_reconcile = False
        if self.step is not None:
            self.step.remove()  # once: a reboot leaves no links behind
            self.step = None
        found: dict[int, int] = {}  # client -> connection state (0 if only open)
        with contextlib.suppress(CommandError):
            reply = await modem.execute(C.QMTCONN_READ())
            for fields in reply.fields("+QMTCONN"):
                found[int(fields[0])] = int(fields[1])
        try:
            opened = (await modem.execute(C.QMTOPEN_READ(), timeout=OPEN_READ_TIMEOUT)).fields("+QMTOPEN")
        except CommandError:
            opened = []  # no such listing: what AT+QMTCONN? listed is all there is
        except CommandTimeout:
            # BGx over UART may never answer AT+QMTOPEN? (LooUQ ltemc-mqtt.c:457): what
            # AT+QMTCONN? listed is all there is to close
            log.info("no answer to AT+QMTOPEN? (BGx over UART): closing only what AT+QMTCONN? listed")
            opened = []
        for fields in opened:
            found.setdefault(int(fields[0]), 0)
        for client, state in sorted(found.items()):
            if client in self.owned:
                continue
            log.info("closing MQTT client %d left open by an earlier process (state %d)", client, state)
            if state in (2, 3):
                with contextlib.suppress(QuecError):
                    await modem.execute(C.QMTDISC(client))
            with contextlib.suppress(QuecError):
                await modem.execute(C.QMTCLOSE(client))
