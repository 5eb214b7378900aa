"""The topics the platform subscribes a device to by itself, and when.

Aliyun's "automatic topic subscription" document (help.aliyun.com, 自动订阅Topic说明) lists
the system topics the platform delivers to without a SUBSCRIBE from the device, for devices
of its C Link SDK 3.1, 3.2 and 4.x, and says a device connected with MQTT.fx is not
subscribed. Those SDKs mark their logins with `_ss=1` in the client id's parameters (Link SDK
4.x `core_auth.c`, `core_auth_mqtt_clientid`; iotkit-embedded 3.2 `dev_sign_mqtt.c` under
MQTT_AUTO_SUBSCRIBE), as does the Python SDK aliyun-iot-linkkit 1.2.13 (`linkkit.py`), which
sends no SUBSCRIBE for its reply topics: the twin subscribes a login that carries `_ss=1`,
and no other (a module that signs with aliauth, the seed's logins, MQTT.fx). The document
states no QoS for them: the twin uses 0, the lowest promise.
"""

from __future__ import annotations

# the document's list (thing model and sub-device management); ${pk}/${dn} filled in
TOPICS = (
    "/sys/{pk}/{dn}/thing/model/down_raw",
    "/sys/{pk}/{dn}/thing/model/up_raw_reply",
    "/sys/{pk}/{dn}/thing/event/+/post_reply",
    "/sys/{pk}/{dn}/thing/deviceinfo/update_reply",
    "/sys/{pk}/{dn}/thing/deviceinfo/delete_reply",
    "/sys/{pk}/{dn}/thing/dynamicTsl/get_reply",
    "/sys/{pk}/{dn}/rrpc/request/+",
    "/sys/{pk}/{dn}/thing/service/property/set",
    "/sys/{pk}/{dn}/thing/event/property/history/post_reply",
    "/sys/{pk}/{dn}/thing/service/+",
    "/sys/{pk}/{dn}/thing/topo/change",
    "/sys/{pk}/{dn}/thing/sub/register_reply",
    # Not in the part of the document we could read, yet Link SDK 4.x's OTA, shadow and
    # data-model components only map these to handlers and never SUBSCRIBE (aiot_ota_api.c,
    # aiot_shadow_api.c, aiot_dm_api.c: AIOT_MQTTOPT_APPEND_TOPIC_MAP), and the Python SDK does
    # not either: the platform delivers them to an `_ss=1` login.
    "/ota/device/upgrade/{pk}/{dn}",
    "/sys/{pk}/{dn}/thing/ota/firmware/get_reply",
    "/shadow/get/{pk}/{dn}",
    "/ext/rrpc/+/sys/{pk}/{dn}/thing/service/+",
)
QOS = 0


def wants_auto_subscription(params: dict[str, str]) -> bool:
    """The login asks for it: `_ss=1` among the client id's parameters."""
    return params.get("_ss") == "1"


def topics_for(product_key: str, device_name: str) -> list[str]:
    return [topic.format(pk=product_key, dn=device_name) for topic in TOPICS]
