"""Which topics a device may publish to and subscribe to: its own, as the platform isolates
devices ("topic类实行设备维度隔离, 防止topic被跨设备越权", Aliyun's topic document). Pure.

Allowed (Aliyun's topic lists; the OTA, shadow, NTP and RRPC documents):
- both ways: its system topics ``/sys/<pk>/<dn>/...`` and its custom topics
  ``/<pk>/<dn>/...`` (``user/...``; the twin does not model topic classes, so both ways),
  RRPC topics ``/ext/rrpc/<id>/sys/<pk>/<dn>/...`` and ``/ext/rrpc/<id>/<pk>/<dn>/...``,
  a gateway's ``/ext/session/<pk>/<dn>/...`` and ``/ext/error/<pk>/<dn>`` (iotkit-embedded);
- publish: ``/ota/device/{inform,progress,request}/<pk>/<dn>``, ``/shadow/update/<pk>/<dn>``,
  ``/ext/ntp/<pk>/<dn>/request``;
- subscribe: ``/ota/device/upgrade/<pk>/<dn>``, ``/shadow/get/<pk>/<dn>``,
  ``/ext/ntp/<pk>/<dn>/response``, the product's broadcasts ``/broadcast/<pk>/...``.

A wildcard may stand only below those prefixes, as a whole level (`#` last: MQTT 4.7.1):
``#``, ``/sys/<pk>/+/...`` and another device's topics are refused. What the platform does
then: a SUBSCRIBE is answered 0x80 for that filter and the connection stays (a device log in
aliyun/iotkit-embedded issue 127: "MQTT SUBSCRIBE failed, ack code is 0x80", while it
published on); for a PUBLISH no source says [R]: the twin acknowledges it and drops it, the
connection kept (the same report's publishes to that topic went on "normally"). A will is a
later publish: one on a topic not the device's is dropped from the CONNECT.
"""

from __future__ import annotations


def valid_filter(topic_filter: str) -> bool:
    """MQTT 3.1.1 4.7.1: `+` and `#` only as a whole level, `#` only as the last."""
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if ("+" in level or "#" in level) and level not in ("+", "#"):
            return False
        if level == "#" and index != len(levels) - 1:
            return False
    return bool(topic_filter) and "\x00" not in topic_filter


def _rrpc_rest(topic: str) -> str | None:
    """What follows ``/ext/rrpc/<id>/`` (with the leading slash), or None. The id level is
    one message id, or `+` in a filter: never `#`, which would take every device's calls."""
    if not topic.startswith("/ext/rrpc/"):
        return None
    message_id, _, rest = topic[len("/ext/rrpc/") :].partition("/")
    if not rest or message_id == "#":
        return None
    return "/" + rest


def _own(pk: str, dn: str, topic: str) -> bool:
    """Under the device's own system, custom, gateway-session, error or RRPC prefix."""
    prefixes = (f"/sys/{pk}/{dn}/", f"/{pk}/{dn}/", f"/ext/session/{pk}/{dn}/")
    rest = _rrpc_rest(topic)
    return (
        topic.startswith(prefixes)
        or topic == f"/ext/error/{pk}/{dn}"
        or (rest is not None and rest.startswith(prefixes))
    )


def may_publish(pk: str, dn: str, topic: str) -> bool:
    if "+" in topic or "#" in topic or "\x00" in topic:  # a topic name has no wildcard
        return False
    if _own(pk, dn, topic):
        return True
    return topic in (
        f"/ota/device/inform/{pk}/{dn}",
        f"/ota/device/progress/{pk}/{dn}",
        f"/ota/device/request/{pk}/{dn}",
        f"/shadow/update/{pk}/{dn}",
        f"/ext/ntp/{pk}/{dn}/request",
    )


def may_subscribe(pk: str, dn: str, topic_filter: str) -> bool:
    if not valid_filter(topic_filter):
        return False
    if _own(pk, dn, topic_filter) or topic_filter.startswith(f"/broadcast/{pk}/"):
        return True
    return topic_filter in (
        f"/ota/device/upgrade/{pk}/{dn}",
        f"/shadow/get/{pk}/{dn}",
        f"/ext/ntp/{pk}/{dn}/response",
    )
