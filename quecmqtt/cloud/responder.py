"""The platform's side of the Alink thing model, as a client on the twin's broker: answers
property posts and events with ``post_reply`` (in the form the seed's 4.1.3 shows), NTP
requests, records OTA version reports, and pushes property sets and service calls to devices,
returning their replies."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from typing import Any

from quecmqtt.cloud.broker import matches
from quecmqtt.wire import mqtt as wire
from quecmqtt.wire.mqtt import Cursor, WireError

log = logging.getLogger("quecmqtt.cloud.responder")

SUBSCRIPTIONS = (
    "/sys/+/+/thing/event/+/post",
    "/sys/+/+/thing/service/#",
    "/ext/ntp/+/+/request",
    "/ota/device/inform/+/+",
)


class Responder:
    def __init__(
        self, host: str, port: int, client_id: str = "quecmqtt-cloud-twin", *, token: bytes | None = None
    ) -> None:
        self.host = host
        self.token = token  # the embedded broker's: it takes no other login
        self.port = port
        self.client_id = client_id
        self.posts: list[tuple[str, str, str, dict[str, Any]]] = []  # (pk, dn, method, params)
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._writer = writer
        user = wire.BACKEND_USER if self.token else None
        writer.write(wire.Connect(self.client_id, user, self.token, 60, True).encode())
        kind, _, body, _ = await wire.read_packet(reader)
        if kind != wire.CONNACK or body[1:2] != b"\x00":
            raise WireError("the broker refused the twin's responder")
        payload = b"".join(wire.string(t) + b"\x01" for t in SUBSCRIPTIONS)
        writer.write(wire.packet(wire.SUBSCRIBE, 0x02, (1).to_bytes(2, "big") + payload))
        self._task = asyncio.create_task(self._run(reader), name="cloud-responder")
        async with asyncio.timeout(10):
            await self._subscribed.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.write(wire.packet(wire.DISCONNECT, 0, b""))
            self._writer.close()

    def publish(self, topic: str, body: dict[str, Any], qos: int = 1) -> None:
        assert self._writer is not None
        payload = json.dumps(body, separators=(",", ":")).encode()
        self._writer.write(wire.publish(topic, payload, qos, next(self._ids) % 65535 + 1 if qos else 0))

    async def _run(self, reader: asyncio.StreamReader) -> None:
        ping = asyncio.create_task(self._ping())
        try:
            while True:
                kind, flags, body, _ = await wire.read_packet(reader)
                if kind == wire.SUBACK:
                    self._subscribed.set()
                elif kind == wire.PUBLISH:
                    topic, payload, qos, packet_id, _ = wire.parse_publish(flags, body)
                    if qos == 1:
                        self._send(wire.ack(wire.PUBACK, packet_id))
                    elif qos == 2:
                        self._send(wire.ack(wire.PUBREC, packet_id))
                    self._on_publish(topic.decode("utf-8", errors="replace"), payload)
                elif kind == wire.PUBREL:
                    self._send(wire.ack(wire.PUBCOMP, Cursor(body).u16()))
        except (asyncio.IncompleteReadError, OSError, WireError) as exc:
            log.warning("responder: connection to the broker ended (%s)", type(exc).__name__)
        finally:
            ping.cancel()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(30)
            self._send(wire.packet(wire.PINGREQ, 0, b""))

    def _send(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def _on_publish(self, topic: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.info("responder: not JSON on %s", topic)
            return
        if not isinstance(body, dict):
            return
        parts = topic.split("/")
        if matches("/sys/+/+/thing/event/+/post", topic):
            pk, dn = parts[2], parts[3]
            method = str(body.get("method", f"thing.event.{parts[6]}.post"))
            self.posts.append((pk, dn, method, body.get("params") or {}))
            reply = {"code": 200, "data": {}, "id": str(body.get("id", "")), "message": "success",
                     "method": method, "version": "1.0"}  # fmt: skip
            self.publish(topic + "_reply", reply, qos=0)
        elif matches("/ext/ntp/+/+/request", topic):
            now = int(time.time() * 1000)
            self.publish(
                f"/ext/ntp/{parts[3]}/{parts[4]}/response",
                {"deviceSendTime": str(body.get("deviceSendTime", "")), "serverRecvTime": str(now),
                 "serverSendTime": str(int(time.time() * 1000))},
                qos=0,
            )  # fmt: skip
        elif matches("/ota/device/inform/+/+", topic):
            self.versions[(parts[4], parts[5])] = body.get("params") or {}
        elif matches("/sys/+/+/thing/service/#", topic) and topic.endswith("_reply"):
            future = self._replies.pop(str(body.get("id")), None)
            if future is not None and not future.done():
                future.set_result(body)

    async def _call(self, topic: str, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        request_id = str(int(time.time() * 1000) + next(self._ids))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        try:
            self.publish(topic, {"id": request_id, "version": "1.0", "params": params, "method": method})
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._replies.pop(request_id, None)

    async def set_properties(self, pk: str, dn: str, params: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Push ``thing.service.property.set``; the device's reply."""
        return await self._call(
            f"/sys/{pk}/{dn}/thing/service/property/set", "thing.service.property.set", params, timeout
        )

    async def call_service(
        self, pk: str, dn: str, identifier: str, params: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Call the async service `identifier`; the device's reply."""
        return await self._call(
            f"/sys/{pk}/{dn}/thing/service/{identifier}", f"thing.service.{identifier}", params, timeout
        )
