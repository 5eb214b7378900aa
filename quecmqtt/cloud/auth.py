"""What the cloud twin decides about a CONNECT, as a pure function of the packet, the
registry and the transport (no I/O): refuse with a CONNACK code, answer a registration with a
push, or forward the session to the broker under a client id of ours.

Aliyun's rules (reference/aliyun.md 1.2, 1.4, 2): a direct login signs
``clientId..deviceName..productKey..[timestamp..]`` with the DeviceSecret; registration signs
``deviceName..productKey..random..`` with the ProductSecret and is TLS only (CONNACK 2 over
TCP); ``connwl`` logs in with the token `regnwl` issued. Hex is compared case-blind.

Modelled on guesses [R]: a `register` for an already active device, a sixth `regnwl`, and a
product without dynamic registration are refused with CONNACK 4 (the platform's MQTT
answer is not documented; HTTPS says 6289 / 6288); a keep-alive outside 30-1200 s is
refused with CONNACK 2.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from quecmqtt.cloud.registry import Registry, RegistryRefusal
from quecmqtt.wire.mqtt import Connect

HASHES = {"hmacmd5": hashlib.md5, "hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
IDENTIFIER_REJECTED, SERVER_UNAVAILABLE, BAD_CREDENTIALS = 2, 3, 4


@dataclass(frozen=True)
class Refuse:
    code: int
    reason: str


@dataclass(frozen=True)
class Push:
    """Accept, publish `payload` on `topic`, then close (a registration)."""

    topic: str
    payload: bytes
    what: str


@dataclass(frozen=True)
class Forward:
    """Accept: the broker gets the session under `client_id`."""

    client_id: str
    product_key: str
    device_name: str


Decision = Refuse | Push | Forward


def split_client_id(client_id: str) -> tuple[str, dict[str, str]] | None:
    """``cid|k=v,k=v|`` -> (cid, {k: v}); None when it has no parameter part."""
    if client_id.count("|") != 2 or not client_id.endswith("|"):
        return None
    cid, params, _ = client_id.split("|")
    out: dict[str, str] = {}
    for item in filter(None, params.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            return None
        out[key] = value
    return cid, out


def sign_ok(method: str, key: str, content: str, password: bytes | None) -> bool:
    digest = HASHES.get(method.lower())
    if digest is None or password is None:
        return False
    expected = hmac.new(key.encode(), content.encode(), digest).hexdigest()
    # as bytes: a password with any bytes in it (not hex, not ASCII) is simply wrong, never a
    # TypeError from compare_digest on non-ASCII text
    return hmac.compare_digest(expected.encode(), password.lower())


def decide(connect: Connect, registry: Registry, *, tls: bool) -> Decision:
    parsed = split_client_id(connect.client_id)
    if parsed is None:
        return Refuse(IDENTIFIER_REJECTED, "clientId is not 'cid|params|'")
    cid, params = parsed
    dn, amp, pk = (connect.username or "").partition("&")
    if not amp or not dn or not pk:
        return Refuse(BAD_CREDENTIALS, "username is not 'deviceName&productKey'")
    auth_type = params.get("authType")
    if auth_type in ("register", "regnwl"):
        return _registration(auth_type, params, pk, dn, connect.password, registry, tls)
    if not 30 <= connect.keepalive <= 1200:
        return Refuse(IDENTIFIER_REJECTED, f"keepalive {connect.keepalive} s is outside 30-1200 [R]")
    if auth_type == "connwl":
        owner = registry.token_owner(cid, connect.password or b"")
        if owner != (pk, dn):
            return Refuse(BAD_CREDENTIALS, "unknown client id or token for connwl")
        registry.activate(pk, dn)
        return Forward(f"{pk}.{dn}.{cid}", pk, dn)
    if auth_type is not None:
        return Refuse(IDENTIFIER_REJECTED, f"unknown authType {auth_type!r}")
    device = registry.device(pk, dn)
    if device is None or device.device_secret is None:
        return Refuse(BAD_CREDENTIALS, "no such device (or it has no secret yet)")
    content = f"clientId{cid}deviceName{dn}productKey{pk}"
    if "timestamp" in params:
        content += f"timestamp{params['timestamp']}"
    if not sign_ok(params.get("signmethod", "hmacmd5"), device.device_secret, content, connect.password):
        return Refuse(BAD_CREDENTIALS, "signature mismatch")
    registry.activate(pk, dn)
    return Forward(f"{pk}.{dn}", pk, dn)


def _registration(
    auth_type: str, params: dict[str, str], pk: str, dn: str, password: bytes | None, registry: Registry, tls: bool
) -> Decision:
    if not tls:
        return Refuse(IDENTIFIER_REJECTED, "dynamic registration over plain TCP")
    random = params.get("random")
    if not random or "signmethod" not in params:
        return Refuse(IDENTIFIER_REJECTED, "registration without random or signmethod")
    try:
        product_secret = registry.product_secret(pk)
    except RegistryRefusal as exc:
        return Refuse(BAD_CREDENTIALS, f"{exc} ({exc.code}) [R]")
    if not sign_ok(params["signmethod"], product_secret, f"deviceName{dn}productKey{pk}random{random}", password):
        return Refuse(BAD_CREDENTIALS, "registration signature mismatch")
    try:
        if auth_type == "register":
            secret = registry.register(pk, dn)
            body = {"deviceSecret": secret, "productKey": pk, "deviceName": dn}
            return Push("/ext/register", json.dumps(body, separators=(",", ":")).encode(), "register")
        client_id, token = registry.register_free(pk, dn)
    except RegistryRefusal as exc:
        return Refuse(BAD_CREDENTIALS, f"{exc} ({exc.code}) [R]")
    body = {"clientId": client_id, "productKey": pk, "deviceName": dn, "deviceToken": token}
    return Push("/ext/regnwl", json.dumps(body, separators=(",", ":")).encode(), "regnwl")
