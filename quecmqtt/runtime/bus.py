"""The event bus: listeners, gates and bounded subscriber queues.

Everything the reader decodes that is not an answer to a command goes through here. Three
kinds of parties take part, in this order for each event:

* **gates** decide that an event is expected noise and hold it back (a layer holds back the
  link report that follows its own disconnect); a gate returns the reason, which is logged
  at debug level;
* **listeners** are called synchronously in the reader, for layers that track state; they
  must be quick and must not raise (a raising listener is logged and skipped);
* **subscriptions** are bounded drop-oldest queues for consumers that iterate.

`EventQueue` is the one bounded queue type: on overflow the oldest item goes and an
`Overflow(count)` is delivered in its place, so nothing is lost silently; closing it ends
iteration (or raises the error it was closed with) once what it holds has been taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from quecmqtt.at.events import Event, Urc
from quecmqtt.errors import LocalProtocolError, QueueClosed

log = logging.getLogger("quecmqtt.runtime")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Overflow(Event):
    """Delivered to a consumer in place of `dropped` items lost to a full queue."""

    dropped: int


class EventQueue(Generic[T]):
    """A bounded FIFO that drops its oldest item when full and says so with an `Overflow`.

    `get()` raises `QueueClosed` (or the error given to `close()`) once the queue is closed
    and empty; ``async for`` ends there instead (or raises that error)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._dropped = 0
        self.dropped_total = 0  # over the queue's life (for tests and diagnostics)
        self._wakeup = asyncio.Event()
        self._closed: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def offer(self, item: T) -> None:
        if self._closed is not None:
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self._dropped += 1
            self.dropped_total += 1
        self._items.append(item)
        self._wakeup.set()

    def get_nowait(self) -> T | Overflow | None:
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return Overflow(dropped)
        if self._items:
            return self._items.popleft()
        return None

    async def get(self, timeout: float | None = None) -> T | Overflow:
        async with asyncio.timeout(timeout):
            while True:
                item = self.get_nowait()
                if item is not None:
                    return item
                if self._closed is not None:
                    raise self._closed
                self._wakeup.clear()
                await self._wakeup.wait()

    async def wait(self) -> None:
        """Until something happens: an item, `poke()`, or `close()`."""
        if self._items or self._dropped or self._closed is not None:
            return
        self._wakeup.clear()
        await self._wakeup.wait()

    def poke(self) -> None:
        """Wake whoever waits (their owner has something else to tell them)."""
        self._wakeup.set()

    def close(self, error: BaseException | None = None) -> None:
        """No more items; consumers get what is left, then `error` (default `QueueClosed`,
        which ends ``async for`` quietly)."""
        if self._closed is None:
            self._closed = error if error is not None else QueueClosed("closed")
        self._wakeup.set()

    def __len__(self) -> int:
        return len(self._items) + (1 if self._dropped else 0)

    def __aiter__(self) -> AsyncIterator[T | Overflow]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T | Overflow]:
        while True:
            try:
                item = await self.get()
            except QueueClosed:
                return
            yield item


Selector = type[Event] | str


class Subscription(EventQueue[Event]):
    """A bounded queue of the events that match the selectors given to `subscribe`.
    Iterate with ``async for``; `close()` (or leaving ``with``) unsubscribes."""

    def __init__(self, bus: EventBus, selectors: Sequence[Selector], maxsize: int) -> None:
        super().__init__(maxsize)
        self._bus = bus
        self._classes = tuple(s for s in selectors if isinstance(s, type))
        self._prefixes = frozenset(s.upper() for s in selectors if isinstance(s, str))

    def wants(self, event: Event) -> bool:
        if isinstance(event, self._classes):
            return True
        return bool(self._prefixes) and isinstance(event, Urc) and event.prefix.upper() in self._prefixes

    def close(self, error: BaseException | None = None) -> None:
        super().close(error)
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Listener = Callable[[Event], None]
Gate = Callable[[Event], "str | None"]


class EventBus:
    """See the module docstring. One per runtime; used from the event loop only."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._listeners: list[Listener] = []
        self._gates: list[Gate] = []

    def subscribe(self, *selectors: Selector, maxsize: int = 256) -> Subscription:
        if not selectors:
            raise LocalProtocolError("subscribe() needs at least one event class or URC prefix")
        sub = Subscription(self, selectors, maxsize)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(sub)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: _discard(self._listeners, listener)

    def add_gate(self, gate: Gate) -> Callable[[], None]:
        self._gates.append(gate)
        return lambda: _discard(self._gates, gate)

    def held_back(self, event: Event) -> str | None:
        """The reason a gate gives for holding `event` back, or None."""
        for gate in self._gates:
            try:
                reason = gate(event)
            except Exception:
                log.exception("gate %r failed on %r", gate, event)
                continue
            if reason:
                return reason
        return None

    def publish(self, event: Event) -> bool:
        """Listeners first, then matching subscriptions. True if a subscription took it."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("listener %r failed on %r", listener, event)
        delivered = False
        for sub in self._subscriptions:
            if sub.wants(event):
                sub.offer(event)
                delivered = True
        return delivered

    def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()


def _discard(items: list[T], item: T) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)
