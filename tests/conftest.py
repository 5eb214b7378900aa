from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

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
