"""Device shadows as the platform keeps them (Aliyun "设备影子" data flow; Link SDK C 4.x
`components/shadow`; the Python SDK's shadow calls). Pure: messages in, messages out.

The device publishes to ``/shadow/update/<pk>/<dn>``:
``{"method":"update","state":{"reported":{...}},"version":N}`` (``"desired":"null"`` clears
the desired state), ``{"method":"get"}``, ``{"method":"delete","state":{"reported":...},
"version":N}``; the platform answers on ``/shadow/get/<pk>/<dn>`` with ``"method":"reply"``
(``payload.status`` success or error with ``content.errorcode/errormessage``) and pushes
``"method":"control"`` when the application sets the desired state. A version must be greater
than the shadow's (409 otherwise); -1 clears the shadow and sets its version to 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

MAX_REPORTED = 128
ERRORS = {
    400: "不正确的JSON格式",
    401: "影子JSON缺少method信息",
    402: "影子JSON缺少state字段",
    403: "影子JSON version不是数字",
    404: "影子JSON缺少reported字段",
    405: "影子JSON reported属性字段为空",
    406: "影子JSON method是无效的方法",
    407: "影子内容为空",
    408: "影子reported属性个数超过128个",
    409: "影子版本冲突",
}


@dataclass
class Shadow:
    reported: dict[str, Any] = field(default_factory=dict)
    desired: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, dict[str, int]] = field(default_factory=lambda: {"reported": {}, "desired": {}})
    version: int = 0

    def document(self) -> dict[str, Any]:
        state = {key: value for key, value in (("reported", self.reported), ("desired", self.desired)) if value}
        metadata = {
            part: {name: {"timestamp": stamp} for name, stamp in self.stamps[part].items()}
            for part in ("reported", "desired")
            if self.stamps[part]
        }
        return {"state": state, "metadata": metadata}


def now() -> int:
    return int(time.time())


def error_reply(code: int) -> dict[str, Any]:
    content = {"errorcode": str(code), "errormessage": ERRORS.get(code, "服务端处理异常")}
    return {"method": "reply", "payload": {"status": "error", "content": content}, "timestamp": now()}


def handle(shadow: Shadow, message: Any) -> dict[str, Any]:
    """Apply a device's message to its shadow; the reply to send on /shadow/get."""
    if not isinstance(message, dict):
        return error_reply(400)
    method = message.get("method")
    if method is None:
        return error_reply(401)
    if method == "get":
        if not shadow.reported and not shadow.desired:
            return error_reply(407)
        payload = {"status": "success", **shadow.document()}
        return {"method": "reply", "payload": payload, "version": shadow.version, "timestamp": now()}
    if method not in ("update", "delete"):
        return error_reply(406)
    state = message.get("state")
    if not isinstance(state, dict):
        return error_reply(402)
    version = message.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        return error_reply(403)
    if version == -1:  # clear: the shadow starts again at version 0
        shadow.reported.clear()
        shadow.desired.clear()
        shadow.stamps = {"reported": {}, "desired": {}}
        shadow.version = 0
        return _success(shadow)
    if version <= shadow.version:
        return error_reply(409)
    code = _update(shadow, state) if method == "update" else _delete(shadow, state)
    if code:
        return error_reply(code)
    shadow.version = version
    return _success(shadow)


def _success(shadow: Shadow) -> dict[str, Any]:
    return {"method": "reply", "payload": {"status": "success", "version": shadow.version}, "timestamp": now()}


def _update(shadow: Shadow, state: dict[str, Any]) -> int:
    reported, desired = state.get("reported"), state.get("desired")
    if reported is None and desired is None:
        return 404
    if desired == "null":
        shadow.desired.clear()
        shadow.stamps["desired"].clear()
    if reported is not None:
        if not isinstance(reported, dict) or not reported:
            return 405
        if len({**shadow.reported, **reported}) > MAX_REPORTED:
            return 408
        for name, value in reported.items():
            if value == "null":
                shadow.reported.pop(name, None)
                shadow.stamps["reported"].pop(name, None)
            else:
                shadow.reported[name] = value
                shadow.stamps["reported"][name] = now()
    return 0


def _delete(shadow: Shadow, state: dict[str, Any]) -> int:
    reported = state.get("reported")
    if reported == "null":
        shadow.reported.clear()
        shadow.stamps["reported"].clear()
        return 0
    if not isinstance(reported, dict) or not reported:
        return 404
    for name in reported:
        shadow.reported.pop(name, None)
        shadow.stamps["reported"].pop(name, None)
    return 0


def control(shadow: Shadow, desired: dict[str, Any]) -> dict[str, Any]:
    """Set the desired state (the UpdateDeviceShadow API): the push to the device."""
    shadow.desired.update(desired)
    for name in desired:
        shadow.stamps["desired"][name] = now()
    shadow.version += 1
    return {"method": "control", "payload": shadow.document(), "version": shadow.version, "timestamp": now()}
