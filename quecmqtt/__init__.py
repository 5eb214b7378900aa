"""quecmqtt: drive Quectel cellular modules over their AT port, and use the module's own
MQTT and HTTP(S) clients to put devices on the Aliyun IoT Platform or any MQTT broker.

The parts (each its own subpackage): `quecmqtt.at` (the sans-I/O codec and command table),
`quecmqtt.runtime` (one modem: commands, results, recovery), `quecmqtt.mqtt` (client, session,
outbox), `quecmqtt.aliyun`, the emulator and the cloud twin. Importing this package imports
none of them: `quecmqtt --help` stays fast.
"""

from __future__ import annotations

# the one place the version is written (pyproject.toml reads it): importlib.metadata would
# cost more than the rest of `quecmqtt --help`
__version__ = "0.1.0"

__all__ = ["__version__"]
