"""Aliyun IoT login credentials, as pure functions (reference/aliyun.md sections 1 to 3).

    direct_login("i2uqc2dloOl", "device001", Secret(ds), timestamp=1680937625134)
    registration_login(pk, dn, Secret(ps), auth_type="register", random="123", instance_id=...)
    connwl_login(whitelisted)                       # from a regnwl result
    https_registration(pk, dn, Secret(ps), random="003", sign_method="hmacsha1")

Passwords come back as `Secret` and are lower-case hex (the platform accepts either case).
Keys are the secrets' own bytes (a 32-character hex DeviceSecret is not hex-decoded); names
are signed as UTF-8.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from quecmqtt.errors import InvalidArgument
from quecmqtt.secret import Secret, reveal

SIGN_METHODS: dict[str, Any] = {"hmacmd5": hashlib.md5, "hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
AUTH_TYPES = ("register", "regnwl")
# characters that would break the clientId's own syntax: "cid|k=v,k=v|"
_CLIENT_ID_FORBIDDEN = "|,"


@dataclass(frozen=True)
class MqttCredentials:
    client_id: str
    username: str
    password: Secret

    def as_dict(self) -> dict[str, str]:
        """For output a user asked for (``quecmqtt aliyun sign``): the password revealed."""
        return {"client_id": self.client_id, "username": self.username, "password": self.password.reveal()}


@dataclass(frozen=True)
class HttpsRegistration:
    sign: str
    body: str  # application/x-www-form-urlencoded

    def as_dict(self) -> dict[str, str]:
        return {"sign": self.sign, "body": self.body}


def sign(method: str, key: str | bytes | Secret, content: str) -> str:
    """hex(HMAC_<method>(key, content)), lower case."""
    digest = SIGN_METHODS.get(method.lower())
    if digest is None:
        raise InvalidArgument(f"unknown sign method {method!r}; use one of {', '.join(SIGN_METHODS)}")
    return hmac.new(reveal(key), content.encode("utf-8"), digest).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def _check_name(what: str, value: str) -> None:
    if not value:
        raise InvalidArgument(f"{what} is empty")
    if any(c in value for c in '|&\r\n"') or any(ord(c) < 0x20 for c in value):
        raise InvalidArgument(f"{what} {value!r} holds a character Aliyun logins cannot carry")


def _check_client_id(client_id: str) -> None:
    if not client_id or any(c in client_id for c in _CLIENT_ID_FORBIDDEN):
        raise InvalidArgument(f"client id {client_id!r} must be non-empty and hold no '|' or ','")
    if len(client_id) > 64:
        raise InvalidArgument(f"client id {client_id!r} is longer than Aliyun's 64 characters")


def direct_login(
    product_key: str,
    device_name: str,
    device_secret: str | Secret,
    *,
    client_id: str | None = None,
    timestamp: int | str | None = None,
    sign_method: str = "hmacsha256",
    secure_mode: int = 2,
    auto_subscribe: bool = False,
) -> MqttCredentials:
    """One-device-one-secret login. `client_id` defaults to ``{pk}.{dn}``; `timestamp`
    (milliseconds) is signed and sent when given; `secure_mode` 2 is TLS, 3 plain TCP.
    `auto_subscribe` adds ``_ss=1``, as Aliyun's own SDKs do: the platform then subscribes
    the device to its system reply and downlink topics itself (not signed)."""
    _check_name("product key", product_key)
    _check_name("device name", device_name)
    cid = client_id if client_id is not None else f"{product_key}.{device_name}"
    _check_client_id(cid)
    if secure_mode not in (2, 3):
        raise InvalidArgument(f"secure mode {secure_mode} is not 2 (TLS) or 3 (TCP)")
    content = f"clientId{cid}deviceName{device_name}productKey{product_key}"
    extras = f"securemode={secure_mode},signmethod={sign_method.lower()}"
    if timestamp is not None:
        ts = str(timestamp)
        if not ts.isdigit():
            raise InvalidArgument(f"timestamp {ts!r} is not a number of milliseconds")
        content += f"timestamp{ts}"
        extras += f",timestamp={ts}"
    if auto_subscribe:
        extras += ",_ss=1"
    password = sign(sign_method, device_secret, content)
    return MqttCredentials(f"{cid}|{extras}|", f"{device_name}&{product_key}", Secret(password, "password"))


INSTANCE_ENDPOINT_SUFFIX = ".mqtt.iothub.aliyuncs.com"


def instance_id_from_endpoint(endpoint: str) -> str | None:
    """The instance id an endpoint names (``iot-06z00abc.mqtt.iothub.aliyuncs.com`` ->
    ``iot-06z00abc``), as Link SDK 4.x derives it (`_core_append_instance_id`); None for an
    old public instance's endpoint (``pk.iot-as-mqtt.cn-shanghai.aliyuncs.com``) or another host."""
    host = endpoint.strip().lower().rstrip(".")
    if host.endswith(INSTANCE_ENDPOINT_SUFFIX):
        instance = host[: -len(INSTANCE_ENDPOINT_SUFFIX)]
        if instance and "." not in instance:
            return instance
    return None


def registration_sign(
    product_key: str, device_name: str, product_secret: str | Secret, random: str, method: str
) -> str:
    """The dynamic-registration sign, shared by MQTT and HTTPS: deviceName, productKey,
    random, in that order; no client id, no timestamp."""
    return sign(method, product_secret, f"deviceName{device_name}productKey{product_key}random{random}")


def registration_login(
    product_key: str,
    device_name: str,
    product_secret: str | Secret,
    *,
    auth_type: str = "register",
    random: str,
    sign_method: str = "hmacsha256",
    instance_id: str | None = None,
    client_id: str | None = None,
    secure_mode: int | None = None,
) -> MqttCredentials:
    """One-product-one-secret registration over MQTT (TLS only). `auth_type` "register"
    (pre-registered device: the reply carries its DeviceSecret) or "regnwl" (registration
    free: a client id and a token). `secure_mode` follows the instance, as Aliyun's MQTT
    dynamic-registration document writes it: -2 with an `instance_id` (a new public or an
    Enterprise instance), 2 without (an old public instance), for both auth types. The
    platform also takes 2 on a new instance (the seed's 4.2.1 session; Link SDK 4.x and
    aliyun-iot-linkkit send 2 for both): give `secure_mode` to send what they send.
    `client_id` defaults to the device name."""
    _check_name("product key", product_key)
    _check_name("device name", device_name)
    if auth_type not in AUTH_TYPES:
        raise InvalidArgument(f"auth type {auth_type!r} is not one of {', '.join(AUTH_TYPES)}")
    if not random or any(c in random for c in _CLIENT_ID_FORBIDDEN + "="):
        raise InvalidArgument(f"random {random!r} must be non-empty and hold no '|', ',' or '='")
    cid = client_id if client_id is not None else device_name
    _check_client_id(cid)
    if secure_mode is not None and secure_mode not in (2, -2):
        raise InvalidArgument(f"a registration's secure mode is 2 or -2, not {secure_mode}")
    mode = secure_mode if secure_mode is not None else (-2 if instance_id else 2)
    extras = f"securemode={mode},authType={auth_type},random={random},signmethod={sign_method.lower()}"
    if instance_id:
        _check_client_id(instance_id)
        extras += f",instanceId={instance_id}"
    password = registration_sign(product_key, device_name, product_secret, random, sign_method)
    return MqttCredentials(f"{cid}|{extras}|", f"{device_name}&{product_key}", Secret(password, "password"))


def connwl_login(product_key: str, device_name: str, client_id: str, device_token: str | Secret) -> MqttCredentials:
    """Login with what ``regnwl`` returned: the server's client id, the token as password."""
    _check_name("product key", product_key)
    _check_name("device name", device_name)
    _check_client_id(client_id)
    token = device_token if isinstance(device_token, Secret) else Secret(device_token, "device_token")
    return MqttCredentials(f"{client_id}|securemode=-2,authType=connwl|", f"{device_name}&{product_key}", token)


def https_registration(
    product_key: str, device_name: str, product_secret: str | Secret, *, random: str, sign_method: str = "hmacsha256"
) -> HttpsRegistration:
    """The form body for ``POST https://iot-auth.<region>.aliyuncs.com/auth/register/device``
    (pre-registered devices only). Values are URL-encoded; the sign covers the raw ones."""
    _check_name("product key", product_key)
    _check_name("device name", device_name)
    if not random:
        raise InvalidArgument("random is empty")
    signature = registration_sign(product_key, device_name, product_secret, random, sign_method)
    fields = [
        ("productKey", product_key),
        ("deviceName", device_name),
        ("random", random),
        ("sign", signature),
        ("signMethod", sign_method.lower()),
    ]
    return HttpsRegistration(signature, urllib.parse.urlencode(fields, quote_via=urllib.parse.quote))
