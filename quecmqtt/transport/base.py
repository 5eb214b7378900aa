"""The transport interface: a byte pipe to the module that can be reopened.

Every transport turns the ways a port can die (pyserial's `SerialException`, a raw
`OSError` from `in_waiting`, EOF on a socket) into one `PortLost`, so the runtime has a
single thing to catch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Transport(ABC):
    """A bidirectional byte stream to a module. `open` may be called again after `close`
    (or after `PortLost`) when `reopenable` is true."""

    reopenable: bool = True
    #: a short human-readable name for logs ("/dev/ttyUSB2", "socket://127.0.0.1:7000")
    name: str = "transport"

    @abstractmethod
    async def open(self) -> None:
        """Open the port. Raises `PortLost` if it cannot be opened (yet)."""

    @abstractmethod
    async def read(self) -> bytes:
        """Wait for at least one byte. Raises `PortLost` when the port is gone."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Write all of `data`. Raises `PortLost` when the port is gone."""

    @abstractmethod
    async def close(self) -> None:
        """Close the port; safe to call twice and after `PortLost`."""

    async def drop(self) -> None:
        """The port was lost: release it, keeping what must survive a reopen (a recorder's
        transcript). Wakes a `read()` that would otherwise never return."""
        await self.close()

    async def reopen(self) -> None:
        """Close and open again after the port was lost (the runtime calls this with
        back-off). Raises `PortLost` while the port is not back."""
        await self.close()
        await self.open()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
