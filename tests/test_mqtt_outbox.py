"""The outbox on its own: order, bounds and their policies, attempts, dead letters, and the
SQLite one across a re-open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quecmqtt.errors import OutboxFull
from quecmqtt.mqtt.outbox import MemoryOutbox, Outbox, SqliteOutbox

Make = Callable[..., Outbox]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    if request.param == "memory":
        return MemoryOutbox
    return lambda **bounds: SqliteOutbox(tmp_path / "outbox.db", **bounds)


def test_order_ack_attempts_and_size(make: Make) -> None:
    box = make()
    entries = [box.put("t", b"%d" % i, 1, False) for i in range(5)]
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
    private = box.put("t", b"secret-reading-42", 1, False)
    assert "secret-reading-42" not in repr(private) and "17 bytes" in repr(private)  # payloads stay out of logs


def test_reject_policy_keeps_everything_accepted(make: Make) -> None:
    box = make(max_messages=2)
    box.put("t", b"a", 1, False)
    box.put("t", b"b", 1, False)
    with pytest.raises(OutboxFull, match="2 messages"):
        box.put("t", b"c", 1, False)
    assert [e.payload for e in box.pending()] == [b"a", b"b"]
    by_bytes = make(max_bytes=10)
    by_bytes.put("u", b"12345678", 1, False)
    with pytest.raises(OutboxFull):
        by_bytes.put("u", b"123", 1, False)


def test_drop_oldest_policy_moves_it_to_the_dead_letters(tmp_path: Path) -> None:
    box = MemoryOutbox(max_messages=2, policy="drop-oldest")
    for payload in (b"a", b"b", b"c"):
        box.put("t", payload, 1, False)
    assert [e.payload for e in box.pending()] == [b"b", b"c"]
    assert [(d.entry.payload, d.reason) for d in box.dead_letters()] == [
        (b"a", "outbox full: dropped for a newer message")
    ]
    with pytest.raises(ValueError, match="policy"):
        MemoryOutbox(policy="whatever")


def test_sqlite_outbox_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    box = SqliteOutbox(path)
    for i in range(3):
        box.put("t", bytes([i, 0, 13, 10]), i % 3, bool(i))
    box.dead(box.pending(1)[0], "test")
    box.close()
    again = SqliteOutbox(path)
    assert [(e.payload, e.qos, e.retain) for e in again.pending()] == [
        (bytes([1, 0, 13, 10]), 1, True),
        (bytes([2, 0, 13, 10]), 2, True),
    ]
    assert [d.reason for d in again.dead_letters()] == ["test"]
    later = again.put("t", b"new", 1, False)
    assert later.id > again.pending()[0].id  # ids keep growing: order holds across runs
