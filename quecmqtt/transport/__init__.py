"""Transports: serial (pyserial-asyncio-fast), ``socket://``, replay, and the recorder."""

from __future__ import annotations

from typing import Any

from quecmqtt.transport.base import Transport
from quecmqtt.transport.recorder import RecorderTransport
from quecmqtt.transport.replay import ReplayMismatch, ReplayTransport


def open_transport(url: str, **options: Any) -> Transport:
    """A transport for `url`: ``socket://HOST:PORT``, ``replay:PATH`` (a transcript), or a
    serial device path / pyserial URL (``/dev/ttyUSB2``, ``rfc2217://...``)."""
    if url.startswith("socket://"):
        from quecmqtt.transport.socket import SocketTransport

        return SocketTransport(url, **options)
    if url.startswith("replay:"):
        return ReplayTransport(url[len("replay:") :], **options)
    from quecmqtt.transport.serial import SerialTransport

    return SerialTransport(url, **options)


__all__ = ["RecorderTransport", "ReplayMismatch", "ReplayTransport", "Transport", "open_transport"]
