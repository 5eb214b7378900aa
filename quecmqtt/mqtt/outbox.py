"""The session's outbox: messages accepted by `publish()` until the module confirms them.

Delivery contract (DESIGN section 5): a QoS >= 1 message accepted is delivered at least
once, surviving link loss, module reboot and (with `SqliteOutbox`) process restart;
after a reconnect it is resent in the original order. An entry that keeps failing (a topic
the server rejects) moves to the dead letters with its reason after `max_attempts`; one the
module can never take (over its size limit) moves there at once. The outbox is bounded by
count and bytes; when full, `policy` "reject" raises `OutboxFull` (the default: nothing
accepted is ever dropped) and "drop-oldest" moves the oldest entry to the dead letters. The
dead letters keep the latest `max_dead`.

Both outboxes keep what is pending in memory (bounded by `max_bytes`), so taking the next
entries, counting and sizing cost no I/O. `SqliteOutbox` journals every change to SQLite
from a writer thread, never from the event loop that reads the serial port:

* `put()` returns once the entry is committed with ``synchronous=FULL`` (on disk); puts that
  arrive together share one commit;
* attempts, acks and dead letters are written behind, batched, without waiting for the
  disk: after a crash an entry may be sent again (at least once allows it), never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Any

from quecmqtt.errors import OutboxFull, QuecError

log = logging.getLogger("quecmqtt.outbox")


class OutboxError(QuecError):
    """The outbox could not store a message (the disk, the database)."""


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
    at: float = field(default=0.0, compare=False)


class Outbox:
    """The in-memory outbox and the shared logic; subclasses add a journal."""

    def __init__(
        self,
        *,
        max_messages: int = 10_000,
        max_bytes: int = 16 * 1024 * 1024,
        policy: str = "reject",
        max_dead: int = 1000,
    ) -> None:
        if policy not in ("reject", "drop-oldest"):
            raise ValueError("policy must be 'reject' or 'drop-oldest'")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.policy = policy
        self.max_dead = max_dead
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._dead: deque[DeadLetter] = deque(maxlen=max_dead)
        self._bytes = 0
        self._next = 1
        self._reserved = 0  # puts on their way to the journal
        self._reserved_bytes = 0
        self._closed = False

    # -- accepting -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Load what an earlier run left (a durable outbox); nothing to do in memory."""

    async def put(self, topic: str, payload: bytes, qos: int, retain: bool) -> Entry:
        """Accept a message; returns once it is held (for a durable outbox: on disk). A
        caller cancelled meanwhile may still have its message accepted (at least once)."""
        await self.open()
        entry = self._admit(topic, bytes(payload), qos, retain)
        self._reserved += 1  # on its way: counts against the bounds from now on
        self._reserved_bytes += len(entry.payload)
        # shielded: once the journal has it, memory must have it too, whatever the caller does
        return await asyncio.shield(asyncio.ensure_future(self._store(entry)))

    async def _store(self, entry: Entry) -> Entry:
        try:
            await self._journal_put(entry)
            self._entries[entry.id] = entry
            self._bytes += len(entry.payload)
        finally:
            self._reserved -= 1
            self._reserved_bytes -= len(entry.payload)
        return entry

    def _admit(self, topic: str, payload: bytes, qos: int, retain: bool) -> Entry:
        if self._closed:
            raise OutboxFull("the outbox is closed")
        # dropping what is held can only make room up to the bounds minus puts on their way
        hopeless = self._reserved + 1 > self.max_messages or self._reserved_bytes + len(payload) > self.max_bytes
        if self.policy == "drop-oldest" and hopeless:
            raise OutboxFull(f"outbox full: a {len(payload)}-byte message does not fit however much is dropped")
        while (
            len(self) + self._reserved >= self.max_messages
            or self.size + self._reserved_bytes + len(payload) > self.max_bytes
        ):
            if self.policy == "reject" or not self._entries:
                raise OutboxFull(f"outbox full ({len(self)} messages, {self.size} bytes)")
            self.dead(next(iter(self._entries.values())), "outbox full: dropped for a newer message")
        entry = Entry(self._next, topic, payload, qos, retain, 0, time.time())
        self._next += 1
        return entry

    async def _journal_put(self, entry: Entry) -> None:
        """Make `entry` durable before `put` returns (nothing to do in memory)."""

    # -- the pump's side -----------------------------------------------------------------------

    def _ensure_open(self) -> None:
        """Load what an earlier run left before the first look (a durable outbox)."""

    def pending(self, limit: int | None = None) -> list[Entry]:
        """Entries in the order they were accepted (the first `limit`)."""
        self._ensure_open()
        values = self._entries.values()
        return list(values) if limit is None else list(itertools.islice(values, limit))

    def attempt(self, entry_id: int) -> Entry | None:
        """Count one more send attempt; the updated entry (None if it is gone meanwhile: a
        drop-oldest outbox may drop an entry the pump had in hand)."""
        current = self._entries.get(entry_id)
        if current is None:
            return None
        entry = replace(current, attempts=current.attempts + 1)
        self._entries[entry_id] = entry
        self._journal(("attempt", entry.id, entry.attempts))
        return entry

    def ack(self, entry_id: int) -> None:
        """Delivered: forget it."""
        entry = self._entries.pop(entry_id, None)
        if entry is not None:
            self._bytes -= len(entry.payload)
            self._journal(("ack", entry_id))

    def dead(self, entry: Entry, reason: str) -> None:
        """Move to the dead letters."""
        current = self._entries.pop(entry.id, None)
        if current is not None:
            self._bytes -= len(current.payload)
            entry = current
        letter = DeadLetter(entry, reason, time.time())
        self._dead.append(letter)
        self._journal(("dead", letter))

    def dead_letters(self) -> list[DeadLetter]:
        self._ensure_open()
        return list(self._dead)

    def _journal(self, op: tuple[Any, ...]) -> None:
        """Write a change behind (nothing to do in memory)."""

    def __len__(self) -> int:
        self._ensure_open()
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        self._ensure_open()
        return entry_id in self._entries

    @property
    def size(self) -> int:
        """Payload bytes pending."""
        self._ensure_open()
        return self._bytes

    async def flush(self) -> None:
        """Until every change so far is in the journal."""

    async def aclose(self) -> None:
        """Take no more messages; what is pending stays (in a durable outbox, for the next
        run)."""
        self._closed = True

    def close(self) -> None:
        self._closed = True


class MemoryOutbox(Outbox):
    """Survives link loss and module reboots, not the process."""


@dataclass(eq=False)
class _Op:
    kind: str  # put, attempt, ack, dead, flush, close
    args: tuple[Any, ...] = ()
    done: asyncio.Future[None] | threading.Event | None = None


class SqliteOutbox(Outbox):
    """Survives the process too (see the module docstring). The database file (and its
    -wal and -shm files, which SQLite creates with the same mode) is made 0600: messages
    may carry what only the device should see."""

    def __init__(self, path: str | os.PathLike[str], **bounds: Any) -> None:
        super().__init__(**bounds)
        self.path = os.fspath(path)
        self._db: sqlite3.Connection | None = None
        self._ops: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opening = threading.Lock()
        self._open_task: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self.commits = 0  # transactions written (for tests and benchmarks)

    # -- opening -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        if self._open_task is None:  # one load, however many wait for it (in their order)
            self._open_task = asyncio.ensure_future(asyncio.to_thread(self._open))
        await asyncio.shield(self._open_task)

    def _ensure_open(self) -> None:
        if self._thread is None:
            self._open()  # once, when looked at before `open()` (tests, scripts)

    def _open(self) -> None:
        with self._opening:
            if self._thread is not None:
                return
            # messages may hold anything a device sends: the file is the owner's alone. SQLite
            # makes its -wal and -shm files with the database's mode; a database an older
            # version left 0644 (and its side files) is tightened here
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                owned = os.fstat(fd).st_uid == os.geteuid()  # a shared database is its owner's to set
                if owned:
                    os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            for suffix in ("-wal", "-shm", "-journal") if owned else ():
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(f"{self.path}{suffix}", 0o600)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
                " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, attempts INTEGER NOT NULL,"
                " created REAL NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB, qos INTEGER,"
                " retain INTEGER, attempts INTEGER, created REAL, reason TEXT, at REAL)"
            )
            for row in db.execute("SELECT id, topic, payload, qos, retain, attempts, created FROM outbox ORDER BY id"):
                entry = _entry(row)
                self._entries[entry.id] = entry
                self._bytes += len(entry.payload)
            rows = db.execute(
                "SELECT id, topic, payload, qos, retain, attempts, created, reason, at FROM dead"
                " ORDER BY at DESC, id DESC LIMIT ?",
                (self.max_dead,),
            ).fetchall()
            for row in reversed(rows):
                self._dead.append(DeadLetter(_entry(row[:7]), str(row[7]), float(row[8] or 0.0)))
            seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            top = max([int(seq[0]) if seq else 0, *self._entries, *(d.entry.id for d in self._dead)], default=0)
            self._next = top + 1
            self._db = db
            self._thread = threading.Thread(target=self._writer, name=f"quecmqtt-outbox {self.path}", daemon=True)
            self._thread.start()

    # -- the loop's side -------------------------------------------------------------------------

    async def _journal_put(self, entry: Entry) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.put(_Op("put", (entry,), done))
        await done

    def _journal(self, op: tuple[Any, ...]) -> None:
        if self._thread is not None:
            self._ops.put(_Op(op[0], op[1:]))

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise OutboxError(f"the outbox {self.path} cannot be written: {self._failure}") from self._failure

    async def flush(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.put(_Op("flush", (), done))
        await asyncio.shield(done)
        self._raise_if_failed()

    async def aclose(self) -> None:
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.put(_Op("close", (), done))
        await asyncio.shield(done)
        await asyncio.to_thread(thread.join)

    def close(self) -> None:
        """`aclose` for code outside an event loop."""
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        done = threading.Event()
        self._ops.put(_Op("close", (), done))
        done.wait()
        thread.join()

    # -- the writer thread --------------------------------------------------------------------------

    def _writer(self) -> None:
        db = self._db
        assert db is not None
        synchronous = "FULL"
        while True:
            batch = [self._ops.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 4096:
                    batch.append(self._ops.get_nowait())
            durable = any(op.kind in ("put", "flush", "close") for op in batch)
            wanted = "FULL" if durable else "NORMAL"
            error: BaseException | None = None
            try:
                if wanted != synchronous:
                    db.execute(f"PRAGMA synchronous={wanted}")
                    synchronous = wanted
                db.execute("BEGIN")
                self._apply(db, batch)
                db.execute("COMMIT")
                self.commits += 1
                self._failure = None  # written again: whatever failed before is over
            except Exception as exc:  # the thread must live on: its callers wait on it
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                log.error("the outbox %s could not be written: %s", self.path, exc)
                error = exc
                self._failure = exc
                self._retry_behind(db, batch)
            for op in batch:
                _settle(op.done, error if op.kind == "put" else None)
            if any(op.kind == "close" for op in batch):
                db.close()
                return

    def _retry_behind(self, db: sqlite3.Connection, batch: list[_Op]) -> None:
        """After a failed batch, write its other changes (acks, attempts, dead letters) again
        without its puts: one bad put must not cost the journal the rest."""
        rest = [op for op in batch if op.kind not in ("put", "flush", "close")]
        if not rest:
            return
        try:
            db.execute("BEGIN")
            self._apply(db, rest)
            db.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            log.error("the outbox %s could not record acks and attempts: %s", self.path, exc)

    def _apply(self, db: sqlite3.Connection, batch: list[_Op]) -> None:
        attempts: dict[int, int] = {}
        for op in batch:
            if op.kind == "put":
                (entry,) = op.args
                db.execute(
                    "INSERT INTO outbox (id, topic, payload, qos, retain, attempts, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (entry.id, entry.topic, entry.payload, entry.qos, int(entry.retain), entry.attempts, entry.created),
                )
            elif op.kind == "attempt":
                attempts[op.args[0]] = op.args[1]  # only the latest count matters
            elif op.kind == "ack":
                attempts.pop(op.args[0], None)
                db.execute("DELETE FROM outbox WHERE id = ?", (op.args[0],))
            elif op.kind == "dead":
                (letter,) = op.args
                e = letter.entry
                attempts.pop(e.id, None)
                db.execute(
                    "INSERT OR REPLACE INTO dead VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.id, e.topic, e.payload, e.qos, int(e.retain), e.attempts, e.created, letter.reason, letter.at),
                )
                db.execute("DELETE FROM outbox WHERE id = ?", (e.id,))
                db.execute(
                    "DELETE FROM dead WHERE id NOT IN (SELECT id FROM dead ORDER BY at DESC, id DESC LIMIT ?)",
                    (self.max_dead,),
                )
        for entry_id, count in attempts.items():
            db.execute("UPDATE outbox SET attempts = ? WHERE id = ?", (count, entry_id))


def _entry(row: tuple[Any, ...]) -> Entry:
    id_, topic, payload, qos, retain, attempts, created = row
    return Entry(int(id_), str(topic), bytes(payload), int(qos), bool(retain), int(attempts), float(created))


def _settle(done: asyncio.Future[None] | threading.Event | None, error: BaseException | None) -> None:
    if done is None:
        return
    if isinstance(done, threading.Event):
        done.set()
        return
    loop = done.get_loop()
    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
        loop.call_soon_threadsafe(_resolve, done, error)


def _resolve(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(OutboxError(f"the message could not be stored: {error}"))
