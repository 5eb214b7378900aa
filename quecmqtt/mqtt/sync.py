"""Blocking facades for the MQTT layer, on a `SyncModem`'s event loop thread.

    with SyncModem("/dev/ttyUSB2") as modem:
        with SyncSession(modem, "broker.example", 1883, "dev-1", subscriptions=[("cmd/#", 1)]) as session:
            session.publish("telemetry", b"21.5")
            message = session.next_message(timeout=30)

Callbacks given to `on_message` run in the loop thread: keep them short, and hand work to
your own threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from quecmqtt.at.events import MqttMessage
from quecmqtt.modem import Overflow
from quecmqtt.mqtt.client import Granted, MqttClient
from quecmqtt.mqtt.outbox import DeadLetter, Entry
from quecmqtt.mqtt.session import Session, SessionState
from quecmqtt.secret import Secret
from quecmqtt.sync import SyncModem


class SyncMqttClient:
    """`MqttClient` with blocking methods."""

    def __init__(self, modem: SyncModem, index: int = 0, **options: Any) -> None:
        self._owner = modem

        async def make() -> MqttClient:
            return MqttClient(modem.modem, index, **options)

        self.client = modem._call(make())

    def open(self, host: str, port: int) -> None:
        self._owner._call(self.client.open(host, port))

    def connect(self, client_id: str, username: str | None = None, password: str | Secret | None = None) -> None:
        self._owner._call(self.client.connect(client_id, username, password))

    def subscribe(self, topics: str | Sequence[tuple[str, int]], qos: int = 0) -> list[Granted]:
        return self._owner._call(self.client.subscribe(topics, qos))

    def unsubscribe(self, topics: str | Sequence[str]) -> None:
        self._owner._call(self.client.unsubscribe(topics))

    def publish(self, topic: str, payload: bytes | Secret, qos: int = 0, retain: bool = False) -> None:
        self._owner._call(self.client.publish(topic, payload, qos, retain))

    def next_message(self, timeout: float | None = None) -> MqttMessage | Overflow:
        """The next message; TimeoutError after `timeout` seconds."""
        return self._owner._call(self.client.next_message(timeout))

    def on_message(self, callback: Callable[[MqttMessage], None]) -> None:
        self._owner._loop.call_soon_threadsafe(self.client.on_message, callback)

    def disconnect(self) -> None:
        self._owner._call(self.client.disconnect())

    def close(self) -> None:
        self._owner._call(self.client.close())
        self._owner._call(self.client.aclose())

    @property
    def connected(self) -> bool:
        return self.client.connected


class SyncSession:
    """`Session` with blocking methods."""

    def __init__(
        self,
        modem: SyncModem,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | Secret | None = None,
        **options: Any,
    ) -> None:
        self._owner = modem

        async def make() -> Session:
            return Session(modem.modem, host, port, client_id, username, password, **options)

        self.session = modem._call(make())

    def start(self, *, wait: bool = True, timeout: float | None = None) -> None:
        self._owner._call(self.session.start(wait=wait, timeout=timeout))

    def stop(self, *, flush: float | None = None) -> None:
        self._owner._call(self.session.stop(flush=flush))

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Entry:
        """Returns once the outbox holds the message (see `Session.publish`)."""
        return self._owner._call(self.session.publish(topic, payload, qos, retain))

    def flush(self, timeout: float | None = None) -> None:
        self._owner._call(self.session.flush(timeout))

    def wait_connected(self, timeout: float | None = None) -> None:
        self._owner._call(self.session.wait_connected(timeout))

    def subscribe(self, topic: str, qos: int = 1) -> Granted | None:
        return self._owner._call(self.session.subscribe(topic, qos))

    def unsubscribe(self, topic: str) -> None:
        self._owner._call(self.session.unsubscribe(topic))

    def next_message(self, timeout: float | None = None) -> MqttMessage | Overflow:
        return self._owner._call(self.session.client.next_message(timeout))

    def on_message(self, callback: Callable[[MqttMessage], None]) -> None:
        self._owner._loop.call_soon_threadsafe(self.session.on_message, callback)

    def dead_letters(self) -> list[DeadLetter]:
        return self.session.dead_letters()

    @property
    def state(self) -> SessionState:
        return self.session.state

    @property
    def connected(self) -> bool:
        return self.session.connected

    def __enter__(self) -> SyncSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
