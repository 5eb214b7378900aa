"""The outbox on its own: order, bounds and their policies, attempts, dead letters, and the
SQLite one across a re-open, its batched journal and its file modes."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from quecmqtt.errors import OutboxFull
from quecmqtt.mqtt.outbox import MemoryOutbox, Outbox, OutboxError, SqliteOutbox

Make = Callable[..., Outbox]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    if request.param == "memory":
        return MemoryOutbox
    return lambda **bounds: SqliteOutbox(tmp_path / "outbox.db", **bounds)


async def test_order_ack_attempts_and_size(make: Make) -> None:
    box = make()
    entries = [await box.put("t", b"%d" % i, 1, False) for i in range(5)]
    assert [e.payload for e in box.pending()] == [b"0", b"1", b"2", b"3", b"4"]
    assert [e.id for e in box.pending(2)] == [entries[0].id, entries[1].id]
    assert box.size == 5 and len(box) == 5
    box.ack(entries[1].id)
    assert entries[1].id not in box and entries[0].id in box
    assert box.attempt(entries[0].id).attempts == 1
    assert box.attempt(entries[0].id).attempts == 2
    assert box.pending(1)[0].attempts == 2
    box.dead(box.pending(1)[0], "refused")
    assert [(d.entry.payload, d.entry.attempts, d.reason) for d in box.dead_letters()] == [(b"0", 2, "refused")]
    assert [e.payload for e in box.pending()] == [b"2", b"3", b"4"]
    private = await box.put("t", b"secret-reading-42", 1, False)
    assert "secret-reading-42" not in repr(private) and "17 bytes" in repr(private)  # payloads stay out of logs
    await box.aclose()


async def test_reject_policy_keeps_everything_accepted(make: Make) -> None:
    box = make(max_messages=2)
    await box.put("t", b"a", 1, False)
    await box.put("t", b"b", 1, False)
    with pytest.raises(OutboxFull, match="2 messages"):
        await box.put("t", b"c", 1, False)
    assert [e.payload for e in box.pending()] == [b"a", b"b"]
    await box.aclose()
    by_bytes = MemoryOutbox(max_bytes=10)
    await by_bytes.put("u", b"12345678", 1, False)
    with pytest.raises(OutboxFull):
        await by_bytes.put("u", b"123", 1, False)


async def test_concurrent_puts_count_against_the_bound(make: Make) -> None:
    box = make(max_messages=10)
    results = await asyncio.gather(*(box.put("t", b"%d" % i, 1, False) for i in range(15)), return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, OutboxFull)) == 5
    assert [e.payload for e in box.pending()] == [b"%d" % i for i in range(10)]  # in the order they were given
    await box.aclose()


async def test_drop_oldest_policy_moves_it_to_the_dead_letters() -> None:
    box = MemoryOutbox(max_messages=2, policy="drop-oldest")
    for payload in (b"a", b"b", b"c"):
        await box.put("t", payload, 1, False)
    assert [e.payload for e in box.pending()] == [b"b", b"c"]
    assert [(d.entry.payload, d.reason) for d in box.dead_letters()] == [
        (b"a", "outbox full: dropped for a newer message")
    ]
    with pytest.raises(ValueError, match="policy"):
        MemoryOutbox(policy="whatever")


async def test_dead_letters_keep_the_latest(make: Make) -> None:
    box = make(max_dead=3)
    for i in range(6):
        entry = await box.put("t", b"%d" % i, 1, False)
        box.dead(entry, f"reason {i}")
    assert [d.reason for d in box.dead_letters()] == ["reason 3", "reason 4", "reason 5"]
    await box.aclose()


async def test_sqlite_outbox_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    box = SqliteOutbox(path, max_dead=3)
    for i in range(3):
        await box.put("t", bytes([i, 0, 13, 10]), i % 3, bool(i))
    box.attempt(box.pending(1)[0].id)
    box.dead(box.pending(1)[0], "test")
    for i in range(5):
        box.dead(await box.put("old", b"x", 1, False), f"old {i}")
    await box.aclose()
    again = SqliteOutbox(path, max_dead=3)
    await again.open()
    assert [(e.payload, e.qos, e.retain) for e in again.pending()] == [
        (bytes([1, 0, 13, 10]), 1, True),
        (bytes([2, 0, 13, 10]), 2, True),
    ]
    assert [d.reason for d in again.dead_letters()] == ["old 2", "old 3", "old 4"]
    later = await again.put("t", b"new", 1, False)
    assert later.id > max(d.entry.id for d in again.dead_letters())  # ids keep growing: order holds across runs
    await again.aclose()


async def test_sqlite_journal_is_batched_and_written_off_the_loop(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "box.db")
    await box.open()
    writer = box._thread
    assert writer is not None and writer is not threading.current_thread()
    entries = await asyncio.gather(*(box.put("t", b"%d" % i, 1, False) for i in range(200)))
    puts = box.commits
    assert puts < 50, f"200 concurrent puts took {puts} commits"
    for entry in entries:
        box.attempt(entry.id)
        box.ack(entry.id)
    await box.flush()
    assert box.commits - puts < 20, "attempts and acks are written behind, in batches"
    await box.aclose()
    assert len(SqliteOutbox(tmp_path / "box.db")) == 0


async def test_sqlite_files_are_private(tmp_path: Path) -> None:
    os.umask(0o022)
    path = tmp_path / "box.db"
    box = SqliteOutbox(path)
    await box.put("t", b"reading", 1, False)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    await box.aclose()


async def test_a_cancelled_put_is_kept_in_memory_as_on_disk(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "box.db")
    await box.open()
    put = asyncio.ensure_future(box.put("t", b"maybe", 1, False))
    await asyncio.sleep(0)  # on its way to the writer
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    await box.flush()
    assert [e.payload for e in box.pending()] == [b"maybe"] and box.size == 5  # the journal has it: so do we
    await box.aclose()


async def test_drop_oldest_drops_nothing_for_a_message_that_can_never_fit() -> None:
    box = MemoryOutbox(max_bytes=10, policy="drop-oldest")
    await box.put("t", b"1234", 1, False)
    with pytest.raises(OutboxFull, match="does not fit"):
        await box.put("t", b"x" * 20, 1, False)
    assert [e.payload for e in box.pending()] == [b"1234"] and box.dead_letters() == []


async def test_one_failed_write_does_not_disable_the_journal(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "box.db")
    with pytest.raises(OutboxError):
        await box.put("bad\udcfftopic", b"x", 1, False)  # cannot be stored
    entry = await box.put("good", b"y", 1, False)  # the writer lives on, and takes the next
    box.ack(entry.id)
    await box.flush()
    await box.aclose()
    assert len(SqliteOutbox(tmp_path / "box.db")) == 0
