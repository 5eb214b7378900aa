"""Waiters for two-phase results (a result URC that comes after the ``OK`` of its command).

A waiter is registered before its command is written, so a result that overtakes ``OK`` is
not lost. Each has a deadline of its own, kept by a timer in the registry: a waiter nobody
awaits (a caller that went away, a publish whose handle was dropped) expires instead of
staying forever. What the command table declares drives the rest: the result's prefix and
key fields match it, and a URC in the result's `fails_on` whose first field equals the
command's scope value fails it at once (the link it waits on is gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from quecmqtt.at.events import Urc
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandTimeout

log = logging.getLogger("quecmqtt.runtime")


class Waiter:
    """The two-phase result of one command."""

    __slots__ = (
        "_handle",
        "_registry",
        "command",
        "deadline",
        "fails_on",
        "future",
        "key",
        "prefix",
        "scope",
        "timeout",
    )

    def __init__(self, registry: WaiterRegistry, command: Command, timeout: float) -> None:
        spec = command.spec.result
        assert spec is not None
        loop = asyncio.get_running_loop()
        self.command = command
        self.prefix = spec.prefix
        self.key = command.result_key() or ()
        self.scope = command.scope
        self.fails_on = spec.fails_on
        self.timeout = timeout
        self.deadline = loop.time() + timeout
        self.future: asyncio.Future[Urc] = loop.create_future()
        self._registry = registry
        self._handle: asyncio.TimerHandle | None = None

    def matches(self, urc: Urc) -> bool:
        return tuple(urc.fields[: len(self.key)]) == self.key

    async def wait(self) -> Urc:
        """The result; a cancelled wait drops the waiter (nobody else will take it)."""
        try:
            return await asyncio.shield(self.future)
        except asyncio.CancelledError:
            self._registry.drop(self)
            raise

    def add_done_callback(self, callback: Callable[[Waiter], Any]) -> None:
        """`callback(waiter)` once the result came, failed or expired (or the waiter was
        dropped): the module will not use what it was waiting for any more. Called at once
        if that is so already (a result can overtake the final result that returns the
        waiter to its caller)."""
        if self.future.done():
            callback(self)
        else:
            self.future.add_done_callback(lambda _: callback(self))

    @property
    def done(self) -> bool:
        return self.future.done()

    def _settle(self, result: Urc | None, error: BaseException | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
            self.future.exception()  # retrieved: the caller may be gone
        else:
            assert result is not None
            self.future.set_result(result)


class WaiterRegistry:
    """Every waiter in flight, by result prefix."""

    def __init__(self) -> None:
        self._by_prefix: dict[str, list[Waiter]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, command: Command, timeout: float) -> Waiter:
        waiter = Waiter(self, command, timeout)
        self._by_prefix.setdefault(waiter.prefix, []).append(waiter)
        self._count += 1
        waiter._handle = asyncio.get_running_loop().call_at(waiter.deadline, self._expire, waiter)
        return waiter

    def _remove(self, waiter: Waiter) -> bool:
        waiters = self._by_prefix.get(waiter.prefix)
        if not waiters or waiter not in waiters:
            return False
        waiters.remove(waiter)
        if not waiters:
            del self._by_prefix[waiter.prefix]
        self._count -= 1
        return True

    def drop(self, waiter: Waiter, error: BaseException | None = None) -> None:
        """Forget `waiter` (its caller is gone, or its command failed); its future is
        failed with `error` (default: cancelled) so done-callbacks run."""
        self._remove(waiter)
        if error is not None:
            waiter._settle(None, error)
        else:
            if waiter._handle is not None:
                waiter._handle.cancel()
                waiter._handle = None
            waiter.future.cancel()

    def _expire(self, waiter: Waiter) -> None:
        if self._remove(waiter):
            what = f"its {waiter.prefix} result"
            waiter._settle(None, CommandTimeout(waiter.command.redacted, waiter.timeout, what))

    def resolve(self, urc: Urc) -> bool:
        """Give a result URC to its waiter; True if one took it."""
        waiters = self._by_prefix.get(urc.prefix)
        if waiters:
            for waiter in waiters:
                if waiter.matches(urc):
                    self._remove(waiter)
                    waiter._settle(urc, None)
                    return True
        return False

    def fail_scope(self, prefix: str, scope: object, error: BaseException) -> int:
        """Fail every waiter whose result `prefix` fails and whose scope is `scope`."""
        failed = 0
        for waiters in list(self._by_prefix.values()):
            for waiter in list(waiters):
                if waiter.scope == scope and prefix in waiter.fails_on:
                    self._remove(waiter)
                    waiter._settle(None, error)
                    failed += 1
        return failed

    def fail_all(self, error: BaseException) -> None:
        waiters = [w for group in self._by_prefix.values() for w in group]
        self._by_prefix.clear()
        self._count = 0
        for waiter in waiters:
            waiter._settle(None, error)
