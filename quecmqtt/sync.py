"""A blocking facade for scripts: the asyncio runtime runs in a background thread.

from quecmqtt.sync import SyncModem
from quecmqtt.at import commands as C

with SyncModem("/dev/ttyUSB2") as modem:
    print(modem.execute(C.ATI()).lines)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from quecmqtt.at.events import Event
from quecmqtt.at.spec import Command
from quecmqtt.modem import Modem, Reply, Selector, Subscription
from quecmqtt.secret import Secret
from quecmqtt.transport import Transport, open_transport

T = TypeVar("T")


class SyncSubscription:
    def __init__(self, owner: SyncModem, subscription: Subscription) -> None:
        self._owner = owner
        self._subscription = subscription

    def get(self, timeout: float | None = None) -> Event:
        """The next event; `TimeoutError` after `timeout` seconds."""
        return self._owner._call(self._subscription.get(timeout))

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                yield self.get()
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._owner._loop.call_soon_threadsafe(self._subscription.close)

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncModem:
    """`Modem` with blocking methods. Takes a `Transport` or a port URL and the same
    options as `Modem`."""

    def __init__(self, transport: Transport | str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="quecmqtt-loop", daemon=True)
        self._thread.start()
        port = open_transport(transport) if isinstance(transport, str) else transport

        async def make() -> Modem:
            return Modem(port, **options)

        self.modem = self._call(make())

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def open(self) -> None:
        self._call(self.modem.open())

    def close(self) -> None:
        try:
            self._call(self.modem.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def execute(self, command: Command, data: bytes | Secret | None = None, *, timeout: float | None = None) -> Reply:
        return self._call(self.modem.execute(command, data, timeout=timeout))

    def subscribe(self, *selectors: Selector, maxsize: int = 256) -> SyncSubscription:
        async def make() -> Subscription:
            return self.modem.subscribe(*selectors, maxsize=maxsize)

        return SyncSubscription(self, self._call(make()))

    @property
    def generation(self) -> int:
        return self.modem.generation

    def __enter__(self) -> SyncModem:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
