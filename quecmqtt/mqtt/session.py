"""A session: one MQTT client kept connected for as long as the program runs.

    async with Session(modem, "broker.example", 1883, "device-1",
                       subscriptions=[("cmd/#", 1)], outbox=SqliteOutbox("/var/lib/dev/outbox.db")) as session:
        await session.publish("telemetry", b"{...}", qos=1)  # returns once the outbox holds it
        async for message in session.messages:          # across reconnects; ends on stop
            ...

After a link loss (``+QMTSTAT`` other than the one after our own disconnect, ``+QMTPING``),
a module reboot, a lost port, or a lost PDP context, the session waits for the module, asks
the network service to bring the context back (one owner: `Network.ensure_active`), closes
the client index (``AT+QMTCLOSE``), opens and connects again with exponential back-off and
jitter, re-subscribes, and resends what the outbox holds, oldest first. `publish()` only
puts the message in the outbox; a pump sends it with up to `window` publishes in flight and
removes it when the module reports it acknowledged. The default window, 5, is the lowest
documented in-flight limit (BG96 MQTT AN V1.0, 3.2.8 note 1); no other family documents one.
A publish the module refuses with a plain ERROR while two or more are out sets the window to
what was out, for the rest of that connection: the module's own limit, learned without a
reconnect.

The publish form and its limit are probed on connecting, before the outbox drains: a message
the module can never take (too long for its form, Ctrl-Z bytes on a Ctrl-Z-only module) is a
dead letter at once, with the reason, and never costs a reconnect; what is behind it goes on
in order.

Terminal conditions stop the session and raise from `wait_connected()`, `publish()`,
`flush()`, `wait_stopped()` and `messages()`: a CONNECT refused with a code in
`terminal_connack` (4 bad user name or password, 5 not authorised, by default), the modem
being closed, and unexpected internal errors. Every other failure is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from quecmqtt.at.events import Event, ModuleReady, MqttMessage, PsmEntered, SimStatus
from quecmqtt.errors import (
    CommandError,
    ConnectRefused,
    InternalError,
    InvalidArgument,
    LocalProtocolError,
    MqttError,
    MqttOpenError,
    NotOpen,
    QuecError,
    SessionFailed,
)
from quecmqtt.mqtt.client import Granted, MqttClient
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.outbox import DeadLetter, Entry, MemoryOutbox, Outbox
from quecmqtt.mqtt.publish import PublishHandle
from quecmqtt.runtime import Modem, Overflow, State
from quecmqtt.secret import Secret
from quecmqtt.services.network import Network

log = logging.getLogger("quecmqtt.session")
SIM_POLL = 30.0  # seconds between AT+CPIN? while paused for a removed SIM

PDP_RESULT = 3  # +QMTOPEN: <c>,3: the PDP context could not be activated


class SessionState(Enum):
    IDLE = "idle"  # not started
    CONNECTING = "connecting"  # first connection or a reconnection in progress
    CONNECTED = "connected"
    WAITING = "waiting"  # backing off before the next attempt
    PAUSED = "paused"  # the SIM is out, or the module sleeps in PSM: waiting for it to come back
    STOPPED = "stopped"  # stop() was called
    FAILED = "failed"  # a terminal error; see Session.error


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: `initial` doubling up to `maximum`, each
    multiplied by a random factor in [1 - jitter, 1] so a fleet does not reconnect in step."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * (rng or random).random())


class _LinkDown(Exception):
    """Internal: the link went down while the pump was running."""


class Session:
    def __init__(
        self,
        modem: Modem,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | Secret | None = None,
        *,
        index: int = 0,
        config: MqttConfig | None = None,
        subscriptions: Sequence[tuple[str, int]] = (),
        outbox: Outbox | None = None,
        window: int = 5,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        terminal_connack: frozenset[int] = frozenset({4, 5}),
        network: Network | None = None,
        publish_form: str | None = None,
        queue_size: int = 1000,
        ready_timeout: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        if window < 1:
            raise InvalidArgument("the in-flight window must be at least 1")
        self.modem = modem
        self.host = host
        self.port = port
        self.client_id = client_id
        self.username = username
        self.password = Secret(password, "password") if isinstance(password, str) else password
        self.client = MqttClient(modem, index, config, publish_form=publish_form, queue_size=queue_size)
        self.subscriptions: dict[str, int] = dict(subscriptions)
        self.rejected: list[str] = []  # topics the broker refused (granted 128) at the last subscribe
        self.outbox = outbox if outbox is not None else MemoryOutbox()
        self.window = window
        self._window_asked = window  # the window learned from a refusal lasts one connection
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.terminal_connack = terminal_connack
        self.network = network if network is not None else Network(modem, cid=self.client.config.pdp_cid or 1)
        self.ready_timeout = ready_timeout
        self.state = SessionState.IDLE
        self.error: BaseException | None = None
        self.reconnects = 0  # successful connections after the first
        self._rng = rng or random.Random()
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # the pump has something to look at
        self._lost = asyncio.Event()  # the link is down (set by the module's reports)
        self._state_changed = asyncio.Event()
        self._progress = asyncio.Event()  # an outbox entry was settled, or the state changed
        self._failures: dict[int, str] = {}  # entry id -> why its last attempt failed
        self._suspects: set[int] = set()  # in flight when the link went: sent alone from now on
        self._outstanding: set[int] = set()  # sent on this connection, no answer yet
        self._state_callbacks: list[Callable[[SessionState], None]] = []
        self._sim_in = asyncio.Event()  # cleared while the SIM is out
        self._sim_in.set()
        self._awake = asyncio.Event()  # cleared while the module sleeps in PSM
        self._awake.set()
        self._removers = [self.client.on_link_event(self._on_link_event), modem.add_listener(self._on_module_event)]
        self._pdp_watch: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        where = f"client {self.client.index} {self.host}:{self.port}"
        return f"<Session {where} {self.state.value}, {len(self.outbox)} queued>"

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state is SessionState.CONNECTED

    def on_state(self, callback: Callable[[SessionState], None]) -> Callable[[], None]:
        """Call `callback(state)` on every change of `state`; returns a remover."""
        self._state_callbacks.append(callback)
        return lambda: self._state_callbacks.remove(callback) if callback in self._state_callbacks else None

    def _set_state(self, state: SessionState) -> None:
        if state is self.state:
            return
        log.info("session %d: %s -> %s", self.client.index, self.state.value, state.value)
        self.state = state
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        self._progress.set()
        self.client._queue.poke()  # a consumer of messages() sees the end
        for callback in list(self._state_callbacks):
            try:
                callback(state)
            except Exception:
                log.exception("state callback failed")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Until the session is connected; raises SessionFailed if it failed or stopped."""
        async with asyncio.timeout(timeout):
            while self.state is not SessionState.CONNECTED:
                self._raise_if_over()
                await self._state_changed.wait()

    async def wait_stopped(self) -> None:
        """Until the session ends; raises SessionFailed if it ended on a terminal error."""
        if self._runner is not None:
            await asyncio.wait([self._runner])  # the caller's own cancellation still propagates
        self._raise_if_over(stopped_ok=True)

    def _raise_if_over(self, *, stopped_ok: bool = False) -> None:
        if self.state is SessionState.FAILED:
            raise SessionFailed(f"session stopped: {self.error}") from self.error
        if self.state is SessionState.STOPPED and not stopped_ok:
            raise SessionFailed("session stopped")

    # -- the module's reports -------------------------------------------------------------

    def _on_link_event(self, reason: str) -> None:
        if self.state in (SessionState.CONNECTED, SessionState.CONNECTING):
            log.warning("session %d: link lost (%s)", self.client.index, reason)
        self._lost.set()
        self._wake.set()

    def _on_module_event(self, event: Event) -> None:
        """SIM removal and PSM pause the session (no attempts that cannot work); the SIM's
        return and the module's RDY resume it."""
        if isinstance(event, SimStatus):
            if event.inserted is False and self._sim_in.is_set():
                log.warning(
                    "session %d: the SIM was removed (%s): paused until it is back", self.client.index, event.text
                )
                self._sim_in.clear()
                self._on_link_event("SIM removed")
            elif event.inserted and not self._sim_in.is_set():
                log.info("session %d: the SIM is back (%s): resuming", self.client.index, event.text)
                self._sim_in.set()
        elif isinstance(event, PsmEntered):
            log.info("session %d: the module entered PSM: paused until it wakes", self.client.index)
            self._awake.clear()
        elif isinstance(event, ModuleReady) and not self._awake.is_set():
            log.info("session %d: the module woke up (%s): resuming", self.client.index, event.banner)
            self._awake.set()

    async def _wait_until_usable(self) -> None:
        """Paused: the SIM's return (its URC, or AT+CPIN? answering READY, asked every
        `SIM_POLL` s in case the URC went unseen) and the module's wake (RDY, or the runtime
        ready again) resume it."""
        if self._sim_in.is_set() and self._awake.is_set():
            return
        self._set_state(SessionState.PAUSED)
        while not self._sim_in.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SIM_POLL):
                    await self._sim_in.wait()
            if not self._sim_in.is_set() and await self._sim_ready_now():
                log.info("session %d: the SIM answers READY: resuming", self.client.index)
                self._sim_in.set()
        while not self._awake.is_set():
            with contextlib.suppress(TimeoutError):
                await self.modem.wait_ready(self.ready_timeout)
                self._awake.set()

    async def _sim_ready_now(self) -> bool:
        try:
            return await self.network.sim_state() == "READY"
        except (QuecError, TimeoutError):
            return False

    async def _watch_pdp(self) -> None:
        """A lost context takes the link with it: reconnect (the network brings it back)."""
        keeper = self.network.keeper
        while True:
            await keeper.next_loss()
            self._on_link_event("PDP context lost")

    # -- life --------------------------------------------------------------------------------

    async def start(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Start connecting (and keep the connection up). With `wait`, return once connected;
        a terminal error on the way raises SessionFailed, `timeout` raises TimeoutError
        (the session keeps trying)."""
        if self._runner is not None:
            raise LocalProtocolError("session already started")
        await self.outbox.open()
        self._set_state(SessionState.CONNECTING)
        self._runner = asyncio.create_task(self._run(), name=f"quecmqtt-session-{self.client.index}")
        self._pdp_watch = asyncio.create_task(self._watch_pdp(), name=f"quecmqtt-session-pdp-{self.client.index}")
        if wait:
            await self.wait_connected(timeout)

    async def stop(self, *, flush: float | None = None) -> None:
        """Stop: optionally wait up to `flush` seconds for the outbox to empty, then
        disconnect and close the client. What is still in the outbox stays there (a
        SqliteOutbox keeps it for the next run). `messages()` ends."""
        if flush and self.connected:
            with contextlib.suppress(TimeoutError, SessionFailed):
                await self.flush(flush)
        for task in (self._runner, self._pdp_watch):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])  # not `await task`: our own cancellation must propagate
        if self.state is not SessionState.FAILED:
            self._set_state(SessionState.STOPPED)
        if self.modem.state is not State.CLOSED:
            with contextlib.suppress(QuecError, LocalProtocolError, TimeoutError):
                async with asyncio.timeout(10):
                    if self.client.connected:
                        await self.client.disconnect()
                    await self.client.close()
        for remove in self._removers:
            remove()
        await self.client.aclose()
        with contextlib.suppress(QuecError):
            await self.outbox.flush()  # acks written behind reach the disk

    async def __aenter__(self) -> Session:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # nothing left running, the index free again
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the user does ---------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> Entry:
        """Accept a message: checked (topic, QoS, size against the module's limit once it is
        known), put in the outbox, and sent by the pump. Returns once the outbox holds it
        (for a SqliteOutbox: on disk). A `str` payload is sent as UTF-8 (as aiomqtt does).
        Raises InvalidArgument, OutboxFull (policy "reject"), SessionFailed."""
        self._raise_if_over()
        if isinstance(payload, str):
            try:
                payload = payload.encode("utf-8")
            except UnicodeEncodeError as exc:  # an unpaired surrogate: say where, not what
                raise InvalidArgument(f"the payload is not valid text at position {exc.start}") from None
        self.client.check_publish(topic, payload, qos, retain)
        entry = await self.outbox.put(topic, bytes(payload), qos, retain)
        self._wake.set()
        return entry

    async def flush(self, timeout: float | None = None) -> None:
        """Until the outbox is empty (every message acknowledged or dead-lettered)."""
        async with asyncio.timeout(timeout):
            while len(self.outbox):
                self._raise_if_over()
                self._progress.clear()
                await self._progress.wait()

    def dead_letters(self) -> list[DeadLetter]:
        return self.outbox.dead_letters()

    async def subscribe(self, topic: str, qos: int = 1) -> Granted | None:
        """Subscribe now if connected, and after every reconnect. The granted QoS, or None
        when not connected (it is sent on connecting)."""
        self.subscriptions[topic] = qos
        if not self.client.connected:
            return None
        with contextlib.suppress(QuecError, LocalProtocolError):
            granted = (await self.client.subscribe([(topic, qos)]))[0]
            if granted.rejected:
                log.warning("session %d: the broker refused the subscription to %r", self.client.index, topic)
            return granted
        return None  # the link went down meanwhile: the reconnect subscribes

    async def unsubscribe(self, topic: str) -> None:
        self.subscriptions.pop(topic, None)
        if self.client.connected:
            with contextlib.suppress(QuecError, LocalProtocolError):
                await self.client.unsubscribe(topic)

    @property
    def messages(self) -> AsyncIterator[MqttMessage | Overflow]:
        """`async for message in X.messages:` (aiomqtt's habit): each use is a new iterator."""
        return self._messages()

    async def _messages(self) -> AsyncIterator[MqttMessage | Overflow]:
        """Messages from the subscriptions, across reconnects. Ends when the session is
        stopped (after what arrived is taken); raises SessionFailed when it failed."""
        over = (SessionState.STOPPED, SessionState.FAILED)
        while (item := await self.client._take(stop_on_link_loss=False, stop=lambda: self.state in over)) is not None:
            yield item
        self._raise_if_over(stopped_ok=True)

    def on_message(self, callback: Callable[[MqttMessage], None]) -> Callable[[], None]:
        return self.client.on_message(callback)

    # -- the runner --------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        connections = 0
        while True:
            try:
                await self._wait_until_usable()
                self._set_state(SessionState.CONNECTING)
                await self._connect()
            except ConnectRefused as exc:
                if exc.return_code in self.terminal_connack:
                    self._fail(exc)
                    return
                reason: str = str(exc)
            except NotOpen as exc:
                if self.modem.closed:  # closed under us: nothing to reconnect to
                    self._fail(exc)
                    return
                reason = str(exc)
            except _LinkDown as exc:
                reason = str(exc)
            except (QuecError, LocalProtocolError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                self._fail(InternalError(f"session {self.client.index}: {exc!r}"), cause=exc)
                return
            else:
                connections += 1
                if connections > 1:
                    self.reconnects += 1
                failures = 0
                self.window = self._window_asked
                self._set_state(SessionState.CONNECTED)
                try:
                    await self._pump()
                except (QuecError, LocalProtocolError, _LinkDown) as exc:
                    reason = str(exc) or "link lost"
                except Exception as exc:
                    self._fail(InternalError(f"session {self.client.index}: {exc!r}"), cause=exc)
                    return
            if self.modem.closed:
                self._fail(NotOpen("modem closed"))
                return
            delay = self.backoff.delay(failures, self._rng)
            failures += 1
            log.warning("session %d: %s; next attempt in %.1f s", self.client.index, reason, delay)
            self._set_state(SessionState.WAITING)
            await asyncio.sleep(delay)

    def _fail(self, error: BaseException, cause: BaseException | None = None) -> None:
        if cause is not None:
            error.__cause__ = cause
            log.error("session %d failed", self.client.index, exc_info=cause)
        else:
            log.error("session %d: giving up: %s", self.client.index, error)
        self.error = error
        self._set_state(SessionState.FAILED)

    async def _connect(self) -> None:
        await self.modem.wait_ready(self.ready_timeout)
        self._lost.clear()
        await self.network.ensure_active()  # the network service owns the context
        # whatever the module thinks of this index, start from closed
        await self.client.close()
        try:
            await self.client.open(self.host, self.port)
        except MqttOpenError as exc:
            if exc.result != PDP_RESULT:
                raise
            self.network.keeper.lost = True  # the module says so: let the network bring it back
            await self.network.ensure_active()
            await self.client.open(self.host, self.port)
        await self.client.connect(self.client_id, self.username, self.password)
        await self.client.prepare_publish()  # the form and its limit, before the outbox drains
        self.rejected = []
        if self.subscriptions:
            granted = await self.client.subscribe(list(self.subscriptions.items()))
            self.rejected = [g.topic for g in granted if g.rejected]
            for topic in self.rejected:
                log.warning("session %d: the broker refused the subscription to %r", self.client.index, topic)
        if self._lost.is_set():
            raise _LinkDown("link lost while connecting")

    # -- the pump -------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Send what the outbox holds, `window` at a time, until the link goes down.

        Which message made the link go? A broker (Aliyun for a topic the device may not use)
        answers a message it refuses by closing the link, so a loss is counted as an attempt
        against the message that was *alone* in flight when it came; with several in flight,
        all of them become suspects, and each suspect is then sent alone until it is
        acknowledged. A message whose losses reach `max_attempts` is a dead letter; the
        others are resent and delivered."""
        in_flight: dict[int, asyncio.Task[None]] = {}  # entry id -> its result, in send order
        try:
            while True:
                self._wake.clear()
                if self._lost.is_set():
                    raise _LinkDown("link lost")
                for entry_id, task in list(in_flight.items()):
                    if task.done():
                        del in_flight[entry_id]
                        self._settle(entry_id, task)
                if self._lost.is_set():
                    raise _LinkDown("link lost")
                if len(in_flight) < self.window and not self._suspects.intersection(in_flight):
                    for entry in self.outbox.pending(self.window + len(in_flight)):
                        if len(in_flight) >= self.window:
                            break
                        if entry.id in in_flight:
                            continue
                        problem = self.client.unsendable(entry.topic, entry.payload, entry.qos, entry.retain)
                        if problem is None and entry.attempts >= self.max_attempts:
                            problem = f"{entry.attempts} attempts: {self._failures.pop(entry.id, 'no acknowledgement')}"
                        if problem is not None:
                            self._bury(entry, problem)
                            continue
                        suspect = entry.id in self._suspects
                        if suspect and in_flight:
                            break  # a suspect goes alone: wait for what is out
                        try:
                            sent = await self._send(entry)
                        except CommandError as exc:
                            if (
                                exc.cme is not None
                                or len(in_flight) < 2
                                or self._lost.is_set()
                                or not self.client.connected
                            ):
                                raise
                            # a plain ERROR with publishes out: the module's in-flight window is
                            # full (BG96: 5). Learn it, and send this one when one is answered
                            self.window = len(in_flight)
                            log.warning(
                                "session %d: the module refused a publish with %d in flight: window now %d",
                                self.client.index,
                                len(in_flight),
                                self.window,
                            )
                            break
                        if sent is None:
                            continue  # refused before it was sent: buried, look at the next
                        in_flight[entry.id] = sent
                        self._outstanding.add(entry.id)
                        if self.window == 1 or suspect:
                            break
                await self._wake.wait()
        finally:
            # the link is down (or we are stopping): these results will not come; the
            # entries stay in the outbox and go out again after the reconnect
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            for entry_id, task in in_flight.items():
                if not task.cancelled():
                    self._settle(entry_id, task)
            self._blame(self._outstanding)
            self._outstanding = set()

    def _blame(self, lost: set[int]) -> None:
        """The link went down with `lost` sent and unanswered. Only a server closing the link
        (``+QMTSTAT: <c>,1``, "closed or reset by peer") can be its answer to a message; a
        keep-alive failure, a network down, a reset of the module say nothing of what was in
        flight, and blame nothing."""
        loss = self.client._link_down
        by_peer = loss is not None and loss.report == "+QMTSTAT" and loss.code == 1
        if len(lost) == 1 and by_peer:
            (entry_id,) = lost
            if self.outbox.attempt(entry_id) is not None:
                self._failures[entry_id] = "the link was lost while it was the only message in flight"
        self._suspects |= {entry_id for entry_id in lost if entry_id in self.outbox}

    def _bury(self, entry: Entry, reason: str) -> None:
        self.outbox.dead(entry, reason)
        self._failures.pop(entry.id, None)
        self._suspects.discard(entry.id)
        log.error("session %d: %r moved to the dead letters: %s", self.client.index, entry, reason)
        self._wake.set()  # look again: what follows it may not have been fetched
        self._progress.set()

    async def _send(self, entry: Entry) -> asyncio.Task[None] | None:
        try:
            handle = await self.client.publish_nowait(entry.topic, entry.payload, entry.qos, entry.retain)
        except InvalidArgument as exc:
            # the module can never take it: a dead letter now, never a reconnect
            self._bury(entry, str(exc))
            return None
        task = asyncio.create_task(self._await_result(handle))
        task.add_done_callback(lambda _: self._wake.set())
        return task

    @staticmethod
    async def _await_result(handle: PublishHandle) -> None:
        await handle.result()

    def _settle(self, entry_id: int, task: asyncio.Task[None]) -> None:
        self._progress.set()
        exc = task.exception()
        if exc is None:
            self.outbox.ack(entry_id)
            self._failures.pop(entry_id, None)
            self._suspects.discard(entry_id)
            self._outstanding.discard(entry_id)
        elif isinstance(exc, MqttError):
            # the module gave up on this message (retries exhausted): count it, send again
            self._outstanding.discard(entry_id)
            if self.outbox.attempt(entry_id) is not None:
                self._failures[entry_id] = str(exc)
        else:
            # the link went (LinkLost) or the module did: the loss is blamed in _pump
            self._failures.setdefault(entry_id, f"{type(exc).__name__}: {exc}")
