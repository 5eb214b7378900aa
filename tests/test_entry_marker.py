"""A process killed between a publish's ``> `` prompt and its payload: the module still waits
for the payload's bytes, and the next process must never supply them. Real processes (a
fresh interpreter each, as a service restarts), the emulator on a pty, Mosquitto."""

from __future__ import annotations

import asyncio
import queue
import signal
import sys
import time
from pathlib import Path

import pytest

from quecmqtt.emulator import EmulatorThread
from quecmqtt.runtime.marker import EntryKind, EntryMarker
from tests.broker import Broker, Cloud
from tests.children import default_signals
from tests.mqtt_rig import BROKER_HOST

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parent.parent
CHAINS = 8
KILLS_PER_CHAIN = 25  # 200 in all


async def _run(
    errors: Path, port: str, topic: str, tag: str, die: bool, *, marker: bool = True, edit: int | None = 1
) -> int:
    """One victim, a process of its own (started the way a service restarts: fresh)."""
    args = [port, BROKER_HOST, topic, tag, "die" if die else "live", "marker" if marker else "no-marker"]
    args += ["none" if edit is None else str(edit), str(errors)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.entry_victim", *args, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=default_signals,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"victim {tag} hung") from None
    report = errors / f"{tag}.txt"
    if report.exists():
        raise AssertionError(f"victim {tag} failed:\n{report.read_text()}")
    return code


def _collect(cloud: Cloud, until: float) -> list[bytes]:
    out: list[bytes] = []
    while time.monotonic() < until:
        try:
            out.append(cloud.messages.get(timeout=0.1).payload)
        except queue.Empty:
            if out:
                break
    return out


async def _chain(errors: Path, broker: Broker, chain: int) -> list[str]:
    emulator = await asyncio.to_thread(EmulatorThread, hosts=broker.hosts())
    published: list[str] = []
    try:
        for n in range(KILLS_PER_CHAIN):
            tag = f"{chain}-{n}"
            code = await _run(errors, emulator.path, f"entry/{chain}", tag, True)
            assert code == -signal.SIGKILL, f"victim {tag} ended with {code}, not killed at the prompt"
            published.append(f"ok-{tag}")
        # the last one published normally, after the module gave the last dead entry up
        tag = f"{chain}-end"
        code = await _run(errors, emulator.path, f"entry/{chain}", tag, False)
        assert code == 0, f"the last victim of chain {chain} failed ({code})"
        published.append(f"ok-{tag}")
    finally:
        await asyncio.to_thread(emulator.close)
    return published


async def test_200_kills_at_the_prompt_never_publish_foreign_bytes(
    broker: Broker, cloud: Cloud, tmp_path: Path
) -> None:
    cloud.subscribe("entry/#")
    chains = await asyncio.gather(*(_chain(tmp_path, broker, c) for c in range(CHAINS)))
    expected = {p.encode() for chain in chains for p in chain}
    arrived = await asyncio.to_thread(_collect, cloud, time.monotonic() + 10)
    foreign = [p for p in arrived if p not in expected]
    assert foreign == [], f"published by no one: {foreign[:5]}"
    assert expected <= set(arrived), f"{len(expected - set(arrived))} published messages never arrived"
    assert len(expected) == CHAINS * (KILLS_PER_CHAIN + 1)


async def test_without_the_marker_the_next_process_completes_the_dead_entry(
    broker: Broker, cloud: Cloud, tmp_path: Path
) -> None:
    errors = tmp_path
    """The control: what the marker prevents does happen without it (the module's entry
    time-out left at its default, the next process not told)."""
    cloud.subscribe("control/#")
    emulator = await asyncio.to_thread(EmulatorThread, hosts=broker.hosts())
    try:
        code = await _run(errors, emulator.path, "control/x", "c-0", True, marker=False, edit=None)
        assert code == -signal.SIGKILL
        code = await _run(errors, emulator.path, "control/x", "c-1", False, marker=False, edit=None)
        assert code == 0
    finally:
        await asyncio.to_thread(emulator.close)
    arrived = await asyncio.to_thread(_collect, cloud, time.monotonic() + 10)
    foreign = [p for p in arrived if not p.startswith(b"ok-")]
    assert foreign and foreign[0].startswith(b"AT\r"), arrived  # the next process's start-up, published


def test_the_marker_outlives_its_process_and_is_read_once(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyX")
    first = EntryMarker(port, directory=tmp_path)
    assert first.attach() is None
    first.set(EntryKind.COUNTED, 2.5, 12)
    second = EntryMarker(port, directory=tmp_path)  # what the next process sees
    entry = second.attach()
    assert entry is not None and entry.kind is EntryKind.COUNTED and entry.length == 12
    assert entry.timeout == pytest.approx(2.5) and entry.ends is not None
    assert EntryMarker(port, directory=tmp_path).attach() is None  # forgotten once read
    first.clear()
    second.detach()
    assert not second.path.exists()
