"""quecmqtt: drive Quectel cellular modules over their AT port, and use the module's own
MQTT and HTTP(S) clients to put devices on the Aliyun IoT Platform or any MQTT broker.

    import quecmqtt

    async with quecmqtt.connect("/dev/ttyUSB2") as modem:            # or "socket://host:port"
        async with modem.session("broker.example") as session:       # an MQTT session
            await session.publish("telemetry", b"21.5")
            async for message in session.messages:
                print(message.topic, message.payload)

Aliyun: `quecmqtt.aliyun.Device`. The parts, each its own subpackage: `quecmqtt.at` (the
sans-I/O codec and command table), `quecmqtt.runtime` (one modem: commands, results,
recovery), `quecmqtt.mqtt` (client, session, outbox), `quecmqtt.aliyun`, the emulator and the
cloud twin. Importing this package imports none of them (the names below are loaded when
first used): `quecmqtt --help` stays fast.
"""

from __future__ import annotations

import os

from quecmqtt.errors import (
    AttachError,
    CommandError,
    CommandTimeout,
    ConnectRefused,
    HttpError,
    HttpStatusError,
    InvalidArgument,
    LinkLost,
    ModuleRebooted,
    ModuleUnresponsive,
    MqttError,
    MqttOpenError,
    OutboxFull,
    PortLost,
    QuecError,
    SessionFailed,
    TlsError,
)

TYPE_CHECKING = False  # `typing` costs every start 4 ms and more: imported only by type checkers
if TYPE_CHECKING:
    from typing import Any

    from quecmqtt import aliyun
    from quecmqtt.api import Modem
    from quecmqtt.at.events import MqttMessage
    from quecmqtt.mqtt.session import Session
    from quecmqtt.secret import Secret, load_secret

# the one place the version is written (pyproject.toml reads it): importlib.metadata would
# cost more than the rest of `quecmqtt --help`
__version__ = "0.1.0"

__all__ = [
    "AttachError",
    "CommandError",
    "CommandTimeout",
    "ConnectRefused",
    "HttpError",
    "HttpStatusError",
    "InvalidArgument",
    "LinkLost",
    "Modem",
    "ModuleRebooted",
    "ModuleUnresponsive",
    "MqttError",
    "MqttMessage",
    "MqttOpenError",
    "OutboxFull",
    "PortLost",
    "QuecError",
    "Secret",
    "Session",
    "SessionFailed",
    "TlsError",
    "__version__",
    "aliyun",
    "connect",
    "load_secret",
]

_LAZY = {
    "Modem": "quecmqtt.api",
    "Session": "quecmqtt.mqtt.session",
    "MqttMessage": "quecmqtt.at.events",
    "Secret": "quecmqtt.secret",
    "load_secret": "quecmqtt.secret",
}


def connect(
    port: str | os.PathLike[str],
    *,
    baudrate: int = 115200,
    record: str | os.PathLike[str] | None = None,
    **modem_options: Any,
) -> Modem:
    """A modem on `port`: a serial device (``/dev/ttyUSB2``, ``/dev/serial/by-id/...``,
    ``COM3``), ``socket://HOST:PORT``, ``rfc2217://HOST:PORT`` or ``replay:TRANSCRIPT``.
    The port is opened by ``async with`` (or ``await modem.open()``); a `replay:` transcript
    is read, and the `record` file (a redacted transcript, mode 0600) created, here. Other
    options go to `quecmqtt.runtime.Modem`."""
    from quecmqtt.api import Modem
    from quecmqtt.transport import open_transport

    url = os.fspath(port)
    if not url:
        raise InvalidArgument("give the module's AT port, e.g. /dev/ttyUSB2 or socket://127.0.0.1:7001")
    if baudrate < 1:
        raise InvalidArgument(f"a baud rate is 1 or more, not {baudrate}")
    options: dict[str, Any] = {} if url.startswith(("socket://", "replay:")) else {"baudrate": baudrate}
    return Modem(open_transport(url, **options), record=record, **modem_options)


def __getattr__(name: str) -> Any:
    import importlib

    if name == "aliyun":  # `import quecmqtt` then `quecmqtt.aliyun.Device(...)`
        return importlib.import_module("quecmqtt.aliyun")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'quecmqtt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value
