"""A small MQTT 3.1.1 broker for the cloud twin when no Mosquitto is given (the zero-install
demo). Clean sessions only, in memory: QoS 0/1/2 in and out, wildcards, retained messages,
wills, keep-alive, and a second CONNECT with a client id taking over the first.

Reachable only through the twin: every CONNECT must carry the twin's token (the auth front
forwards a device's session with it; the responder logs in with it), anything else gets
CONNACK 5, so a local program cannot subscribe to `#` or set a device's properties. A
subscriber that does not read is disconnected once `max_buffer` bytes wait for it (Mosquitto
bounds its queues too), so memory does not grow with it."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
from dataclasses import dataclass, field

from quecmqtt.cloud.topics import valid_filter
from quecmqtt.wire import mqtt as wire
from quecmqtt.wire.mqtt import Cursor, WireError

log = logging.getLogger("quecmqtt.cloud.broker")


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (+ one level, # the rest; $-topics not by wildcards)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


@dataclass(eq=False)
class _Client:
    client_id: str
    writer: asyncio.StreamWriter
    max_buffer: int = 1 << 20
    subscriptions: dict[str, int] = field(default_factory=dict)
    ids: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle(range(1, 65536)))
    will: tuple[str, bytes, int, bool] | None = None

    def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() + len(data) > self.max_buffer:
            log.warning("broker: %s does not read (%d bytes wait): disconnected", self.client_id, self.max_buffer)
            self.writer.transport.abort()  # what was queued for it goes too
            return
        self.writer.write(data)


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: bytes, max_buffer: int = 1 << 20) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.max_buffer = max_buffer
        self._server: asyncio.Server | None = None
        self._clients: dict[str, _Client] = {}
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for client in list(self._clients.values()):
                client.writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    # -- routing --------------------------------------------------------------------------------

    def route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self._retained[topic] = (payload, qos)
            else:
                self._retained.pop(topic, None)
        for client in list(self._clients.values()):
            granted = max((q for f, q in client.subscriptions.items() if matches(f, topic)), default=None)
            if granted is not None:
                level = min(qos, granted)
                client.send(wire.publish(topic, payload, level, next(client.ids) if level else 0))

    # -- one connection ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client: _Client | None = None
        clean_end = False
        try:
            kind, _, body, _ = await asyncio.wait_for(wire.read_packet(reader, wire.MAX_CONNECT), 30)
            if kind != wire.CONNECT:
                return
            connect = wire.Connect.parse(body)
            if connect.username != wire.BACKEND_USER or not hmac.compare_digest(connect.password or b"", self.token):
                log.warning("broker: a CONNECT not from the twin's front (%r): refused", connect.client_id[:64])
                writer.write(wire.connack(5))
                await writer.drain()
                return
            client = _Client(connect.client_id or f"auto-{id(writer):x}", writer, self.max_buffer)
            if connect.will_topic is not None:
                client.will = (
                    connect.will_topic.decode(),
                    connect.will_message or b"",
                    connect.will_qos,
                    connect.will_retain,
                )
            old = self._clients.get(client.client_id)
            if old is not None:
                old.will = None  # a takeover is no abnormal end
                old.writer.close()
            self._clients[client.client_id] = client
            writer.write(wire.connack(0))
            keepalive = connect.keepalive * 1.5 if connect.keepalive else None
            while True:
                kind, flags, body, _ = await asyncio.wait_for(wire.read_packet(reader), keepalive)
                if kind == wire.DISCONNECT:
                    clean_end = True
                    return
                self._packet(client, kind, flags, body)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError, WireError, TimeoutError, UnicodeDecodeError):
            pass
        finally:
            if client is not None and self._clients.get(client.client_id) is client:
                del self._clients[client.client_id]
                if client.will is not None and not clean_end:
                    self.route(*client.will)
            writer.close()

    def _packet(self, client: _Client, kind: int, flags: int, body: bytes) -> None:
        if kind == wire.PUBLISH:
            topic, payload, qos, packet_id, retain = wire.parse_publish(flags, body)
            if qos == 1:
                client.send(wire.ack(wire.PUBACK, packet_id))
            elif qos == 2:
                client.send(wire.ack(wire.PUBREC, packet_id))
            self.route(topic.decode(), payload, qos, retain)
        elif kind == wire.PUBREL:
            client.send(wire.ack(wire.PUBCOMP, Cursor(body).u16()))
        elif kind == wire.PUBREC:
            client.send(wire.ack(wire.PUBREL, Cursor(body).u16()))
        elif kind in (wire.PUBACK, wire.PUBCOMP):
            pass  # clean sessions, no retransmission: nothing to forget
        elif kind == wire.SUBSCRIBE:
            c = Cursor(body)
            packet_id = c.u16()
            granted = bytearray()
            new: list[str] = []
            while not c.done:
                topic_filter, qos = c.string().decode("utf-8", errors="replace"), c.u8() & 3
                if not valid_filter(topic_filter):  # a # that is not last would match too much
                    granted.append(0x80)
                    continue
                client.subscriptions[topic_filter] = min(qos, 2)
                granted.append(min(qos, 2))
                new.append(topic_filter)
            client.send(wire.packet(wire.SUBACK, 0, packet_id.to_bytes(2, "big") + bytes(granted)))
            for name, (stored, stored_qos) in self._retained.items():
                levels = [client.subscriptions[f] for f in new if matches(f, name)]
                if levels:
                    level = min(stored_qos, max(levels))
                    client.send(wire.publish(name, stored, level, next(client.ids) if level else 0, retain=True))
        elif kind == wire.UNSUBSCRIBE:
            c = Cursor(body)
            packet_id = c.u16()
            while not c.done:
                client.subscriptions.pop(c.string().decode(), None)
            client.send(wire.ack(wire.UNSUBACK, packet_id))
        elif kind == wire.PINGREQ:
            client.send(wire.packet(wire.PINGRESP, 0, b""))
        else:
            raise WireError(f"unexpected packet type {kind}")
