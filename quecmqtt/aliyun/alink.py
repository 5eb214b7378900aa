"""The Alink thing model over a connected `MqttClient` or `Session` (reference/aliyun.md 4).

thing = Thing(session, pk, dn)
await thing.start()                                   # subscribes to the replies and calls
code = await thing.post_properties({"Temp": 23.9})    # 200, matched to post_reply by id
thing.on_property_set(lambda params: apply(params))   # replies 200 (or the code returned)
thing.on_service("reboot", lambda params: {"ok": 1})  # replies with the output data, called
                                                      # asynchronously or through RRPC (sync)
thing.on_rrpc(lambda payload: b"pong")                # system RRPC: bytes in, bytes out
now_ms = await thing.sync_time()                      # NTP over /ext/ntp
await thing.report_version("1.0.1")
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quecmqtt.aliyun.tsl import ThingModel
from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import QuecError
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.session import Session

log = logging.getLogger("quecmqtt.alink")

Params = dict[str, Any]
SetHandler = Callable[[Params], "int | Awaitable[int | None] | None"]
ServiceHandler = Callable[[Params], "Params | Awaitable[Params | None] | None"]
RrpcHandler = Callable[[bytes], "bytes | Awaitable[bytes]"]


def json_object(payload: bytes) -> Params | None:
    """The payload as a JSON object; None for anything else: not JSON, not UTF-8, nested
    deeper than the parser goes (RecursionError), or JSON of another kind."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def ntp_time(device_send: int, server_recv: int, server_send: int, device_recv: int) -> int:
    """The device's UTC time in ms when the NTP response arrived (reference 4, N1)."""
    return (server_recv + server_send + device_recv - device_send) // 2


class Thing:
    def __init__(
        self, link: MqttClient | Session, product_key: str, device_name: str, *, qos: int = 1,
        auto_subscribed: bool = False, model: ThingModel | None = None,
    ) -> None:  # fmt: skip
        """`auto_subscribed`: the login asked the platform to subscribe the device to its reply
        and downlink topics (``_ss=1``): no SUBSCRIBE is sent for them. `model`: the product's
        thing model; posts it does not allow raise `TslError` before anything is sent."""
        self.link = link
        self.model = model
        self.auto_subscribed = auto_subscribed
        self.product_key = product_key
        self.device_name = device_name
        self.qos = qos
        self.base = f"/sys/{product_key}/{device_name}/thing"
        self._ids = itertools.count(int(time.time()) % 1_000_000 * 1000)
        self._waiting: dict[str, asyncio.Future[Params]] = {}
        self._set_handler: SetHandler | None = None
        self._services: dict[str, ServiceHandler] = {}
        self._ntp: asyncio.Future[Params] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_listening: Callable[[], None] | None = None
        self._rrpc_request = f"/sys/{product_key}/{device_name}/rrpc/request/"
        self._rrpc_handler: RrpcHandler | None = None

    async def __aenter__(self) -> Thing:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing -------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to what the cloud sends this device and start dispatching."""
        if self._stop_listening is None:
            self._stop_listening = self.link.on_message(self._on_message)
        system = () if self.auto_subscribed else (
            f"{self.base}/event/+/post_reply", f"{self.base}/service/property/set", f"{self.base}/service/+",
        )  # fmt: skip
        rrpc = () if self.auto_subscribed else (
            f"/sys/{self.product_key}/{self.device_name}/rrpc/request/+",
            f"/ext/rrpc/+/sys/{self.product_key}/{self.device_name}/thing/service/+",
        )  # fmt: skip
        for topic in (*system, *rrpc, f"/ext/ntp/{self.product_key}/{self.device_name}/response"):
            await self.subscribe(topic)

    async def subscribe(self, topic: str) -> None:
        """Subscribe at the thing's QoS (kept over reconnects when the link is a Session)."""
        if isinstance(self.link, Session):
            await self.link.subscribe(topic, self.qos)
        else:
            await self.link.subscribe([(topic, self.qos)])

    async def publish_json(self, topic: str, body: Params, qos: int | None = None) -> None:
        """Publish `body` as compact UTF-8 JSON (at the thing's QoS unless given)."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        await self.link.publish(topic, payload, self.qos if qos is None else qos)

    def next_id(self) -> str:
        """A fresh Alink message id (0..2^32-1, as a string)."""
        return str(next(self._ids) % 4_294_967_296)

    def _on_message(self, message: MqttMessage) -> None:
        topic = message.topic
        if topic.startswith(self._rrpc_request):  # any bytes: not Alink JSON
            self._spawn(self._serve_rrpc(topic[len(self._rrpc_request) :], message.payload))
            return
        body = json_object(message.payload)
        if body is None:
            if topic.startswith(self.base) or topic.startswith("/ext/ntp/"):
                log.warning("not a JSON object on %s: ignored", topic)
            return
        if topic.startswith(f"{self.base}/event/") and topic.endswith("_reply"):
            future = self._waiting.pop(str(body.get("id")), None)
            if future is not None and not future.done():
                future.set_result(body)
        elif topic == f"{self.base}/service/property/set":
            self._spawn(self._serve(None, body))
        elif topic.startswith("/ext/rrpc/") and "code" not in body and self._is_sync_service(topic):
            # "code" not in it: our own reply, sent to the topic we are subscribed to, comes back
            self._spawn(self._serve(topic.rsplit("/", 1)[1], body, reply_topic=topic))
        elif topic.startswith(f"{self.base}/service/") and not topic.endswith("_reply"):
            self._spawn(self._serve(topic.rsplit("/", 1)[1], body))
        elif topic.startswith("/ext/ntp/") and self._ntp is not None and not self._ntp.done():
            self._ntp.set_result(body)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, topic: str, method: str, params: Params, timeout: float) -> Params:
        request_id = self.next_id()
        future: asyncio.Future[Params] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.publish_json(topic, {"id": request_id, "version": "1.0", "params": params, "method": method})
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiting.pop(request_id, None)

    # -- device to cloud ----------------------------------------------------------------------

    async def post_properties(self, params: Params, *, timeout: float = 10.0) -> int:
        """Post properties; the reply's code (200 on success). TimeoutError without a reply;
        `TslError` (nothing sent) when the thing model does not allow them."""
        if self.model is not None:
            self.model.check_properties(params)
        reply = await self._request(f"{self.base}/event/property/post", "thing.event.property.post", params, timeout)
        return int(reply.get("code", -1))

    async def post_event(self, identifier: str, value: Params, *, timeout: float = 10.0) -> int:
        if self.model is not None:
            self.model.check_event(identifier, value)
        params = {"value": value, "time": int(time.time() * 1000)}
        reply = await self._request(
            f"{self.base}/event/{identifier}/post", f"thing.event.{identifier}.post", params, timeout
        )
        return int(reply.get("code", -1))

    async def sync_time(self, *, timeout: float = 10.0) -> int:
        """UTC milliseconds from the platform's NTP service."""
        self._ntp = asyncio.get_running_loop().create_future()
        sent = int(time.time() * 1000)
        topic = f"/ext/ntp/{self.product_key}/{self.device_name}/request"
        await self.publish_json(topic, {"deviceSendTime": str(sent)})
        async with asyncio.timeout(timeout):
            reply = await self._ntp
        received = int(time.time() * 1000)
        return ntp_time(
            int(reply.get("deviceSendTime", sent)), int(reply["serverRecvTime"]), int(reply["serverSendTime"]), received
        )

    async def report_version(self, version: str, module: str | None = None) -> None:
        params: Params = {"version": version}
        if module:
            params["module"] = module
        await self.publish_json(
            f"/ota/device/inform/{self.product_key}/{self.device_name}", {"id": self.next_id(), "params": params}
        )

    # -- cloud to device ----------------------------------------------------------------------

    def on_property_set(self, handler: SetHandler) -> None:
        """`handler(params)` for ``thing.service.property.set``; it returns the reply code
        (None: 200). A handler that raises answers 460."""
        self._set_handler = handler

    def on_service(self, identifier: str, handler: ServiceHandler) -> None:
        """`handler(params)` for the async service `identifier`; it returns the output data."""
        self._services[identifier] = handler

    def on_rrpc(self, handler: RrpcHandler) -> None:
        """`handler(payload)` for each system RRPC request (``/sys/pk/dn/rrpc/request/<id>``);
        the bytes it returns are the response, sent at QoS 0 as the platform requires. The
        platform waits at most 8 s for it (the RRpc API's Timeout)."""
        self._rrpc_handler = handler

    def _is_sync_service(self, topic: str) -> bool:
        """``/ext/rrpc/<id>/sys/<pk>/<dn>/thing/service/<identifier>``: a service called
        synchronously (callType sync), answered on the same topic."""
        parts = topic.split("/")
        return len(parts) == 10 and parts[4:9] == ["sys", self.product_key, self.device_name, "thing", "service"]

    async def _serve_rrpc(self, message_id: str, payload: bytes) -> None:
        handler = self._rrpc_handler
        if handler is None:
            log.warning("RRPC request %s and no on_rrpc handler: not answered (the caller times out)", message_id)
            return
        try:
            answer = handler(payload)
            answer = await answer if inspect.isawaitable(answer) else answer
            if not isinstance(answer, (bytes, bytearray, memoryview)):
                raise TypeError(f"an RRPC handler returns bytes, not {type(answer).__name__}")
        except Exception:
            log.exception("RRPC handler failed: request %s not answered", message_id)
            return
        try:
            await self.link.publish(
                f"/sys/{self.product_key}/{self.device_name}/rrpc/response/{message_id}", bytes(answer), 0
            )
        except QuecError as exc:
            log.warning("could not answer RRPC request %s: %s", message_id, exc)

    async def _serve(self, identifier: str | None, request: Params, *, reply_topic: str | None = None) -> None:
        """Answer a property set (`identifier` None) or a service call (on `reply_topic`
        when it came through RRPC)."""
        params = request.get("params") if isinstance(request.get("params"), dict) else {}
        reply: Params = {"id": str(request.get("id", "")), "code": 200, "data": {}}
        try:
            if identifier is None:
                topic = f"{self.base}/service/property/set_reply"
                if self._set_handler is None:
                    reply["code"] = 460
                else:
                    code = self._set_handler(params or {})
                    code = await code if inspect.isawaitable(code) else code
                    reply["code"] = 200 if code is None else int(code)
            else:
                topic = reply_topic or f"{self.base}/service/{identifier}_reply"
                handler = self._services.get(identifier)
                if handler is None:
                    reply["code"] = 460
                    reply["message"] = f"no handler for service {identifier}"
                else:
                    data = handler(params or {})
                    data = await data if inspect.isawaitable(data) else data
                    json.dumps(data or {})  # what cannot go out as JSON fails here, logged, answered 460
                    reply["data"] = data or {}
        except Exception:
            log.exception("handler for %s failed", identifier)
            reply["code"] = 460
        try:
            await self.publish_json(topic, reply, 0 if reply_topic else None)  # RRPC answers at QoS 0
        except QuecError as exc:  # the link went down: the cloud times the call out
            log.warning("could not reply to %s: %s", identifier or "property set", exc)

    async def close(self, timeout: float = 5.0) -> None:
        """Let replies being sent finish (up to `timeout`), then stop dispatching."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
