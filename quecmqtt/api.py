"""The modem `quecmqtt.connect()` returns: the runtime's `Modem` with the layers above it
within reach (`modem.session(host)`). The runtime itself names no protocol above AT; this
class is where the package's front door meets them."""

from __future__ import annotations

from typing import Any

from quecmqtt.mqtt.opener import SessionOpener
from quecmqtt.runtime import Modem as RuntimeModem


class Modem(RuntimeModem):
    """A `quecmqtt.runtime.Modem` (open it with `async with`), plus:"""

    def session(self, host: str, port: int | None = None, **options: Any) -> SessionOpener:
        """`async with modem.session(host) as session:` an MQTT session on this modem; see
        `quecmqtt.mqtt.opener` (client id, TLS, port) and `quecmqtt.mqtt.session` (the rest)."""
        return SessionOpener(self, host, port, **options)
