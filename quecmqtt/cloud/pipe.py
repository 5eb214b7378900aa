"""A logged-in device's session, piped to the broker packet by packet so that the platform's
topic rules hold (`quecmqtt.cloud.topics`): a PUBLISH to a topic not the device's is
acknowledged and dropped, a SUBSCRIBE's filters that are not its own are answered 0x80 and the
rest go to the broker, whose SUBACK is then given the refused codes back in their places.

What it keeps is bounded by the packets in flight (ids are 16 bits), never by uptime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Coroutine

from quecmqtt.cloud.topics import may_publish, may_subscribe
from quecmqtt.wire import mqtt as wire
from quecmqtt.wire.mqtt import Cursor, WireError

log = logging.getLogger("quecmqtt.cloud")
REFUSED = 0x80  # SUBACK's failure code


class DevicePipe:
    def __init__(
        self,
        product_key: str,
        device_name: str,
        device: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        broker: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        *,
        connack_passed: bool = False,
    ) -> None:
        self.pk, self.dn = product_key, device_name
        self.device_reader, self.device_writer = device
        self.broker_reader, self.broker_writer = broker
        self._refused_in: dict[int, list[bool]] = {}  # SUBSCRIBE id -> which filters were refused
        self._dropped_qos2: set[int] = set()  # QoS 2 publishes dropped: their PUBREL is ours to answer
        self._connack_passed = asyncio.Event()
        if connack_passed:  # the front passed it on already (with the automatic subscription)
            self._connack_passed.set()

    async def run(self) -> None:
        """Until either side closes or sends what is not MQTT."""
        down = asyncio.create_task(self._guarded(self._down()))
        up = asyncio.create_task(self._guarded(self._up()))
        try:
            await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
            up.cancel()
            await asyncio.gather(down, up, return_exceptions=True)

    @staticmethod
    async def _guarded(loop: Coroutine[None, None, None]) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, WireError):
            await loop

    async def _up(self) -> None:
        await self._connack_passed.wait()  # nothing of ours may reach the device before its CONNACK
        while True:
            kind, flags, body, raw = await wire.read_packet(self.device_reader)
            answered = False  # whether we wrote to the device ourselves
            if kind == wire.PUBLISH:
                answered = self._publish(flags, body, raw)
            elif kind == wire.PUBREL and (packet_id := Cursor(body).u16()) in self._dropped_qos2:
                self._dropped_qos2.discard(packet_id)
                self.device_writer.write(wire.ack(wire.PUBCOMP, packet_id))
                answered = True
            elif kind == wire.SUBSCRIBE:
                answered = self._subscribe(body, raw)
            elif kind == wire.CONNECT:
                raise WireError("a second CONNECT")  # a protocol violation (MQTT 3.1.0-2): the session ends
            else:
                self.broker_writer.write(raw)
            await self.broker_writer.drain()
            if answered:  # else a device slow to read its downlink would hold its uplink up
                await self.device_writer.drain()

    def _publish(self, flags: int, body: bytes, raw: bytes) -> bool:
        """Forward, or acknowledge and drop; whether the device got an answer from us."""
        topic, _, qos, packet_id, _ = wire.parse_publish(flags, body)
        name = topic.decode("utf-8", errors="replace")
        if may_publish(self.pk, self.dn, name):
            self.broker_writer.write(raw)
            return False
        log.info("front: %s/%s may not publish to %r: dropped", self.pk, self.dn, name[:128])
        if qos == 1:
            self.device_writer.write(wire.ack(wire.PUBACK, packet_id))
        elif qos == 2:
            self._dropped_qos2.add(packet_id)
            self.device_writer.write(wire.ack(wire.PUBREC, packet_id))
        return qos > 0

    def _subscribe(self, body: bytes, raw: bytes) -> bool:
        cursor = Cursor(body)
        packet_id = cursor.u16()
        filters: list[tuple[bytes, int]] = []
        while not cursor.done:
            filters.append((cursor.string(), cursor.u8()))
        refused = [not may_subscribe(self.pk, self.dn, f.decode("utf-8", errors="replace")) for f, _ in filters]
        if not any(refused):
            self.broker_writer.write(raw)
            return False
        names = [repr(f.decode("utf-8", "replace")[:64]) for (f, _), r in zip(filters, refused, strict=True) if r]
        log.info("front: %s/%s may not subscribe to %s: refused (0x80)", self.pk, self.dn, ", ".join(names))
        if all(refused):
            codes = packet_id.to_bytes(2, "big") + bytes([REFUSED] * len(filters))
            self.device_writer.write(wire.packet(wire.SUBACK, 0, codes))
            return True
        self._refused_in[packet_id] = refused
        allowed = b"".join(wire.string(f) + bytes([q]) for (f, q), r in zip(filters, refused, strict=True) if not r)
        self.broker_writer.write(wire.packet(wire.SUBSCRIBE, 2, packet_id.to_bytes(2, "big") + allowed))
        return False

    async def _down(self) -> None:
        while True:
            kind, _, body, raw = await wire.read_packet(self.broker_reader)
            if kind == wire.CONNACK:
                self._connack_passed.set()
            refused = self._refused_in.pop(Cursor(body).u16(), None) if kind == wire.SUBACK else None
            if refused is None:
                self.device_writer.write(raw)
            else:  # the broker's codes for the filters it got, 0x80 where the others were
                codes = iter(body[2:])
                merged = bytes(REFUSED if r else next(codes, REFUSED) for r in refused)
                self.device_writer.write(wire.packet(wire.SUBACK, 0, body[:2] + merged))
            await self.device_writer.drain()
