"""The module's MQTT client, one per client index (0 to 5).

    client = MqttClient(modem, 0, MqttConfig(keepalive=60))
    await client.open("broker.example", 1883)
    await client.connect("device-1", "user", Secret("password"))
    granted = await client.subscribe([("cmd/#", 1)])
    await client.publish("telemetry", b'{"t": 21.5}', qos=1)
    async for message in client.messages():
        ...

Each operation waits for the module's result URC and raises a typed error carrying the
module's result code (`MqttOpenError`, `MqttError`) and, for CONNECT, the CONNACK code
(`ConnectRefused`). `publish_nowait()` returns as soon as the module took the message, so
several publishes can be in flight; their results are matched by (client, msg id).

The publish form is probed once per module (``AT+QMTPUBEX=?``, ``AT+QMTPUB=?``): the length
forms are binary-safe; the Ctrl-Z form is used only when nothing else exists, and refuses
payloads holding Ctrl-Z or ESC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from quecmqtt.at import commands as C
from quecmqtt.at.events import Event, MqttMessage, MqttStatus, Urc
from quecmqtt.at.spec import CommandSpec
from quecmqtt.errors import (
    CommandError,
    ConnectRefused,
    InvalidArgument,
    LinkLost,
    MqttError,
    MqttOpenError,
    QuecError,
)
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.links import MqttLinks
from quecmqtt.mqtt.state import ClientState, Input, StateMachine
from quecmqtt.runtime import Modem, ModuleReset, Overflow, Pending
from quecmqtt.secret import Secret

log = logging.getLogger("quecmqtt.mqtt")

FORM_PUBEX = "pubex"  # AT+QMTPUBEX=...,<length>
FORM_FIXED = "pub-fixed"  # AT+QMTPUB=...,<length>
FORM_CTRLZ = "pub-ctrlz"  # AT+QMTPUB=... then data and Ctrl-Z
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


def check_topic_name(topic: str) -> None:
    """A topic to publish to: not empty, no wildcards (the broker would drop the link)."""
    if not topic:
        raise InvalidArgument("the topic is empty")
    if "+" in topic or "#" in topic:
        raise InvalidArgument(f"cannot publish to {topic!r}: wildcards (+, #) are for subscriptions only")


class MsgIds:
    """Packet ids 1-65535 for one client: never one that is still in flight."""

    def __init__(self) -> None:
        self._next = 1
        self.in_flight: set[int] = set()

    def take(self) -> int:
        if len(self.in_flight) >= 65535:
            raise MqttError("no free msg id: 65535 operations in flight", -1)
        while self._next in self.in_flight:
            self._next = self._next % 65535 + 1
        msg_id = self._next
        self.in_flight.add(msg_id)
        self._next = self._next % 65535 + 1
        return msg_id

    def release(self, msg_id: int) -> None:
        self.in_flight.discard(msg_id)


class PublishHandle:
    """A publish the module has taken: `await handle.result()` for the broker's answer."""

    def __init__(self, client: MqttClient, msg_id: int, pending: Pending | None) -> None:
        self.msg_id = msg_id
        self._client = client
        self._pending = pending

    async def result(self) -> None:
        """Returns when the module reports the message sent (QoS 0) or acknowledged; raises
        MqttError (the module gave up), LinkLost, or what the runtime raises."""
        if self._pending is None:
            return
        try:
            urc = await self._pending.result()
        finally:
            self._client._ids.release(self.msg_id)
        result = number(urc.fields, 2)
        if result != 0:
            raise MqttError(f"publish {self.msg_id} on client {self._client.index} failed: {urc.text}", result)


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
        self.publish_form = publish_form
        self.probe = probe
        self._machine = StateMachine()
        self._ids = MsgIds()
        self._supported: frozenset[str] | None = None
        self._configured_generation = -1
        self._queue: deque[MqttMessage] = deque()
        self._queue_size = queue_size
        self._dropped = 0
        self._arrived = asyncio.Event()
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

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._machine.state

    @property
    def connected(self) -> bool:
        return self._machine.state is ClientState.CONNECTED

    def on_message(self, callback: Callable[[MqttMessage], None]) -> None:
        """Call `callback(message)` for each message (in the event loop; keep it short)."""
        self._callbacks.append(callback)

    def on_link_event(self, callback: Callable[[str], None]) -> None:
        """Call `callback(reason)` when the link is lost (``+QMTSTAT``, ``+QMTPING``, reset)."""
        self._link_events.append(callback)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MqttMessage):
            if event.client == self.index:
                self._enqueue(event)
        elif isinstance(event, MqttStatus):
            if event.client == self.index:
                self.last_status = event.code
                self._link_lost(f"+QMTSTAT: {event.client},{event.code}")
        elif isinstance(event, Urc):
            if event.prefix == "+QMTPING" and event.fields[:1] == (self.index,):
                self._link_lost(event.text)
            elif event.prefix == "+QMTRECV" and len(event.fields) == 2 and event.fields[0] == self.index:
                self._spawn(self._read_buffer(number(event.fields, 1)))
        elif isinstance(event, ModuleReset):
            self._machine.process(Input.RESET)
            self._ids.in_flight.clear()
            self._notify_link(f"module reset: {event.reason}")

    def _link_lost(self, reason: str) -> None:
        if self._machine.process(Input.LINK_LOST):
            log.info("MQTT client %d: link lost (%s)", self.index, reason)
            self._notify_link(reason)

    def _notify_link(self, reason: str) -> None:
        for callback in list(self._link_events):
            callback(reason)

    def _enqueue(self, message: MqttMessage) -> None:
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(message)
        self._arrived.set()
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

    async def messages(self) -> AsyncIterator[MqttMessage | Overflow]:
        """Received messages, in order. A full queue drops the oldest and yields an
        `Overflow` with the count in their place: nothing is lost silently."""
        while True:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                yield Overflow(dropped)
                continue
            if self._queue:
                yield self._queue.popleft()
                continue
            self._arrived.clear()
            await self._arrived.wait()

    async def next_message(self, timeout: float | None = None) -> MqttMessage | Overflow:
        async with asyncio.timeout(timeout):
            async for item in self.messages():
                return item
        raise AssertionError("unreachable")  # pragma: no cover

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
        self._machine.process(Input.OPEN)
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
            raise MqttOpenError(f"opening client {self.index} to {host}:{port} failed: {result} ({text})", result)
        self._machine.process(Input.OPENED)

    async def _open_once(self, host: str, port: int) -> int:
        reply = await self.modem.execute(C.QMTOPEN(self.index, host, port))
        assert reply.result is not None
        return number(reply.result.fields, 1)

    async def connect(self, client_id: str, username: str | None = None, password: str | Secret | None = None) -> None:
        """MQTT CONNECT. With `aliauth` configured, leave username and password out and the
        module signs the login."""
        self._machine.process(Input.CONNECT)
        args: list[object] = [self.index, client_id]
        if username is not None:
            args.append(username)
            if password is not None:
                args.append(password if isinstance(password, Secret) else Secret(password, "password"))
        try:
            reply = await self.modem.execute(C.QMTCONN(*args), result_timeout=self.config.result_timeout + 60)
        except BaseException:
            self._machine.process(Input.CONNECT_FAILED)
            raise
        assert reply.result is not None
        fields = reply.result.fields
        result = number(fields, 1)
        code = number(fields, 2, default=0)
        if result == 0 and code == 0:
            self._machine.process(Input.CONNECTED)
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
        granted: list[Granted] = []
        for start in range(0, len(pairs), 5):
            batch = pairs[start : start + 5]
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
        """Run a SUB/UNS with a fresh msg id (allocated here, freed after the result)."""
        self._machine.process(Input.USE)
        msg_id = self._ids.take()
        try:
            reply = await self.modem.execute(spec(self.index, msg_id, *args), result_timeout=self.config.result_timeout)
        finally:
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
        if qos not in (0, 1, 2):
            raise InvalidArgument(f"QoS must be 0, 1 or 2, not {qos}")
        check_topic_name(topic)
        self._machine.process(Input.USE)
        form = await self._publish_form()
        raw = payload.reveal_bytes() if isinstance(payload, Secret) else payload
        if form == FORM_CTRLZ and (b"\x1a" in raw or b"\x1b" in raw):
            raise InvalidArgument("this module publishes only with Ctrl-Z: the payload cannot hold 0x1A or 0x1B")
        msg_id = self._ids.take() if qos else 0
        try:
            if form == FORM_PUBEX:
                command = C.QMTPUBEX(self.index, msg_id, qos, int(retain), topic, len(raw))
            elif form == FORM_FIXED:
                command = C.QMTPUB(self.index, msg_id, qos, int(retain), topic, len(raw))
            else:
                command = C.QMTPUB_CTRLZ(self.index, msg_id, qos, int(retain), topic)
            pending = await self.modem.submit(command, payload, result_timeout=self.config.result_timeout)
        except BaseException:
            if qos:
                self._ids.release(msg_id)
            raise
        return PublishHandle(self, msg_id, pending)

    def check_publish(self, topic: str, payload: bytes | Secret, qos: int = 0, retain: bool = False) -> None:
        """Raise InvalidArgument for a message the module cannot take (a quote or control
        character in the topic, an empty or too long payload, a bad QoS, Ctrl-Z in the
        payload of a Ctrl-Z-only module), without sending anything."""
        if qos not in (0, 1, 2):
            raise InvalidArgument(f"QoS must be 0, 1 or 2, not {qos}")
        check_topic_name(topic)
        raw = payload.reveal_bytes() if isinstance(payload, Secret) else payload
        if self.publish_form == FORM_CTRLZ:
            if b"\x1a" in raw or b"\x1b" in raw:
                raise InvalidArgument("this module publishes only with Ctrl-Z: the payload cannot hold 0x1A or 0x1B")
            C.QMTPUB_CTRLZ(self.index, 1, qos, int(retain), topic)
        elif self.publish_form == FORM_FIXED:
            C.QMTPUB(self.index, 1, qos, int(retain), topic, len(raw))
        else:
            C.QMTPUBEX(self.index, 1, qos, int(retain), topic, len(raw))

    async def _publish_form(self) -> str:
        if self.publish_form is None:
            self.publish_form = await probe_publish_form(self.modem)
            log.info("module publishes with %s", self.publish_form)
        return self.publish_form

    async def disconnect(self) -> None:
        self._machine.process(Input.DISCONNECT)
        try:
            reply = await self.modem.execute(C.QMTDISC(self.index))
        except LinkLost:
            return
        assert reply.result is not None
        self._machine.process(Input.DISCONNECTED)

    async def close(self) -> None:
        """Close the connection; safe in any state (errors from the module are ignored:
        the index is free afterwards either way)."""
        self._machine.process(Input.CLOSE)
        try:
            with contextlib.suppress(QuecError):
                await self.modem.execute(C.QMTCLOSE(self.index))
        finally:
            self._machine.process(Input.CLOSED)  # even when cancelled: never stuck closing

    async def aclose(self) -> None:
        """Stop following the module (listener, background reads) and free the index for
        another client object."""
        self._remove_listener()
        self._step.remove()
        self.links.release(self.index)
        for task in list(self._tasks):
            task.cancel()


async def probe_publish_form(modem: Modem) -> str:
    """Which publish command the module has: the length forms first (binary-safe)."""
    with contextlib.suppress(CommandError):
        await modem.execute(C.QMTPUBEX_TEST())
        return FORM_PUBEX
    try:
        reply = await modem.execute(C.QMTPUB_TEST())
    except CommandError as exc:
        raise MqttError("the module has neither AT+QMTPUBEX nor AT+QMTPUB", -1) from exc
    fields = reply.fields("+QMTPUB")
    # a last range such as (1-4096) means a length parameter: the fixed-length form
    if fields and len(fields[0]) >= 6 and str(fields[0][-1]).startswith("("):
        return FORM_FIXED
    return FORM_CTRLZ
