"""Transports: serial (pyserial-asyncio-fast) and ``socket://``; a transcript replayed
(``replay:``) comes from `quecmqtt.transcripts`, as does the recorder that wraps any of them."""

from __future__ import annotations

from typing import Any

from quecmqtt.transport.base import Transport


def open_transport(url: str, **options: Any) -> Transport:
    """A transport for `url`: ``socket://HOST:PORT``, ``replay:PATH`` (a transcript), or a
    serial device path / pyserial URL (``/dev/ttyUSB2``, ``rfc2217://...``)."""
    if url.startswith("socket://"):
        from quecmqtt.transport.socket import SocketTransport

        return SocketTransport(url, **options)
    if url.startswith("replay:"):
        from quecmqtt.transcripts.replay import ReplayTransport  # the transcripts use transports

        return ReplayTransport(url[len("replay:") :], **options)
    from quecmqtt.transport.serial import SerialTransport

    return SerialTransport(url, **options)


__all__ = ["Transport", "open_transport"]
