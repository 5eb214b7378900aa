"""The module's MQTT client, one per client index (0 to 5).

    async with MqttClient(modem, 0, MqttConfig(keepalive=60)) as client:
        await client.open("broker.example", 1883)
        await client.connect("device-1", "user", Secret("password"))
        granted = await client.subscribe([("cmd/#", 1)])
        await client.publish("telemetry", b'{"t": 21.5}', qos=1)
        async for message in client.messages:   # raises LinkLost when the link goes
            ...

Each operation waits for the module's result URC and raises a typed error carrying the
module's result code (`MqttOpenError`, `MqttError`) and, for CONNECT, the CONNACK code
(`ConnectRefused`). `publish_nowait()` returns as soon as the module took the message, so
several publishes can be in flight; their results are matched by (client, msg id). The
publish form and its limit are probed once per module (see `quecmqtt.mqtt.publish`).

Leaving ``async with`` disconnects and closes the link (best effort), removes the client's
init step and listener, and frees the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from quecmqtt.at import commands as C
from quecmqtt.at.events import Event, MqttMessage, MqttStatus, Urc
from quecmqtt.at.spec import CommandSpec
from quecmqtt.errors import (
    CommandError,
    CommandTimeout,
    ConnectRefused,
    InvalidArgument,
    LinkLost,
    MqttError,
    MqttOpenError,
    QuecError,
    QueueClosed,
)
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.links import MqttLinks
from quecmqtt.mqtt.publish import (
    FORM_CTRLZ,
    FORM_FIXED,
    FORM_PUB_INLINE,
    FORM_PUBEX,
    FORM_PUBEX_INLINE,
    MsgIds,
    PublishForm,
    PublishHandle,
    check_topic_filter,
    check_topic_name,
    form_named,
    probe_publish_form,
)
from quecmqtt.mqtt.state import ClientState, Input, StateMachine
from quecmqtt.runtime import EventQueue, Modem, ModuleReset, Overflow, Pending, RuntimeClosed
from quecmqtt.secret import Secret

__all__ = [
    "CONNACK",
    "FORM_CTRLZ",
    "FORM_FIXED",
    "FORM_PUBEX",
    "FORM_PUBEX_INLINE",
    "FORM_PUB_INLINE",
    "OPEN_RESULTS",
    "Granted",
    "MqttClient",
    "MsgIds",
    "PublishHandle",
    "check_topic_name",
    "number",
    "probe_publish_form",
]

log = logging.getLogger("quecmqtt.mqtt")

OPEN_RESULTS = {
    -1: "failed to open the network",
    1: "wrong parameter",
    2: "client index in use",
    3: "failed to activate PDP",
    4: "failed to resolve the host name",
    5: "network connection error",
}
CONNACK = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
REJECTED = 128  # a granted QoS of 128: the broker refused that subscription


@dataclass(frozen=True)
class Granted:
    topic: str
    qos: int  # 0-2, or 128 when rejected

    @property
    def rejected(self) -> bool:
        return self.qos == REJECTED


def number(fields: Sequence[object], index: int, default: int = -1) -> int:
    """The integer field at `index` of a result line, or `default`."""
    value = fields[index] if index < len(fields) else None
    return value if isinstance(value, int) else default


class MqttClient:
    def __init__(
        self,
        modem: Modem,
        index: int = 0,
        config: MqttConfig | None = None,
        *,
        publish_form: str | None = None,
        probe: bool = True,
        queue_size: int = 1000,
    ) -> None:
        if not 0 <= index <= 5:
            raise InvalidArgument(f"MQTT client index {index} is not 0-5")
        self.modem = modem
        self.index = index
        self.config = config or MqttConfig()
        self.config.commands(index)  # every value checked now, before any step is registered
        self.form: PublishForm | None = form_named(publish_form) if publish_form is not None else None
        self.probe = probe
        self._machine = StateMachine()
        self._ids = MsgIds()
        self._supported: frozenset[str] | None = None
        self._configured_generation = -1
        self._queue: EventQueue[MqttMessage] = EventQueue(queue_size)
        self._link_down: LinkLost | None = None  # why the link is down (None: up, or never up)
        self._ended = False  # the client object or the modem is gone
        self._user_closed = False  # close() or disconnect(): iteration ends, it is no loss
        self._callbacks: list[Callable[[MqttMessage], None]] = []
        self._link_events: list[Callable[[str], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_status: int | None = None
        self.links = MqttLinks.of(modem)
        self.links.claim(index, exclusive=True)
        self._remove_listener = modem.add_listener(self._on_event)
        self._step = modem.add_init_step(
            self._reapply,
            name=f"mqtt client {index}: configuration",
            required=False,
            key=("mqtt-client", index),
            on_failure=self._reapply_failed,
        )

    async def __aenter__(self) -> MqttClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.modem.closed:
            # each with its own time: a DISCONNECT that fails must not keep the QMTCLOSE from going
            with contextlib.suppress(QuecError, TimeoutError):
                async with asyncio.timeout(10):
                    if self.connected:
                        await self.disconnect()
            with contextlib.suppress(QuecError, TimeoutError):
                async with asyncio.timeout(10):
                    if self.state is not ClientState.CLOSED:
                        await self.close()
        await self.aclose()

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._machine.state

    @property
    def connected(self) -> bool:
        return self._machine.state is ClientState.CONNECTED

    @property
    def publish_form(self) -> str | None:
        return self.form.name if self.form is not None else None

    def on_message(self, callback: Callable[[MqttMessage], None]) -> Callable[[], None]:
        """Call `callback(message)` for each message (in the event loop; keep it short).
        Returns a function that removes it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def on_link_event(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(reason)` when the link is lost (``+QMTSTAT``, ``+QMTPING``, reset).
        Returns a function that removes it."""
        self._link_events.append(callback)
        return lambda: self._link_events.remove(callback) if callback in self._link_events else None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MqttMessage):
            if event.client == self.index:
                self._enqueue(event)
        elif isinstance(event, MqttStatus):
            if event.client == self.index:
                self.last_status = event.code
                self._link_lost(LinkLost(self.index, event.code), f"+QMTSTAT: {event.client},{event.code}")
        elif isinstance(event, Urc):
            if event.prefix == "+QMTPING" and event.fields[:1] == (self.index,):
                self._link_lost(LinkLost(self.index, number(event.fields, 1), "+QMTPING"), event.text)
            elif event.prefix == "+QMTRECV" and len(event.fields) == 2 and event.fields[0] == self.index:
                self._spawn(self._read_buffer(number(event.fields, 1)))
        elif isinstance(event, ModuleReset):
            was_up = self._machine.state is not ClientState.CLOSED
            self._machine.process(Input.RESET)
            self._ids.reset()
            if was_up:
                self._link_down = LinkLost(self.index, -1, f"module reset: {event.reason}")
            self._queue.poke()
            self._notify_link(f"module reset: {event.reason}")
        elif isinstance(event, RuntimeClosed):
            self._ended = True
            self._queue.poke()

    def _link_lost(self, error: LinkLost, reason: str) -> None:
        if self._machine.process(Input.LINK_LOST):
            log.info("MQTT client %d: link lost (%s)", self.index, reason)
            self._link_down = error
            self._queue.poke()
            self._notify_link(reason)

    def _notify_link(self, reason: str) -> None:
        for callback in list(self._link_events):
            try:
                callback(reason)
            except Exception:
                log.exception("link event callback failed")

    def _enqueue(self, message: MqttMessage) -> None:
        self._queue.offer(message)
        for callback in list(self._callbacks):
            try:
                callback(message)
            except Exception:
                log.exception("message callback failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_buffer(self, recv_id: int) -> None:
        """Buffer mode: the module holds the message until read [V: S3, S4]."""
        with contextlib.suppress(QuecError):
            await self.modem.execute(C.QMTRECV(self.index, recv_id))

    # -- messages -----------------------------------------------------------------------

    @property
    def messages(self) -> AsyncIterator[MqttMessage | Overflow]:
        """`async for message in X.messages:` (aiomqtt's habit): each use is a new iterator."""
        return self._messages()

    async def _messages(self) -> AsyncIterator[MqttMessage | Overflow]:
        """Received messages, in order. A full queue drops the oldest and yields an
        `Overflow` with the count in their place: nothing is lost silently. Once what
        arrived is taken, the iteration raises `LinkLost` when the link is down (lost, or
        the module reset), and ends when the client is closed or the modem is."""
        while True:
            item = await self._take(stop_on_link_loss=True)
            if item is None:
                return
            yield item

    async def _take(
        self, *, stop_on_link_loss: bool, stop: Callable[[], bool] | None = None
    ) -> MqttMessage | Overflow | None:
        """The next message; None at the end; LinkLost (if asked) when the link is down.
        A session takes across reconnects (`stop_on_link_loss` false): for it the end of
        the client object or of the modem, or `stop()`, ends the stream (its owner pokes
        the queue when `stop()` changes)."""
        while True:
            item = self._queue.get_nowait()
            if item is not None:
                return item
            if self._ended or (stop_on_link_loss and self._user_closed) or (stop is not None and stop()):
                return None
            if stop_on_link_loss and self._link_down is not None:
                raise self._link_down
            await self._queue.wait()

    async def next_message(self, timeout: float | None = None) -> MqttMessage | Overflow:
        """The next message; `LinkLost` when the link is down, `QueueClosed` at the end."""
        async with asyncio.timeout(timeout):
            item = await self._take(stop_on_link_loss=True)
        if item is None:
            raise QueueClosed(f"MQTT client {self.index} is closed")
        return item

    # -- configuration -----------------------------------------------------------------------

    async def configure(self, config: MqttConfig | None = None) -> None:
        """Apply `config` (default: the client's) with AT+QMTCFG, limited to the keys the
        module lists in AT+QMTCFG=? (probed once)."""
        if self.probe and self._supported is None:
            try:
                reply = await self.modem.execute(C.QMTCFG_TEST())
                self._supported = frozenset(str(f[0]) for f in reply.fields("+QMTCFG") if f)
            except CommandError:
                self._supported = frozenset()
        supported = self._supported or None
        for command in (config or self.config).commands(self.index, supported):
            await self.modem.execute(command)
        if config is None:
            self._configured_generation = self.modem.generation

    @property
    def entry_timeout(self) -> float | None:
        """The module's data-entry time-out we configured (``edit/timeout``), if any."""
        timeout = self.config.edit_timeout
        if timeout is None or self._supported is None or "edit/timeout" not in self._supported:
            return None
        return float(timeout)

    async def read_config(self, key: str) -> tuple[object, ...]:
        """The module's value for a QMTCFG key (secret fields come back as `Secret`)."""
        reply = await self.modem.execute(C.QMTCFG_READ[key](self.index))
        fields = reply.fields("+QMTCFG")
        return tuple(fields[0][1:]) if fields else ()

    async def _reapply(self, modem: Modem) -> None:
        # after a reboot the module has forgotten the configuration [V: reference 1.2]
        if self._configured_generation >= 0:
            await self.configure()

    def _reapply_failed(self, error: BaseException) -> None:
        # the module runs without our configuration: the next open() applies it again
        log.warning("MQTT client %d: configuration not re-applied (%s); the next open applies it", self.index, error)
        self._configured_generation = -2

    # -- operations -------------------------------------------------------------------------

    async def open(self, host: str, port: int, *, configure: bool = True) -> None:
        C.QMTOPEN(self.index, host, port)  # checked before anything is sent
        self._machine.process(Input.OPEN)
        self._user_closed = False
        try:
            await self.links.ensure_reconciled()
            if configure and self._configured_generation != self.modem.generation:
                await self.configure()
            result = await self._open_once(host, port)
            if result == 2:  # index in use (left open): close it and try once more
                with contextlib.suppress(QuecError):
                    await self.modem.execute(C.QMTCLOSE(self.index))
                result = await self._open_once(host, port)
        except BaseException:
            self._machine.process(Input.OPEN_FAILED)
            raise
        if result != 0:
            self._machine.process(Input.OPEN_FAILED)
            text = OPEN_RESULTS.get(result, "unknown result")
            if result == -1 and self.config.ssl_context not in (None, False):
                # modules report a failed handshake or certificate check as -1, like a refused port
                text = (
                    "the TLS connection failed: the server's certificate did not verify (wrong CA? the module's "
                    "clock?), the handshake failed, or the server is not reachable"
                )
            raise MqttOpenError(f"opening client {self.index} to {host}:{port} failed: {result} ({text})", result)
        self._machine.process(Input.OPENED)

    async def _open_once(self, host: str, port: int) -> int:
        reply = await self.modem.execute(C.QMTOPEN(self.index, host, port))
        assert reply.result is not None
        return number(reply.result.fields, 1)

    async def connect(self, client_id: str, username: str | None = None, password: str | Secret | None = None) -> None:
        """MQTT CONNECT. With `aliauth` configured, leave username and password out and the
        module signs the login."""
        args: list[object] = [self.index, client_id]
        if username is not None:
            args.append(username)
            if password is not None:
                args.append(password if isinstance(password, Secret) else Secret(password, "password"))
        command = C.QMTCONN(*args)  # checked before the state changes
        self._machine.process(Input.CONNECT)
        try:
            reply = await self.modem.execute(command, result_timeout=self.config.result_timeout + 60)
        except BaseException:
            self._machine.process(Input.CONNECT_FAILED)
            raise
        assert reply.result is not None
        fields = reply.result.fields
        result = number(fields, 1)
        code = number(fields, 2, default=0)
        if result == 0 and code == 0:
            self._machine.process(Input.CONNECTED)
            self._link_down = None
            self._user_closed = False
            return
        self._machine.process(Input.CONNECT_FAILED)
        if result == 0:
            raise ConnectRefused(f"client {self.index}: CONNECT refused: {code} ({CONNACK.get(code, '?')})", 0, code)
        state = "acknowledged" if result == 1 else "sent"
        raise MqttError(f"client {self.index}: CONNECT not {state}: {reply.result.text}", result)

    async def subscribe(self, topics: str | Sequence[tuple[str, int]], qos: int = 0) -> list[Granted]:
        """Subscribe (five topics per command, the module's limit); the granted QoS of each,
        128 where the broker rejected it."""
        pairs = [(topics, qos)] if isinstance(topics, str) else list(topics)
        if not pairs or any(not topic for topic, _ in pairs):
            raise InvalidArgument("subscribe to what? a topic filter cannot be empty")
        for topic, _ in pairs:
            check_topic_filter(topic)
        batches = [pairs[start : start + 5] for start in range(0, len(pairs), 5)]
        for batch in batches:  # every topic checked before anything is sent
            C.QMTSUB(self.index, 1, *[x for pair in batch for x in pair])
        granted: list[Granted] = []
        for batch in batches:
            args: list[object] = []
            for topic, level in batch:
                args += [topic, level]
            fields = await self._acked(C.QMTSUB, args, "subscribe")
            granted += [Granted(topic, number(fields, 3 + i, REJECTED)) for i, (topic, _) in enumerate(batch)]
        return granted

    async def unsubscribe(self, topics: str | Sequence[str]) -> None:
        names = [topics] if isinstance(topics, str) else list(topics)
        for start in range(0, len(names), 5):
            batch = names[start : start + 5]
            await self._acked(C.QMTUNS, list(batch), "unsubscribe")

    async def _acked(self, spec: CommandSpec, args: list[object], what: str) -> tuple[object, ...]:
        """Run a SUB/UNS with a fresh msg id (freed once the module is done with it)."""
        self._machine.process(Input.USE)
        msg_id = self._ids.take()
        timeout = self.config.result_timeout
        try:
            reply = await self.modem.execute(spec(self.index, msg_id, *args), result_timeout=timeout)
        except (asyncio.CancelledError, CommandTimeout):
            # it may have gone out: the module may still answer with this id
            self._ids.quarantine(msg_id, asyncio.get_running_loop().time() + timeout)
            raise
        except BaseException:
            self._ids.release(msg_id)
            raise
        self._ids.release(msg_id)
        assert reply.result is not None
        fields = reply.result.fields
        if number(fields, 2) != 0:
            raise MqttError(f"{what} on client {self.index} failed: {reply.result.text}", number(fields, 2))
        return fields

    async def publish(self, topic: str, payload: bytes | Secret, qos: int = 0, retain: bool = False) -> None:
        """Publish and wait for the module's report (sent for QoS 0, acknowledged else)."""
        handle = await self.publish_nowait(topic, payload, qos, retain)
        await handle.result()

    async def publish_nowait(
        self, topic: str, payload: bytes | Secret, qos: int = 0, retain: bool = False
    ) -> PublishHandle:
        """Hand the message to the module and return; await `.result()` later. The next
        publish can be written meanwhile: several are then in flight."""
        self.check_publish(topic, payload, qos, retain)  # before anything, with what is known
        self._machine.process(Input.USE)
        form = await self.prepare_publish()
        self.check_publish(topic, payload, qos, retain)  # again, with this module's form and limit
        raw = payload.reveal_bytes() if isinstance(payload, Secret) else payload
        msg_id = self._ids.take() if qos else 0
        timeout = self.config.result_timeout
        try:
            try:
                pending = await self._submit_publish(form, msg_id, topic, payload, raw, qos, retain)
                if form.fallback is not None:  # the length form works here: no fallback from now on
                    self.form = dataclasses.replace(form, fallback=None)
            except CommandError as exc:
                fallback = form.fallback
                refused = exc.cme is None or exc.cme in (4, 50)  # ERROR, not supported, bad parameters
                if fallback is None or not refused:
                    raise
                problem = fallback.problem(raw)
                if problem is not None:
                    # not a reconnect over a message that can go no way this module has (so far)
                    raise InvalidArgument(f"the module refused {form.name} ({exc.final.text}) and {problem}") from exc
                # a range read as a length parameter may be the Ctrl-Z entry's limit (BG96):
                # keep the fallback only if the module takes it
                pending = await self._submit_publish(fallback, msg_id, topic, payload, raw, qos, retain)
                log.info("module refused %s but takes %s: publishing with %s", form.name, fallback.name, fallback.name)
                self.form = fallback
        except (asyncio.CancelledError, CommandTimeout):
            if qos:  # it may have gone out: the module may still use the id
                self._ids.quarantine(msg_id, asyncio.get_running_loop().time() + timeout)
            raise
        except BaseException:
            if qos:
                self._ids.release(msg_id)
            raise
        return PublishHandle(self.index, self._ids, msg_id, pending)

    async def _submit_publish(
        self, form: PublishForm, msg_id: int, topic: str, payload: bytes | Secret, raw: bytes, qos: int, retain: bool
    ) -> Pending:
        command = form.command(self.index, msg_id, qos, retain, topic, raw)
        return await self.modem.submit(
            command,
            None if form.inline else payload,
            result_timeout=self.config.result_timeout,
            entry_timeout=self.entry_timeout,
        )

    def check_publish(self, topic: str, payload: bytes | Secret, qos: int = 0, retain: bool = False) -> None:
        """Raise InvalidArgument for a message the module cannot take (a quote or control
        character in the topic, an empty or too long payload, a bad QoS, Ctrl-Z in the
        payload of a Ctrl-Z-only module), without sending anything. Before the publish form
        is known (`prepare_publish`), the command table's limit applies."""
        problem = self.unsendable(topic, payload, qos, retain)
        if problem is not None:
            raise InvalidArgument(problem)

    def unsendable(self, topic: str, payload: bytes | Secret, qos: int = 0, retain: bool = False) -> str | None:
        """Why this message can never be published by this module, or None."""
        if qos not in (0, 1, 2):
            return f"QoS must be 0, 1 or 2, not {qos}"
        try:
            check_topic_name(topic)
            form = self.form or form_named(FORM_PUBEX)
            raw = payload.reveal_bytes() if isinstance(payload, Secret) else payload
            if isinstance(payload, Secret) and form.inline:
                return "this module publishes the message inline, in the command line: a secret cannot go that way"
            problem = form.problem(raw)
            if problem is not None:
                return problem
            form.command(self.index, 1, qos, retain, topic, raw or b"x")
        except InvalidArgument as exc:
            return str(exc)
        return None

    async def prepare_publish(self) -> PublishForm:
        """The module's publish form and limit (probed once per client)."""
        if self.form is None:
            self.form = await probe_publish_form(self.modem)
            log.info("module publishes with %s (at most %d bytes)", self.form.name, self.form.max_length)
        return self.form

    async def disconnect(self) -> None:
        self._machine.process(Input.DISCONNECT)
        self._user_closed = True  # the user ends the session: iteration ends, it is no loss
        self._queue.poke()
        try:
            reply = await self.modem.execute(C.QMTDISC(self.index))
        except LinkLost:
            return
        assert reply.result is not None
        self._machine.process(Input.DISCONNECTED)

    async def close(self) -> None:
        """Close the connection; safe in any state (errors from the module are ignored:
        the index is free afterwards either way). Iteration of `messages()` ends."""
        self._machine.process(Input.CLOSE)
        self._user_closed = True
        self._queue.poke()
        try:
            with contextlib.suppress(QuecError):
                await self.modem.execute(C.QMTCLOSE(self.index))
        finally:
            self._machine.process(Input.CLOSED)  # even when cancelled: never stuck closing

    async def aclose(self) -> None:
        """Stop following the module (listener, init step, background reads) and free the
        index for another client object."""
        self._ended = True
        self._queue.poke()
        self._remove_listener()
        self._step.remove()
        self.links.release(self.index)
        for task in list(self._tasks):
            task.cancel()
