"""HTTP/1.1 framing for the stand-ins, by h11: the emulated module's client reads a server's
response (a length, chunks, or up to the close; a malformed one is refused, never half
read), and the cloud twin's registration server reads a request and writes its answer."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import h11

MAX_HEAD = 64 * 1024  # what a module's HTTP client or a small server would take in headers


class HttpFramingError(Exception):
    """The bytes are not an HTTP/1.1 message (a bad chunk size, a broken head, a cut body)."""


def parse_response(method: str, raw: bytes) -> tuple[int, bytes, bytes]:
    """(status, the head as received with its blank line, the body decoded from its framing)
    of a whole response read up to the connection's close."""
    head, sep, _ = raw.partition(b"\r\n\r\n")
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "stand-in")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")  # the server closed: a body without a length ends here
    status: int | None = None
    body = bytearray()
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # NEED_DATA after the close: the body was cut short
                raise HttpFramingError("the response ends before its body does")
    except h11.RemoteProtocolError as exc:
        raise HttpFramingError(str(exc)) from None
    if status is None or not sep:
        raise HttpFramingError("no response head")
    return status, head + sep, bytes(body)


async def read_request(reader: asyncio.StreamReader, limit: int = 1 << 20) -> tuple[str, str, dict[str, str], bytes]:
    """(method, target, headers with lower-case names, body) of one request."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    method = target = ""
    headers: dict[str, str] = {}
    body = bytearray()
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.SEND_BODY:
                    raise HttpFramingError("the request ends before its body does")
                if not data and conn.their_state is h11.IDLE:
                    raise HttpFramingError("no request")
            elif isinstance(event, h11.Request):
                method, target = event.method.decode("ascii"), event.target.decode("ascii", errors="replace")
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise HttpFramingError(f"a body over {limit} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return method, target, headers, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpFramingError("no request")
    except h11.RemoteProtocolError as exc:
        raise HttpFramingError(str(exc)) from None


def response(
    status: int, body: bytes, content_type: str = "application/json", *, length: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:  # fmt: skip
    """A whole response with its length, that closes the connection (written as it is: only
    reading needs h11's care). `length` with an empty `body`: the head alone, the body to
    follow."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
