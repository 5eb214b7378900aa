"""The device shadow, from the device (Aliyun "设备影子"; Link SDK C 4.x `components/shadow`):

    shadow = DeviceShadow(thing)
    await shadow.start()                         # /shadow/get/<pk>/<dn>, where replies come
    document = await shadow.get()                # {"state": {...}, "metadata": {...}}
    await shadow.report({"LightStatus": 1})      # the shadow's new version
    shadow.on_desired(apply)                     # apply(desired) for each control push; the
                                                 # desired state is then cleared

Updates go to ``/shadow/update/<pk>/<dn>`` with a version greater than the shadow's (the
platform answers 409 otherwise: the version is then read with a get and the update sent once
more). Replies carry no id, so one request is in flight at a time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from quecmqtt.aliyun.alink import Thing, json_object
from quecmqtt.aliyun.errors import AliyunError
from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import QuecError

log = logging.getLogger("quecmqtt.aliyun.shadow")

DesiredHandler = Callable[[dict[str, Any]], "Awaitable[None] | None"]
VERSION_CONFLICT = 409


class ShadowError(AliyunError):
    """The platform refused a shadow request (`code`: 400-409, 500)."""


class DeviceShadow:
    def __init__(self, thing: Thing) -> None:
        self.thing = thing
        pk, dn = thing.product_key, thing.device_name
        self.update_topic = f"/shadow/update/{pk}/{dn}"
        self.get_topic = f"/shadow/get/{pk}/{dn}"
        self.version = 0  # the shadow's version as last seen
        self._lock = asyncio.Lock()
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self._asked = ""  # the method of the request in flight
        self._on_desired: DesiredHandler | None = None
        self._stop_listening: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._stop_listening is None:
            self._stop_listening = self.thing.link.on_message(self._on_message)
        if not self.thing.auto_subscribed:  # else the platform subscribed it
            await self.thing.subscribe(self.get_topic)

    def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None

    def on_desired(self, handler: DesiredHandler) -> None:
        """`handler(desired)` for each ``control`` push that carries a desired state."""
        self._on_desired = handler

    def _on_message(self, message: MqttMessage) -> None:
        if message.topic != self.get_topic:
            return
        body = json_object(message.payload)
        if body is None:
            log.warning("shadow: not a JSON object on %s: ignored", message.topic)
            return
        if body.get("method") == "control":
            self._note_version(body.get("version"))
            desired = _object(_object(body.get("payload")).get("state")).get("desired")
            if isinstance(desired, dict) and desired and self._on_desired is not None:
                task = asyncio.ensure_future(self._apply(desired))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif body.get("method") == "reply" and self._reply is not None and not self._reply.done():
            # replies carry no id: one that does not fit the request (a late answer to a get
            # that timed out) is not taken for this one's
            has_state = "state" in _object(body.get("payload"))
            if has_state == (self._asked == "get") or _object(body.get("payload")).get("status") == "error":
                self._reply.set_result(body)

    def _note_version(self, version: Any) -> None:
        if isinstance(version, int) and not isinstance(version, bool):
            self.version = max(self.version, version)

    async def _apply(self, desired: dict[str, Any]) -> None:
        assert self._on_desired is not None
        try:
            result = self._on_desired(desired)
            if inspect.isawaitable(result):
                await result
            await self._update({"desired": "null"})  # applied: the platform clears it
        except (QuecError, TimeoutError) as exc:
            log.warning("shadow: could not clear the desired state: %s", exc)
        except Exception:
            log.exception("shadow: the desired-state handler failed; the desired state stays")

    async def _request(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        async with self._lock:
            self._reply = asyncio.get_running_loop().create_future()
            self._asked = str(body.get("method"))
            try:
                await self.thing.publish_json(self.update_topic, body)
                async with asyncio.timeout(timeout):
                    reply = await self._reply
            finally:
                self._reply = None
        payload = _object(reply.get("payload"))
        if payload.get("status") != "success":
            content = _object(payload.get("content"))
            text = str(content.get("errorcode", ""))
            code = int(text) if text.isdigit() else 500
            raise ShadowError(f"shadow: {code} {content.get('errormessage', '')}".rstrip(), code)
        self._note_version(reply.get("version", payload.get("version")))
        return payload

    async def get(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """The shadow document: ``{"state": {"reported", "desired"}, "metadata": ...}``."""
        payload = await self._request({"method": "get"}, timeout)
        return {"state": payload.get("state") or {}, "metadata": payload.get("metadata") or {}}

    async def report(self, reported: dict[str, Any], *, timeout: float = 10.0) -> int:
        """Report the device's state; the shadow's new version."""
        return await self._update({"reported": reported}, timeout)

    async def _update(self, state: dict[str, Any], timeout: float = 10.0) -> int:
        for attempt in (1, 2):
            try:
                await self._request({"method": "update", "state": state, "version": self.version + 1}, timeout)
                return self.version
            except ShadowError as exc:
                if exc.code != VERSION_CONFLICT or attempt == 2:
                    raise
                await self._refresh_version(timeout)
        raise AssertionError("unreachable")

    async def _refresh_version(self, timeout: float) -> None:
        """After a 409: learn the shadow's version. A get of an empty shadow is 407 and says
        no version: an empty shadow loses nothing by being cleared (version -1 sets it to 0)."""
        try:
            await self._request({"method": "get"}, timeout)
        except ShadowError as exc:
            if exc.code != 407:
                raise
            await self._request({"method": "update", "state": {"desired": "null"}, "version": -1}, timeout)
            self.version = 0


def _object(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (a reply may lack any part)."""
    return value if isinstance(value, dict) else {}
