"""At least once across a process restart: a process is killed (SIGKILL, no clean-up) with
messages in its SQLite outbox; a new process's session delivers them, in order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from quecmqtt.mqtt.outbox import SqliteOutbox
from quecmqtt.mqtt.session import Backoff, Session
from tests.broker import Broker, Cloud
from tests.children import default_signals
from tests.mqtt_rig import BROKER_HOST, rig
from tests.test_mqtt_session import cloud_received

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent


async def test_killed_process_outbox_is_delivered_by_the_next(broker: Broker, cloud: Cloud, tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.outbox_victim",
        str(db),
        "25",
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=default_signals,
    )
    try:
        assert victim.stdout is not None
        async with asyncio.timeout(20):
            line = await victim.stdout.readline()
        if line != b"ACCEPTED 25\n":
            pytest.fail(f"the victim did not accept its messages: {line!r}")
    finally:
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
    assert victim.returncode == -signal.SIGKILL

    cloud.subscribe("restart/stream")
    outbox = SqliteOutbox(db)
    assert len(outbox) == 25  # all of it survived the kill
    async with rig(broker) as r:
        session = Session(r.modem, BROKER_HOST, 1883, "survivor", outbox=outbox, backoff=Backoff(initial=0.1))
        async with session:
            await session.flush(timeout=20)
    expected = [b"%04d" % i for i in range(25)]
    arrived = await cloud_received(cloud, set(expected))
    assert arrived == expected
    assert len(SqliteOutbox(db)) == 0
