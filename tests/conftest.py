from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.broker import Broker, Cloud, start_mosquitto, stop_mosquitto
from tests.peer import ScriptedPeer

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "fixtures" / "seed"


@pytest_asyncio.fixture
async def peer(tmp_path: Path) -> AsyncIterator[ScriptedPeer]:
    module = ScriptedPeer(tmp_path)
    module.plug()
    yield module
    module.close()


@pytest.fixture
def seed_dir() -> Path:
    return SEED


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    # not under pytest's tmp_path: its parents are mode 700 and Mosquitto, started as
    # root, drops to user mosquitto before it reads its certificate files
    directory = Path(tempfile.mkdtemp(prefix="quecmqtt-mosquitto-"))
    try:
        proc, info = start_mosquitto(directory)
        yield info
        stop_mosquitto(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cloud(broker: Broker) -> Iterator[Cloud]:
    side = Cloud(broker)
    yield side
    side.close()
