"""The Aliyun IoT Platform: credentials, dynamic registration, the Alink thing model, and
`Device`, which puts one device online over a modem (see `quecmqtt.aliyun.facade`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quecmqtt.aliyun.facade import Device
    from quecmqtt.aliyun.replies import Registered, Whitelisted

__all__ = ["Device", "Registered", "Whitelisted"]

_LAZY = {
    "Device": "quecmqtt.aliyun.facade",
    "Registered": "quecmqtt.aliyun.replies",
    "Whitelisted": "quecmqtt.aliyun.replies",
}


def __getattr__(name: str) -> Any:
    # loaded when first used: `quecmqtt aliyun sign` imports this package and stays light
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'quecmqtt.aliyun' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
