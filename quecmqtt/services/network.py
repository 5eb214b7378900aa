"""Network bring-up on the module: identity, SIM, signal, registration, operator, radio
settings (BG9x), PDP contexts, the module's clock, and one `attach()` that does it all
and says which step failed.

    network = Network(modem, apn="internet")
    attached = await network.attach(timeout=120)
    print(attached.ip, attached.operator)

`watch()` keeps the context up: on ``+QIURC: "pdpdeact"`` it deactivates the context and
activates it again (the module requires the deactivation first [V: reference 4.3]), and it
re-attaches after a reboot. The context's configuration is volatile on the module, so it is
re-applied in every init script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass
from typing import ClassVar

from quecmqtt.at import commands as C
from quecmqtt.at.cme import Cme
from quecmqtt.at.events import ModuleReady, Urc
from quecmqtt.at.spec import Command
from quecmqtt.errors import (
    AttachError,
    CommandError,
    CommandTimeout,
    InvalidArgument,
    QuecError,
    QueueClosed,
)
from quecmqtt.runtime import Modem, ModuleReset, StepHandle
from quecmqtt.secret import Secret

log = logging.getLogger("quecmqtt.services.network")

ACCESS_TECHNOLOGY = {0: "GSM", 2: "UTRAN", 3: "GSM/EGPRS", 7: "LTE", 8: "LTE-M", 9: "NB-IoT"}
REGISTRATION = {0: "not registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}


@dataclass(frozen=True)
class Identity:
    manufacturer: str
    model: str
    revision: str
    imei: str


@dataclass(frozen=True)
class Signal:
    """`rssi` 0-31 as the module reports it (None for 99, unknown), `dbm` = -113 + 2 * rssi."""

    rssi: int | None
    ber: int | None
    dbm: int | None
    detail: tuple[object, ...] = ()  # AT+QCSQ: ("LTE", rssi, rsrp, sinr, rsrq)


@dataclass(frozen=True)
class Registration:
    """Registration state per domain (CS, PS, EPS); None where the module gave none."""

    creg: int | None
    cgreg: int | None
    cereg: int | None

    @property
    def registered(self) -> bool:
        return any(stat in (1, 5) for stat in (self.creg, self.cgreg, self.cereg))

    @property
    def denied(self) -> bool:
        known = [s for s in (self.creg, self.cgreg, self.cereg) if s is not None]
        return bool(known) and all(s == 3 for s in known)

    @property
    def roaming(self) -> bool:
        return 5 in (self.creg, self.cgreg, self.cereg)

    def describe(self) -> str:
        parts = [
            f"{name} {REGISTRATION.get(s, s)}"
            for name, s in (("CS", self.creg), ("PS", self.cgreg), ("EPS", self.cereg))
            if s is not None
        ]
        return ", ".join(parts) or "no answer"


@dataclass(frozen=True)
class Operator:
    name: str
    act: int | None

    @property
    def technology(self) -> str:
        return ACCESS_TECHNOLOGY.get(self.act, "unknown") if self.act is not None else "unknown"


@dataclass(frozen=True)
class PdpContext:
    cid: int
    active: bool
    context_type: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Attached:
    cid: int
    ip: str
    operator: Operator
    signal: Signal
    registration: Registration
    seconds: float


class PdpKeeper:
    """The one owner of a PDP context's "lost, bring it back" on a modem, shared by every
    `Network` object for that context: a session that reconnects and `Network.watch()`
    both ask it, and the context is deactivated and activated once per loss, not once per
    asker."""

    _keepers: ClassVar[weakref.WeakKeyDictionary[Modem, dict[int, PdpKeeper]]] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, modem: Modem, cid: int) -> PdpKeeper:
        per_modem = cls._keepers.setdefault(modem, {})
        keeper = per_modem.get(cid)
        if keeper is None:
            keeper = per_modem[cid] = cls(modem, cid)
        return keeper

    def __init__(self, modem: Modem, cid: int) -> None:
        self.modem = modem
        self.cid = cid
        self.lost = False
        self.losses = 0  # loss reports so far
        self._loss = asyncio.Event()  # replaced at every loss: each waiter sees each loss
        self._restoring: asyncio.Task[None] | None = None
        modem.add_listener(self._on_event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, Urc) and event.prefix == "+QIURC" and event.fields[:1] == ("pdpdeact",):
            cid = event.fields[1] if len(event.fields) > 1 else None
            if cid in (None, self.cid):
                log.warning("PDP context %d deactivated by the network (%s)", self.cid, event.text)
                self.lost = True
                self.losses += 1
                self._loss.set()
                self._loss = asyncio.Event()
        elif isinstance(event, ModuleReset):
            self.lost = False  # a module that restarted activates its default context itself

    async def next_loss(self) -> None:
        """Until the next loss report."""
        await self._loss.wait()

    async def restore(self, network: Network) -> None:
        """Bring the context back if it was lost; concurrent callers share one attempt."""
        if not self.lost:
            return
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.create_task(self._restore(network), name=f"quecmqtt-pdp-{self.cid}")
        await asyncio.shield(self._restoring)

    async def _restore(self, network: Network) -> None:
        log.info("activating PDP context %d again", self.cid)
        with contextlib.suppress(QuecError):
            await network.deactivate()  # modules want this before activating again [V: reference 4.3]
        self.lost = False  # a loss reported from now on is a new one
        try:
            await network.activate()
        except BaseException:
            self.lost = True
            raise


class Network:
    """`async with Network(modem, apn=...) as network:` removes its init step (and stops
    `watch()`) on exit. Values are checked when it is made: a bad APN raises
    `InvalidArgument` before anything is registered."""

    def __init__(
        self,
        modem: Modem,
        *,
        cid: int = 1,
        apn: str | None = None,
        username: str | None = None,
        password: str | Secret | None = None,
        auth: int = 0,
        context_type: int = 1,
        pin: str | Secret | None = None,
    ) -> None:
        self.modem = modem
        self.cid = cid
        self.apn = apn
        self.username = username
        self.password = Secret(password, "apn_password") if password is not None else None
        self.auth = auth
        self.context_type = context_type
        self.pin = Secret(pin, "pin") if pin is not None else None
        self._context_command()  # checked now: a step that can never succeed is never added
        if self.pin is not None:
            C.CPIN(self.pin)
        self.keeper = PdpKeeper.of(modem, cid)
        self._watcher: asyncio.Task[None] | None = None
        self._step: StepHandle | None = None
        self._ensure_step()

    def _context_command(self) -> Command | None:
        if self.apn is None:
            return None
        args: list[object] = [self.cid, self.context_type, self.apn]
        if self.username is not None or self.password is not None:
            args += [self.username or "", self.password or Secret(b"", "apn_password"), self.auth]
        return C.QICSGP(*args)

    def _ensure_step(self) -> None:
        # the context's configuration is volatile on the module: re-applied at every start-up
        if self.apn is not None and (self._step is None or not self._step.active):
            self._step = self.modem.add_init_step(
                self._reapply, name=f"PDP context {self.cid}: APN", required=False, key=("pdp", self.cid)
            )

    async def __aenter__(self) -> Network:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- identity, SIM, signal ------------------------------------------------------------

    async def identity(self) -> Identity:
        lines = (await self.modem.execute(C.ATI())).lines
        revision = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("revision")), "")
        plain = [line for line in lines if not line.lower().startswith("revision")]
        manufacturer, model = [*plain, "", ""][:2]
        imei_reply = await self.modem.execute(C.CGSN())
        imei = next((str(f[0]) for f in imei_reply.fields("+CGSN") if f), "")  # some firmware prefixes it [!]
        imei = imei or next((line for line in imei_reply.lines if line.isdigit()), "")
        return Identity(manufacturer, model, revision, imei)

    async def sim_state(self) -> str:
        """READY, SIM PIN, SIM PUK, ... (raises CommandError: 10 not inserted, 13 failure)."""
        reply = await self.modem.execute(C.CPIN_READ())
        fields = reply.fields("+CPIN")
        return str(fields[0][0]) if fields else ""

    async def ensure_sim(self, *, timeout: float = 30.0, pin: str | Secret | None = None) -> None:
        """Wait until the SIM is ready: retry while it is busy after a boot (CME 14), and
        enter the PIN if it asks for one. Raises AttachError(step="sim")."""
        pin_secret = Secret(pin, "pin") if pin is not None else self.pin
        deadline = time.monotonic() + timeout
        pause = 0.2
        entered = False
        while True:
            try:
                state = await self.sim_state()
            except CommandError as exc:
                if exc.cme == Cme.SIM_BUSY and time.monotonic() < deadline:
                    await asyncio.sleep(pause)
                    pause = min(2.0, pause * 2)
                    continue
                raise AttachError("sim", exc.final.description or "the SIM does not answer", exc.final.text) from exc
            if state == "READY":
                return
            if state == "SIM PIN" and not entered:
                if pin_secret is None:
                    raise AttachError("sim", "the SIM asks for a PIN and none was given", state)
                try:
                    await self.modem.execute(C.CPIN(pin_secret))
                except CommandError as exc:
                    raise AttachError("sim", "the PIN was refused", exc.final.text) from exc
                entered = True
                continue
            if time.monotonic() >= deadline:
                raise AttachError("sim", f"the SIM is not ready ({state})", state)
            await asyncio.sleep(pause)

    async def signal(self) -> Signal:
        fields = (await self.modem.execute(C.CSQ())).fields("+CSQ")
        rssi, ber = (fields[0] if fields else (99, 99))[:2]
        detail: tuple[object, ...] = ()
        with contextlib.suppress(CommandError):
            qcsq = (await self.modem.execute(C.QCSQ())).fields("+QCSQ")
            detail = tuple(qcsq[0]) if qcsq else ()
        level = rssi if isinstance(rssi, int) and rssi != 99 else None
        return Signal(
            level,
            ber if isinstance(ber, int) and ber != 99 else None,
            -113 + 2 * level if level is not None else None,
            detail,
        )

    async def registration(self) -> Registration:
        stats: list[int | None] = []
        for spec, prefix in ((C.CREG_READ, "+CREG"), (C.CGREG_READ, "+CGREG"), (C.CEREG_READ, "+CEREG")):
            try:
                fields = (await self.modem.execute(spec())).fields(prefix)
            except CommandError:
                fields = []
            stat = fields[0][1] if fields and len(fields[0]) > 1 else None
            stats.append(stat if isinstance(stat, int) else None)
        return Registration(*stats)

    async def operator(self) -> Operator:
        fields = (await self.modem.execute(C.COPS_READ())).fields("+COPS")
        if not fields or len(fields[0]) < 3:
            return Operator("", None)
        values = fields[0]
        act = values[3] if len(values) > 3 and isinstance(values[3], int) else None
        return Operator(str(values[2]), act)

    # -- radio settings (BG9x) ------------------------------------------------------------

    async def radio(self) -> dict[str, tuple[object, ...]]:
        """The BG9x radio settings; CommandError on modules without AT+QCFG for them."""
        out: dict[str, tuple[object, ...]] = {}
        for key, spec in C.QCFG_READ.items():
            fields = (await self.modem.execute(spec())).fields("+QCFG")
            out[key] = tuple(fields[0][1:]) if fields else ()
        return out

    async def set_scan_mode(self, mode: int) -> None:
        await self.modem.execute(C.QCFG_NWSCANMODE(mode, 1))

    async def set_iot_mode(self, mode: int) -> None:
        await self.modem.execute(C.QCFG_IOTOPMODE(mode, 1))

    async def set_bands(self, gsm: str, emtc: str, nbiot: str) -> None:
        await self.modem.execute(C.QCFG_BAND(gsm, emtc, nbiot, 1))

    # -- PDP ------------------------------------------------------------------------------

    async def configure_context(self) -> None:
        """AT+QICSGP for the context (not saved by the module: re-applied after reboots)."""
        command = self._context_command()
        if command is not None:
            await self.modem.execute(command)

    async def contexts(self) -> list[PdpContext]:
        out = []
        for fields in (await self.modem.execute(C.QIACT_READ())).fields("+QIACT"):
            cid, state, ctype = fields[0], fields[1], fields[2]
            out.append(PdpContext(int(cid), state == 1, int(ctype), tuple(str(f) for f in fields[3:] if f)))
        return out

    async def activate(self) -> str:
        """Activate the context; its IPv4 (or first) address. An ERROR because it is
        already active counts as success once AT+QIACT? shows it active."""
        try:
            await self.modem.execute(C.QIACT(self.cid))
        except CommandError:
            active = {c.cid: c for c in await self.contexts()}
            if self.cid not in active or not active[self.cid].active:
                raise
            log.debug("context %d was already active", self.cid)
        context = {c.cid: c for c in await self.contexts()}.get(self.cid)
        if context is None or not context.active:
            raise AttachError("pdp-activate", f"context {self.cid} is not active after AT+QIACT")
        return context.addresses[0] if context.addresses else ""

    async def deactivate(self) -> None:
        await self.modem.execute(C.QIDEACT(self.cid))

    # -- attach -----------------------------------------------------------------------------

    async def attach(self, *, apn: str | None = None, timeout: float = 120.0) -> Attached:
        """SIM ready, registered, context configured and active. Each step waits within the
        overall `timeout`; a failure names the step and what the module answered."""
        if apn is not None:
            previous, self.apn = self.apn, apn
            try:
                self._context_command()
            except InvalidArgument:
                self.apn = previous
                raise
            self._ensure_step()
        started = time.monotonic()
        deadline = started + timeout

        def left() -> float:
            return max(0.5, deadline - time.monotonic())

        await self.ensure_sim(timeout=left())
        registration = await self._wait_registered(left())
        try:
            await self.configure_context()
        except CommandError as exc:
            raise AttachError("pdp-config", f"AT+QICSGP for context {self.cid} failed", exc.final.text) from exc
        ip = await self._activate_until(left())
        return Attached(
            self.cid, ip, await self.operator(), await self.signal(), registration, time.monotonic() - started
        )

    async def _wait_registered(self, timeout: float) -> Registration:
        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            registration = await self.registration()
            if registration.registered:
                return registration
            if registration.denied:
                raise AttachError("registration", "the network denied registration", registration.describe())
            if time.monotonic() >= deadline:
                raise AttachError("registration", f"not registered after {timeout:.0f} s", registration.describe())
            await asyncio.sleep(pause)
            pause = min(2.0, pause * 1.5)

    async def _activate_until(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.activate()
            except (CommandError, CommandTimeout) as exc:
                if time.monotonic() >= deadline:
                    answer = exc.final.text if isinstance(exc, CommandError) else str(exc)
                    raise AttachError("pdp-activate", f"context {self.cid} could not be activated", answer) from exc
                await asyncio.sleep(1.0)

    # -- keeping it up ------------------------------------------------------------------------

    async def _reapply(self, modem: Modem) -> None:
        with contextlib.suppress(CommandError):  # a module without a SIM yet still starts
            await self.configure_context()

    async def ensure_active(self) -> None:
        """If the network deactivated the context, activate it again (deactivating it
        first, as modules require). The `PdpKeeper` makes this one attempt per loss however
        many ask at once (a session reconnecting, `watch()`)."""
        await self.keeper.restore(self)

    def watch(self, *, timeout: float = 120.0) -> None:
        """Keep the context up in the background: after ``+QIURC: "pdpdeact"`` (through the
        shared keeper) and after a reboot (attach again)."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(timeout), name="quecmqtt-pdp-watch")

    async def _watch(self, timeout: float) -> None:
        with self.modem.subscribe(ModuleReady, maxsize=4) as reboots:
            while True:
                rebooted = False
                if not self.keeper.lost:
                    reboot = asyncio.ensure_future(reboots.get())
                    lost = asyncio.ensure_future(self.keeper.next_loss())
                    try:
                        await asyncio.wait({reboot, lost}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for waiter in (reboot, lost):
                            waiter.cancel()
                        await asyncio.gather(reboot, lost, return_exceptions=True)
                    if reboot.done() and not reboot.cancelled() and isinstance(reboot.exception(), QueueClosed):
                        log.debug("PDP context %d: the modem was closed; watch ends", self.cid)
                        return
                    rebooted = reboot.done() and not reboot.cancelled() and reboot.exception() is None
                try:
                    await self.modem.wait_ready(timeout)
                    if self.keeper.lost:
                        await self.ensure_active()
                        log.info("PDP context %d is back", self.cid)
                    elif rebooted:
                        log.warning("module restarted: attaching PDP context %d again", self.cid)
                        await self.attach(timeout=timeout)
                except QuecError as exc:
                    log.error("could not bring PDP context %d back: %s", self.cid, exc)
                    await asyncio.sleep(5.0)

    async def close(self) -> None:
        """Stop `watch()` and remove the init step."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait([self._watcher])  # our own cancellation still propagates
            self._watcher = None
        if self._step is not None:
            self._step.remove()
            self._step = None

    # -- clock ---------------------------------------------------------------------------------

    async def sync_clock(self, source: str = "network") -> str:
        return await set_module_clock(self.modem, source)


async def set_module_clock(modem: Modem, source: str = "network") -> str:
    """Set the module's clock before certificates are checked: from the network
    (AT+CTZU=1, then AT+QLTS) or from this host (UTC). Returns AT+CCLK?'s answer."""
    if source == "host":
        await modem.execute(C.CCLK(time.strftime("%y/%m/%d,%H:%M:%S+00", time.gmtime())))
    elif source == "network":
        with contextlib.suppress(CommandError):  # not every network sends its time
            await modem.execute(C.CTZU(1))
            await modem.execute(C.QLTS(2))
    else:
        raise ValueError("source must be 'network' or 'host'")
    fields = (await modem.execute(C.CCLK_READ())).fields("+CCLK")
    return str(fields[0][0]) if fields else ""
