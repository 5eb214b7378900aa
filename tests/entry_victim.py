"""A process that publishes through the module and, when told, dies at the worst moment:
after the module's ``> `` prompt for a fixed-length publish and before a byte of its payload
(SIGKILL, no clean-up). Run by tests/test_entry_marker.py:

    python -m tests.entry_victim PORT HOST TOPIC TAG die|live marker|no-marker EDIT|none ERRORS
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback

from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.transport.serial import SerialTransport


class DyingTransport(SerialTransport):
    """Kills its process instead of writing `doomed` (the payload answering the prompt)."""

    def __init__(self, url: str, doomed: bytes | None) -> None:
        super().__init__(url)
        self.doomed = doomed

    async def write(self, data: bytes) -> None:
        if self.doomed is not None and data == self.doomed:
            os.kill(os.getpid(), signal.SIGKILL)
        await super().write(data)


async def _victim(port: str, host: str, topic: str, tag: str, die: bool, marker: bool, edit: int | None) -> None:
    doomed = f"doomed-{tag}".encode()
    modem = Modem(DyingTransport(port, doomed if die else None), entry_marker=None if marker else False)
    await modem.open()
    client = MqttClient(modem, 0, MqttConfig(keepalive=30, edit_timeout=edit))
    await client.open(host, 1883)
    await client.connect(f"victim-{tag}")
    await client.publish(topic, f"ok-{tag}".encode(), qos=1)
    if die:
        await client.publish(topic, doomed, qos=1)  # the process dies in here
    await client.disconnect()
    await client.close()
    await modem.close()


def victim(
    port: str,
    host: str,
    topic: str,
    tag: str,
    die: bool,
    marker: bool = True,
    edit: int | None = 1,
    errors: str | None = None,
) -> None:
    """The process's target: signal dispositions as a fresh process has them; a failure
    is written to `errors`/<tag>.txt and exits with status 3."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        asyncio.run(_victim(port, host, topic, tag, die, marker, edit))
    except BaseException:
        if errors is not None:
            with open(os.path.join(errors, f"{tag}.txt"), "w", encoding="utf-8") as out:
                out.write(traceback.format_exc())
        os._exit(3)


if __name__ == "__main__":
    port, host, topic, tag, fate, mark, edit, errors = sys.argv[1:9]
    victim(port, host, topic, tag, fate == "die", mark == "marker", None if edit == "none" else int(edit), errors)
