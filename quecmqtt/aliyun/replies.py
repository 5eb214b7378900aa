"""What registration returns, told apart by content (reference/aliyun.md 2.3, 3).

The MQTT push may come on ``/ext/register`` or ``/ext/regnwl`` for either kind: the keys
decide (``deviceSecret``, or ``clientId`` + ``deviceToken``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from quecmqtt.aliyun.errors import AliyunError, error_for_code
from quecmqtt.redact import secrets_in_json
from quecmqtt.secret import Secret

REGISTRATION_TOPICS = ("/ext/register", "/ext/regnwl")


@dataclass(frozen=True)
class Registered:
    """A pre-registered device's DeviceSecret (from `register` or HTTPS)."""

    product_key: str
    device_name: str
    device_secret: Secret

    def __post_init__(self) -> None:
        # a secret given as a plain str would show in repr(), logs and tracebacks: wrap it
        if not isinstance(self.device_secret, Secret):
            object.__setattr__(self, "device_secret", Secret(self.device_secret, "device_secret"))


@dataclass(frozen=True)
class Whitelisted:
    """A registration-free device's login for `connwl` (from `regnwl`)."""

    product_key: str
    device_name: str
    client_id: str
    device_token: Secret

    def __post_init__(self) -> None:
        # a secret given as a plain str would show in repr(), logs and tracebacks: wrap it
        if not isinstance(self.device_token, Secret):
            object.__setattr__(self, "device_token", Secret(self.device_token, "device_token"))


Registration = Registered | Whitelisted


def registration_secrets(reply: bytes) -> list[Secret]:
    """The secrets a registration reply carries (the MQTT push, or the HTTPS body), for the
    redactor to learn before the reply is logged or recorded. Silent for anything else."""
    return list(secrets_in_json(reply))


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def parse_registration(payload: bytes | str) -> Registration:
    """A registration result from its JSON (the MQTT push, or an HTTPS reply's `data`).
    Raises AliyunError for anything else (never showing the payload: it may hold a secret)."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise AliyunError("the registration reply is not JSON", -1) from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict) and "code" in data:
        return parse_https_reply(data)
    if not isinstance(data, dict):
        raise AliyunError("the registration reply is not a JSON object", -1)
    pk, dn = _text(data, "productKey"), _text(data, "deviceName")
    if _text(data, "deviceSecret"):
        return Registered(pk, dn, Secret(_text(data, "deviceSecret"), "device_secret"))
    if _text(data, "clientId") and _text(data, "deviceToken"):
        return Whitelisted(pk, dn, _text(data, "clientId"), Secret(_text(data, "deviceToken"), "device_token"))
    keys = ", ".join(sorted(str(k) for k in data))
    raise AliyunError(f"the registration reply has neither deviceSecret nor clientId+deviceToken (keys: {keys})", -1)


def parse_https_reply(reply: bytes | str | dict[str, Any], status: int = 200) -> Registered:
    """``{"code":200,"data":{...deviceSecret...},"message":"success"}``; both the HTTP
    status and the JSON code are checked. Errors become their typed AliyunError."""
    if isinstance(reply, dict):
        data: Any = reply
    else:
        try:
            data = json.loads(reply)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            raise AliyunError(f"HTTPS registration answered {status} with a body that is not JSON", status) from None
    if not isinstance(data, dict):
        raise AliyunError("the HTTPS registration reply is not a JSON object", status)
    code = data.get("code")
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    if isinstance(code, int) and code != 200:
        raise error_for_code(code, str(message))
    if status != 200:
        raise error_for_code(status, str(message))
    inner = data.get("data")
    result = parse_registration(json.dumps(inner)) if isinstance(inner, dict) else None
    if not isinstance(result, Registered):
        raise AliyunError("the HTTPS registration reply carries no deviceSecret", status)
    return result
