"""The platform's side of the Alink thing model, as a client on the twin's broker: answers
property posts and events with ``post_reply`` (in the form the seed's 4.1.3 shows), NTP
requests, OTA version reports (a device on another version than the one offered gets the
upgrade task) and firmware queries, records OTA progress, and pushes property sets, service
calls and RRPC requests to devices, returning their replies.

What it keeps grows with the number of devices, never with the number of messages: the
history it shows tests and the console is a bounded window."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quecmqtt.cloud import shadow as shadows
from quecmqtt.cloud.broker import matches
from quecmqtt.cloud.ota import FirmwareStore
from quecmqtt.cloud.shadow import Shadow
from quecmqtt.cloud.thingmodel import PlatformModel, Refused
from quecmqtt.wire import mqtt as wire
from quecmqtt.wire.mqtt import Cursor, WireError

log = logging.getLogger("quecmqtt.cloud.responder")

SUBSCRIPTIONS = (
    "/sys/+/+/thing/event/+/post",
    "/sys/+/+/thing/service/#",
    "/ext/ntp/+/+/request",
    "/ota/device/inform/+/+",
    "/ota/device/progress/+/+",
    "/sys/+/+/thing/ota/firmware/get",
    "/sys/+/+/rrpc/response/+",
    "/ext/rrpc/+/sys/+/+/thing/service/+",
    "/shadow/update/+/+",
)
HISTORY = 200  # posts and progress reports kept for tests and the console (posts of up to 1 MiB each)
RRPC_TIMEOUT = 8.0  # the RRpc API's Timeout: 1000-8000 ms; the platform answers TIMEOUT after it


@dataclass(frozen=True)
class RrpcResult:
    """What the RRpc API returns: `code` SUCCESS, TIMEOUT or OFFLINE, and the device's bytes."""

    code: str
    payload: bytes = b""


class Responder:
    def __init__(
        self, host: str, port: int, client_id: str = "quecmqtt-cloud-twin", *, token: bytes | None = None,
        firmware: FirmwareStore | None = None, region: str = "cn-shanghai", https_port: int | None = None,
        online: Callable[[str, str], bool] | None = None, models: dict[str, PlatformModel] | None = None,
        known: Callable[[str, str], bool] | None = None,
    ) -> None:  # fmt: skip
        self.host = host
        self.firmware = firmware if firmware is not None else FirmwareStore()
        self.region = region
        self.https_port = https_port  # where the firmware links point (None: 443)
        self.online = online  # whether a device is connected (None: assume it is)
        self.models = models if models is not None else {}  # product key -> its thing model
        self.known = known or (lambda pk, dn: True)  # whether the registry has the device
        self.shadows: dict[tuple[str, str], Shadow] = {}
        self.token = token  # the embedded broker's: it takes no other login
        self.port = port
        self.client_id = client_id
        self.posts: deque[tuple[str, str, str, dict[str, Any]]] = deque(maxlen=HISTORY)  # (pk, dn, method, params)
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self.progress: deque[tuple[str, str, int, str]] = deque(maxlen=HISTORY)  # (pk, dn, step, desc)
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._rrpc: dict[str, asyncio.Future[bytes]] = {}
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
                try:
                    await self._task
                except Exception:  # the rest of the twin still has to stop
                    log.exception("responder: it had failed")
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
                    try:
                        self._on_publish(topic.decode("utf-8", errors="replace"), payload)
                    except Exception:  # one device's message must not silence the platform for all
                        log.exception("responder: a message on %r could not be handled", topic[:128])
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
        if matches("/sys/+/+/rrpc/response/+", topic):  # any bytes
            parts = topic.split("/")  # an answer counts only from the device that was asked
            answered = self._rrpc.pop(f"{parts[2]}/{parts[3]}/{parts[6]}", None)
            if answered is not None and not answered.done():
                answered.set_result(payload)
            return
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):  # "[" * 3000: too deep for the parser
            log.info("responder: not JSON on %s", topic)
            return
        if not isinstance(body, dict):
            return
        parts = topic.split("/")
        if matches("/sys/+/+/thing/event/+/post", topic):
            self._answer_post(topic, parts[2], parts[3], parts[6], body)
        elif matches("/shadow/update/+/+", topic):
            if not self.known(parts[3], parts[4]):  # no state for names a device makes up
                log.info("responder: shadow update for an unknown device %s/%s", parts[3], parts[4])
                return
            shadow = self.shadows.setdefault((parts[3], parts[4]), Shadow())
            self.publish(f"/shadow/get/{parts[3]}/{parts[4]}", shadows.handle(shadow, body), qos=1)
        elif matches("/ext/ntp/+/+/request", topic):
            now = int(time.time() * 1000)
            self.publish(
                f"/ext/ntp/{parts[3]}/{parts[4]}/response",
                {"deviceSendTime": str(body.get("deviceSendTime", "")), "serverRecvTime": str(now),
                 "serverSendTime": str(int(time.time() * 1000))},
                qos=0,
            )  # fmt: skip
        elif matches("/ota/device/inform/+/+", topic):
            params = _params(body)
            if not self.known(parts[4], parts[5]):
                return
            self.versions[(parts[4], parts[5])] = params
            self._offer_upgrade(parts[4], parts[5], str(params.get("version", "")))
        elif matches("/ota/device/progress/+/+", topic):
            report = _params(body)
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.progress.append((parts[4], parts[5], int(report["step"]), str(report.get("desc", ""))[:128]))
        elif matches("/sys/+/+/thing/ota/firmware/get", topic):
            self._answer_firmware_get(parts[2], parts[3], body)
        elif matches("/ext/rrpc/+/sys/+/+/thing/service/+", topic):
            if "code" in body:  # the device's answer (the request comes back to us too)
                future = self._replies.pop(f"rrpc:{parts[5]}/{parts[6]}/{parts[3]}", None)
                if future is not None and not future.done():
                    future.set_result(body)
        elif matches("/sys/+/+/thing/service/#", topic) and topic.endswith("_reply"):
            future = self._replies.pop(f"{parts[2]}/{parts[3]}/{body.get('id')}", None)
            if future is not None and not future.done():
                future.set_result(body)

    def _answer_post(self, topic: str, pk: str, dn: str, event: str, body: dict[str, Any]) -> None:
        """post_reply, after the product's thing model (if one is loaded) judged the post."""
        method = str(body.get("method", f"thing.event.{event}.post"))
        params = _params(body)
        reply: dict[str, Any] = {"code": 200, "data": {}, "id": str(body.get("id", "")), "message": "success",
                                 "method": method, "version": "1.0"}  # fmt: skip
        model = self.models.get(pk)
        try:
            if model is not None and event == "property":
                reply["data"] = model.judge_properties(params)
                params = {k: v for k, v in params.items() if k not in reply["data"]}  # dropped, not kept
            elif model is not None:
                model.judge_event(event, params)
        except Refused as refused:
            reply.update(code=refused.code, message=refused.message)
            log.info("responder: %s/%s %s refused: %d %s", pk, dn, method, refused.code, refused.message)
        else:
            self.posts.append((pk, dn, method, params))
        self.publish(topic + "_reply", reply, qos=0)

    async def set_desired(self, pk: str, dn: str, desired: dict[str, Any]) -> int:
        """Set a device's desired state (the UpdateDeviceShadow API): the control message
        goes to /shadow/get; the shadow's new version."""
        _check_names(pk, dn)
        shadow = self.shadows.setdefault((pk, dn), Shadow())
        self.publish(f"/shadow/get/{pk}/{dn}", shadows.control(shadow, desired), qos=1)
        return shadow.version

    # -- OTA ------------------------------------------------------------------------------------

    def _offer_upgrade(self, pk: str, dn: str, version: str) -> None:
        """A device that reports another version than the product's offered firmware gets
        the task pushed on /ota/device/upgrade (Aliyun OTA: a device online gets its task;
        it reports its version on connecting)."""
        firmware = self.firmware.offered(pk)
        if firmware is None or firmware.version == version:
            return
        task = firmware.task(self.region, self.https_port, next(self._ids))
        self.publish(f"/ota/device/upgrade/{pk}/{dn}", task, qos=1)
        log.info("responder: upgrade task %s pushed to %s/%s (on %s)", firmware.version, pk, dn, version or "?")

    def _answer_firmware_get(self, pk: str, dn: str, body: dict[str, Any]) -> None:
        firmware = self.firmware.offered(pk)
        data = firmware.task(self.region, self.https_port)["data"] if firmware is not None else {}
        reply = {"id": str(body.get("id", "")), "code": 200, "data": data, "message": "success",
                 "method": "thing.ota.firmware.get", "version": "1.0"}  # fmt: skip
        self.publish(f"/sys/{pk}/{dn}/thing/ota/firmware/get_reply", reply, qos=0)

    # -- calls to devices -----------------------------------------------------------------------

    async def rrpc(self, pk: str, dn: str, payload: bytes, timeout: float = RRPC_TIMEOUT) -> RrpcResult:
        """System RRPC (the RRpc API): the request on ``/sys/pk/dn/rrpc/request/<messageId>``,
        the device's answer on ``.../rrpc/response/<messageId>``. OFFLINE when the device is
        not connected, TIMEOUT when it does not answer within `timeout` (at most 8 s)."""
        if not 0 < timeout <= RRPC_TIMEOUT:
            raise ValueError(f"the RRPC time-out is 0-{RRPC_TIMEOUT:g} s (the RRpc API's 1000-8000 ms)")
        _check_names(pk, dn)
        if self.online is not None and not self.online(pk, dn):
            return RrpcResult("OFFLINE")
        message_id = str(int(time.time() * 1000) * 1000 + next(self._ids) % 1000)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._rrpc[f"{pk}/{dn}/{message_id}"] = future
        assert self._writer is not None
        self._writer.write(wire.publish(f"/sys/{pk}/{dn}/rrpc/request/{message_id}", payload, 0, 0))
        try:
            async with asyncio.timeout(timeout):
                return RrpcResult("SUCCESS", await future)
        except TimeoutError:
            return RrpcResult("TIMEOUT")
        finally:
            self._rrpc.pop(f"{pk}/{dn}/{message_id}", None)

    async def _call(
        self, pk: str, dn: str, topic_tail: str, method: str, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Push `method` on ``/sys/pk/dn/thing/service/<topic_tail>``; the reply from that device."""
        _check_names(pk, dn)
        request_id = str(int(time.time() * 1000) + next(self._ids))
        key = f"{pk}/{dn}/{request_id}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        try:
            body = {"id": request_id, "version": "1.0", "params": params, "method": method}
            self.publish(f"/sys/{pk}/{dn}/thing/service/{topic_tail}", body)
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._replies.pop(key, None)

    async def set_properties(self, pk: str, dn: str, params: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Push ``thing.service.property.set``; the device's reply."""
        return await self._call(pk, dn, "property/set", "thing.service.property.set", params, timeout)

    async def call_service(
        self, pk: str, dn: str, identifier: str, params: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Call the async service `identifier`; the device's reply."""
        _check_names(identifier)
        refusal = self._unknown_service(pk, identifier)
        if refusal is not None:
            return refusal
        return await self._call(pk, dn, identifier, f"thing.service.{identifier}", params, timeout)

    async def call_sync_service(
        self, pk: str, dn: str, identifier: str, params: dict[str, Any], timeout: float = RRPC_TIMEOUT
    ) -> dict[str, Any]:
        """Call the sync service `identifier` through RRPC
        (``/ext/rrpc/<id>/sys/pk/dn/thing/service/<identifier>``, answered on the same topic);
        the device's reply. TimeoutError after `timeout` (at most the platform's 8 s)."""
        if not 0 < timeout <= RRPC_TIMEOUT:
            raise ValueError(f"a synchronous call waits 0-{RRPC_TIMEOUT:g} s (the platform's limit)")
        _check_names(pk, dn, identifier)
        refusal = self._unknown_service(pk, identifier)
        if refusal is not None:
            return refusal
        rrpc_id = str(int(time.time() * 1000) * 1000 + next(self._ids) % 1000)
        key = f"rrpc:{pk}/{dn}/{rrpc_id}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        try:
            self.publish(
                f"/ext/rrpc/{rrpc_id}/sys/{pk}/{dn}/thing/service/{identifier}",
                {"id": rrpc_id, "version": "1.0", "params": params, "method": f"thing.service.{identifier}"},
                qos=0,
            )
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._replies.pop(key, None)

    def _unknown_service(self, pk: str, identifier: str) -> dict[str, Any] | None:
        """The platform checks a call against the product's thing model before sending it:
        a service the model does not define never reaches the device [R: code 6321 from the
        device code document's list; the cloud API says the service is not found]."""
        model = self.models.get(pk)
        if model is None or model.has_service(identifier):
            return None
        return {"code": 6321, "message": f"tsl parse: service not exist -> {identifier}", "data": {}}


def _params(body: dict[str, Any]) -> dict[str, Any]:
    """An Alink message's ``params`` object (empty when it has none or another kind)."""
    params = body.get("params")
    return params if isinstance(params, dict) else {}


def _check_names(*names: str) -> None:
    """Product keys, device names and identifiers go into topics: no wildcard, no level
    separator, no NUL (a broker drops the connection that publishes one)."""
    for name in names:
        if not name or any(c in name for c in "+#/\x00") or not name.isprintable():
            raise ValueError(f"{name!r} cannot be part of a topic (empty, or with + # / or a control character)")
