"""Plain pyserial on the emulator's pty, for tests that must not use the driver."""

from __future__ import annotations

import time

import serial


class Port:
    def __init__(self, path: str) -> None:
        self.ser = serial.Serial(path, 115200, timeout=0.02)
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def read_until(self, token: bytes, timeout: float = 5.0) -> bytes:
        """Everything up to and including `token` (the rest stays buffered)."""
        deadline = time.monotonic() + timeout
        while token not in self.buffer:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {token!r} within {timeout} s; got {bytes(self.buffer)!r}")
            self.buffer += self.ser.read(4096)
        end = self.buffer.index(token) + len(token)
        out = bytes(self.buffer[:end])
        del self.buffer[:end]
        return out

    def read_bytes(self, count: int, timeout: float = 5.0) -> bytes:
        """Exactly `count` bytes (fewer only if `timeout` runs out)."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < count and time.monotonic() < deadline:
            self.buffer += self.ser.read(4096)
        out = bytes(self.buffer[:count])
        del self.buffer[:count]
        return out

    def command(self, line: str | bytes, until: bytes = b"\r\nOK\r\n", timeout: float = 5.0) -> bytes:
        data = line.encode() if isinstance(line, str) else line
        self.write(data + b"\r")
        return self.read_until(until, timeout)

    def two_phase(self, line: str, urc: str, timeout: float = 10.0) -> bytes:
        """Send a two-phase command; everything up to the end of its result URC line."""
        return self.command(line, until=urc.encode(), timeout=timeout) + self.read_until(b"\r\n", timeout)

    def quiet(self, seconds: float = 0.2) -> bytes:
        """Whatever arrives within `seconds` (plus anything buffered)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.buffer += self.ser.read(4096)
        out = bytes(self.buffer)
        self.buffer.clear()
        return out

    def close(self) -> None:
        self.ser.close()
