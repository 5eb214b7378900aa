"""The MQTT test rig: a real Mosquitto, the emulator on a pty mapping broker names to it, and
the real driver (Modem over SerialTransport) on the other end of the pty."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.transport.serial import SerialTransport
from tests.broker import Broker, Cloud

BROKER_HOST = "broker.test"


@dataclass
class Rig:
    broker: Broker
    emulator: EmulatorThread
    modem: Modem


@asynccontextmanager
async def rig(broker: Broker, record: Path | None = None, **options: Any) -> AsyncIterator[Rig]:
    options.setdefault("hosts", broker.hosts())
    emulator = await asyncio.to_thread(EmulatorThread, **options)
    modem = Modem(SerialTransport(emulator.path), record=record)
    try:
        await modem.open()
        yield Rig(broker, emulator, modem)
    finally:
        await modem.close()
        await asyncio.to_thread(emulator.close)


async def received(cloud: Cloud, count: int, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
    """`count` messages from the cloud side, or as many as came within `timeout`."""

    def take() -> list[mqtt.MQTTMessage]:
        out: list[mqtt.MQTTMessage] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            try:
                out.append(cloud.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    return await asyncio.to_thread(take)
