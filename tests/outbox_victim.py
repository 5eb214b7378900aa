"""A process that accepts messages into a SQLite outbox and then is killed (by
test_mqtt_outbox_restart): its module cannot reach the broker, so nothing is delivered.

    python -m tests.outbox_victim OUTBOX_PATH COUNT
"""

from __future__ import annotations

import asyncio
import sys

from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.outbox import SqliteOutbox
from quecmqtt.mqtt.session import Backoff, Session
from quecmqtt.transport.serial import SerialTransport


async def main(path: str, count: int) -> None:
    emulator = EmulatorThread(hosts={})  # no broker reachable: every open fails
    modem = Modem(SerialTransport(emulator.path))
    await modem.open()
    session = Session(
        modem, "broker.test", 1883, "victim", outbox=SqliteOutbox(path), backoff=Backoff(initial=0.2, maximum=0.5)
    )
    await session.start(wait=False)
    for i in range(count):
        await session.publish("restart/stream", b"%04d" % i, qos=1)
    print(f"ACCEPTED {count}", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
