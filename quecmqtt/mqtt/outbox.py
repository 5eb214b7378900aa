"""The session's outbox: messages accepted by `publish()` until the module confirms them.

Delivery contract (DESIGN section 5): a QoS >= 1 message accepted is delivered at least
once, surviving link loss, module reboot and (with `SqliteOutbox`) process restart;
after a reconnect it is resent in the original order. An entry that keeps failing (a topic
the server rejects) moves to the dead letters with its reason after `max_attempts`. The
outbox is bounded by count and bytes; when full, `policy` "reject" raises `OutboxFull`
(the default: nothing accepted is ever dropped) and "drop-oldest" moves the oldest entry to
the dead letters.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, replace

from quecmqtt.errors import OutboxFull


@dataclass(frozen=True)
class Entry:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    attempts: int = 0
    created: float = 0.0

    def __repr__(self) -> str:
        size = len(self.payload)
        return f"Entry(id={self.id}, topic={self.topic!r}, qos={self.qos}, {size} bytes, attempts={self.attempts})"


@dataclass(frozen=True)
class DeadLetter:
    entry: Entry
    reason: str


class Outbox(ABC):
    def __init__(
        self, *, max_messages: int = 10_000, max_bytes: int = 16 * 1024 * 1024, policy: str = "reject"
    ) -> None:
        if policy not in ("reject", "drop-oldest"):
            raise ValueError("policy must be 'reject' or 'drop-oldest'")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.policy = policy

    def put(self, topic: str, payload: bytes, qos: int, retain: bool) -> Entry:
        while len(self) >= self.max_messages or self.size + len(payload) > self.max_bytes:
            if self.policy == "reject" or len(self) == 0:
                raise OutboxFull(f"outbox full ({len(self)} messages, {self.size} bytes)")
            oldest = self.pending(1)[0]
            self.dead(oldest, "outbox full: dropped for a newer message")
        return self._insert(topic, payload, qos, retain)

    @abstractmethod
    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool) -> Entry: ...

    @abstractmethod
    def pending(self, limit: int | None = None) -> list[Entry]:
        """Entries in the order they were accepted."""

    @abstractmethod
    def ack(self, entry_id: int) -> None:
        """Delivered: forget it."""

    @abstractmethod
    def attempt(self, entry_id: int) -> Entry:
        """Count one more send attempt; the updated entry."""

    @abstractmethod
    def dead(self, entry: Entry, reason: str) -> None:
        """Move to the dead letters."""

    @abstractmethod
    def dead_letters(self) -> list[DeadLetter]: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def size(self) -> int:
        """Payload bytes pending."""

    def __contains__(self, entry_id: int) -> bool:
        return any(e.id == entry_id for e in self.pending())

    @abstractmethod
    def close(self) -> None:
        """Release resources; the outbox takes no more messages."""


class MemoryOutbox(Outbox):
    """Survives link loss and module reboots, not the process."""

    def __init__(self, **bounds: object) -> None:
        super().__init__(**bounds)  # type: ignore[arg-type]
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._dead: list[DeadLetter] = []
        self._next = 1
        self._bytes = 0

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool) -> Entry:
        entry = Entry(self._next, topic, payload, qos, retain, 0, time.time())
        self._next += 1
        self._entries[entry.id] = entry
        self._bytes += len(payload)
        return entry

    def pending(self, limit: int | None = None) -> list[Entry]:
        values = list(self._entries.values())
        return values if limit is None else values[:limit]

    def ack(self, entry_id: int) -> None:
        entry = self._entries.pop(entry_id, None)
        if entry is not None:
            self._bytes -= len(entry.payload)

    def attempt(self, entry_id: int) -> Entry:
        entry = replace(self._entries[entry_id], attempts=self._entries[entry_id].attempts + 1)
        self._entries[entry_id] = entry
        return entry

    def dead(self, entry: Entry, reason: str) -> None:
        self.ack(entry.id)
        self._dead.append(DeadLetter(entry, reason))

    def dead_letters(self) -> list[DeadLetter]:
        return list(self._dead)

    def close(self) -> None:
        self.max_messages = 0  # nothing more is accepted; what is pending stays readable

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._bytes


class SqliteOutbox(Outbox):
    """Survives the process too: every change is committed (synchronous=FULL, WAL)
    before `put()` returns, so a message accepted is on disk."""

    def __init__(self, path: str | os.PathLike[str], **bounds: object) -> None:
        super().__init__(**bounds)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._db = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, attempts INTEGER NOT NULL,"
            " created REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB, qos INTEGER,"
            " retain INTEGER, attempts INTEGER, created REAL, reason TEXT, at REAL)"
        )

    @staticmethod
    def _entry(row: tuple[object, ...]) -> Entry:
        id_, topic, payload, qos, retain, attempts, created = row
        return Entry(int(id_), str(topic), bytes(payload), int(qos), bool(retain), int(attempts), float(created))  # type: ignore[arg-type, call-overload]

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool) -> Entry:
        created = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, attempts, created) VALUES (?, ?, ?, ?, 0, ?)",
                (topic, payload, qos, int(retain), created),
            )
        return Entry(int(cursor.lastrowid or 0), topic, payload, qos, retain, 0, created)

    def pending(self, limit: int | None = None) -> list[Entry]:
        query = "SELECT id, topic, payload, qos, retain, attempts, created FROM outbox ORDER BY id"
        with self._lock:
            rows = self._db.execute(query + (f" LIMIT {int(limit)}" if limit is not None else "")).fetchall()
        return [self._entry(row) for row in rows]

    def ack(self, entry_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def attempt(self, entry_id: int) -> Entry:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (entry_id,))
            row = self._db.execute(
                "SELECT id, topic, payload, qos, retain, attempts, created FROM outbox WHERE id = ?", (entry_id,)
            ).fetchone()
        return self._entry(row)

    def dead(self, entry: Entry, reason: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO dead VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.topic,
                    entry.payload,
                    entry.qos,
                    int(entry.retain),
                    entry.attempts,
                    entry.created,
                    reason,
                    time.time(),
                ),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.id,))
            self._db.execute("COMMIT")

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, attempts, created, reason FROM dead ORDER BY id"
            ).fetchall()
        return [DeadLetter(self._entry(row[:7]), str(row[7])) for row in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @property
    def size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
