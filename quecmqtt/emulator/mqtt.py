"""A small MQTT 3.1.1 / 3.1 client, the emulated module's own.

A Quectel module opens the TCP/TLS connection (`AT+QMTOPEN`) and sends CONNECT
(`AT+QMTCONN`) as two steps, and its msgIDs are the packet ids on the wire. paho-mqtt
connects and sends CONNECT in one call and picks its own ids, so the emulator speaks MQTT
itself over the stream QMTOPEN opened: the broker sees one connection per client index,
with the host's ids, as from a real module.

`rtt` adds a network round-trip time: every packet leaves rtt/2 after it is sent and is
processed rtt/2 after it arrives, in order, so pipelined packets overlap as on a real
cellular link instead of queueing behind each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass

from quecmqtt.wire.mqtt import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    WireError,
    ack,
    packet,
    parse_publish,
    read_packet,
)
from quecmqtt.wire.mqtt import string as _str

log = logging.getLogger("quecmqtt.emulator.mqtt")

# +QMTSTAT codes the connection reports when it ends by itself
CLOSED_BY_PEER = 1
PING_FAILED = 2


@dataclass
class Will:
    topic: bytes
    message: bytes
    qos: int = 0
    retain: bool = False


@dataclass
class Incoming:
    topic: bytes
    payload: bytes
    qos: int
    packet_id: int
    retain: bool


class MqttConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_message: Callable[[Incoming], None],
        on_closed: Callable[[int], None],
        rtt: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_message = on_message
        self._on_closed = on_closed
        self._rtt = rtt
        self._acks: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        self._connack: asyncio.Future[int] | None = None
        self._pong: asyncio.Future[None] | None = None
        self.drop_pongs = False  # fault: PINGRESP never arrives, so the keep-alive fails
        self._outbox: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._inbox: asyncio.Queue[tuple[float, int, int, bytes]] = asyncio.Queue()
        self._qos2_seen: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sent = 0.0
        self._sent_all = asyncio.Event()  # set when every queued packet is written
        self.closed = False
        self.closing_by_us = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="mqtt-send"),
            asyncio.create_task(self._read_loop(), name="mqtt-read"),
            asyncio.create_task(self._process_loop(), name="mqtt-process"),
        ]

    # -- sending ----------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._sent_all.clear()
        self._outbox.put_nowait((loop.time() + self._rtt() / 2, data))
        self._last_sent = loop.time()

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await self._outbox.get()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._writer.write(data)
                await self._writer.drain()
                if self._outbox.empty():
                    self._sent_all.set()
        except (ConnectionError, OSError):
            self._lost(CLOSED_BY_PEER)

    # -- receiving --------------------------------------------------------------------

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                kind, flags, body, _ = await read_packet(self._reader)
                self._inbox.put_nowait((loop.time() + self._rtt() / 2, kind, flags, body))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, WireError):
            self._inbox.put_nowait((loop.time() + self._rtt() / 2, 0, 0, b""))  # end of stream, in order

    async def _process_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, kind, flags, body = await self._inbox.get()
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == 0:
                self._lost(CLOSED_BY_PEER)
                return
            try:
                resolved = self._handle(kind, flags, body)
            except (WireError, struct.error, IndexError, ValueError) as exc:
                log.warning("bad packet from the broker (%s): closing", exc)
                self._lost(CLOSED_BY_PEER)
                return
            if resolved:
                # A module reports a result before what came after it on the wire
                # (+QMTCONN before the +QMTRECV of a message right behind CONNACK): let
                # the waiting operation run its report before the next packet.
                for _ in range(4):
                    await asyncio.sleep(0)

    def _handle(self, kind: int, flags: int, body: bytes) -> bool:
        """Act on one packet; True if it completed an operation someone waits for."""
        if kind == CONNACK:
            if self._connack is not None and not self._connack.done():
                self._connack.set_result(body[1])
                return True
        elif kind == PUBLISH:
            topic, payload, qos, packet_id, retain = parse_publish(flags, body)
            if qos == 1:
                self._send(ack(PUBACK, packet_id))
            elif qos == 2:
                self._send(ack(PUBREC, packet_id))
                if packet_id in self._qos2_seen:
                    return False  # a DUP of a message we already delivered
                self._qos2_seen.add(packet_id)
            self._on_message(Incoming(topic, payload, qos, packet_id, retain))
        elif kind == PUBREL:
            (packet_id,) = struct.unpack_from("!H", body)
            self._qos2_seen.discard(packet_id)
            self._send(ack(PUBCOMP, packet_id))
        elif kind in (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK):
            (packet_id,) = struct.unpack_from("!H", body)
            if kind == PUBREC:
                self._send(ack(PUBREL, packet_id))
            future = self._acks.get((kind, packet_id))
            if future is not None and not future.done():
                future.set_result(body[2:])
                return True
        elif kind == PINGRESP and self._pong is not None and not self._pong.done() and not self.drop_pongs:
            self._pong.set_result(None)
        return False

    # -- operations -------------------------------------------------------------------

    async def connect(
        self,
        client_id: bytes,
        username: bytes | None,
        password: bytes | None,
        *,
        keepalive: int,
        clean: bool,
        will: Will | None,
        version: int,
        timeout: float,
    ) -> int:
        """Send CONNECT; return the CONNACK code. TimeoutError if none comes."""
        name, level = (b"MQIsdp", 3) if version == 3 else (b"MQTT", 4)
        flags = 0x02 if clean else 0
        payload = _str(client_id)
        if will is not None:
            flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
            payload += _str(will.topic) + _str(will.message)
        if username is not None:
            flags |= 0x80
            payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
        body = _str(name) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload
        self._connack = asyncio.get_running_loop().create_future()
        self._send(packet(CONNECT, 0, body))
        async with asyncio.timeout(timeout):
            code = await self._connack
        if code == 0 and keepalive:
            self._tasks.append(asyncio.create_task(self._keepalive(keepalive, timeout), name="mqtt-ping"))
        return code

    async def publish(
        self, topic: bytes, payload: bytes, *, qos: int, retain: bool, packet_id: int, timeout: float, retries: int
    ) -> tuple[int, int]:
        """(result, retransmissions): result 0 acknowledged (or QoS 0 sent), 2 failed."""
        head = _str(topic) + (struct.pack("!H", packet_id) if qos else b"")
        flags = (qos << 1) | (1 if retain else 0)
        if qos == 0:
            self._send(packet(PUBLISH, flags, head + payload))
            return 0, 0
        ack = PUBACK if qos == 1 else PUBCOMP
        result, retransmissions, _ = await self._with_retries(
            (ack, packet_id), lambda dup: packet(PUBLISH, flags | (8 if dup else 0), head + payload), timeout, retries
        )
        return result, retransmissions

    async def subscribe(
        self, packet_id: int, topics: list[tuple[bytes, int]], *, timeout: float, retries: int
    ) -> list[int]:
        body = struct.pack("!H", packet_id) + b"".join(_str(t) + bytes([q]) for t, q in topics)
        result, _, granted = await self._with_retries(
            (SUBACK, packet_id), lambda dup: packet(SUBSCRIBE, 2, body), timeout, retries
        )
        if result != 0:
            raise TimeoutError("no SUBACK")
        return list(granted)

    async def unsubscribe(self, packet_id: int, topics: list[bytes], *, timeout: float, retries: int) -> int:
        body = struct.pack("!H", packet_id) + b"".join(_str(t) for t in topics)
        result, _, _ = await self._with_retries(
            (UNSUBACK, packet_id), lambda dup: packet(UNSUBSCRIBE, 2, body), timeout, retries
        )
        return result

    async def _with_retries(
        self, key: tuple[int, int], build: Callable[[bool], bytes], timeout: float, retries: int
    ) -> tuple[int, int, bytes]:
        """Send, resend with DUP on each time-out; (0, resends, ack body) or (2, resends, b"")."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._acks[key] = future
        try:
            for attempt in range(retries + 1):
                self._send(build(attempt > 0))
                try:
                    async with asyncio.timeout(timeout):
                        return 0, attempt, await asyncio.shield(future)
                except TimeoutError:
                    if self.closed:
                        break
            return 2, retries, b""
        finally:
            self._acks.pop(key, None)

    async def _keepalive(self, keepalive: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            await asyncio.sleep(max(0.05, self._last_sent + keepalive - loop.time()))
            if loop.time() - self._last_sent < keepalive:
                continue
            self._pong = loop.create_future()
            self._send(packet(PINGREQ, 0, b""))
            try:
                async with asyncio.timeout(timeout):
                    await self._pong
            except TimeoutError:
                self._lost(PING_FAILED)
                return

    async def disconnect(self) -> None:
        self.closing_by_us = True
        self._send(packet(DISCONNECT, 0, b""))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0 + self._rtt()):
                await self._sent_all.wait()

    # -- closing ----------------------------------------------------------------------

    def _lost(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        for future in self._acks.values():
            if not future.done():
                future.cancel()
        if self._connack is not None and not self._connack.done():
            self._connack.cancel()
        self._abort()
        self._on_closed(code)

    def close(self) -> None:
        """Close the connection ourselves (QMTCLOSE, a fault, a reboot): no report."""
        if self.closed:
            return
        self.closed = True
        self._abort()

    def _abort(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()
