"""The module's HTTP(S) client: configuration, GET and POST with the URL and body sent by
length in the CONNECT phase, and the response read framed by length.

    http = Http(modem, HttpConfig(ssl_context=1))
    response = await http.post("https://iot-auth.cn-shanghai.aliyuncs.com/auth/register/device",
                               body, content_type=CONTENT_FORM)
    response.raise_for_status()

A failure the module reports (a 7xx code) raises `HttpError` with that code, whether it came
at once as ``+CME ERROR: 7xx`` or later in the result URC; the session is then released
with ``AT+QHTTPSTOP``. An HTTP status (404, 500) is not an error of the module: it is in
`HttpResponse.status`, and `raise_for_status()` turns it into one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from quecmqtt.at import commands as C
from quecmqtt.at.cme import cme_description
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError, HttpError, HttpStatusError, InvalidArgument, QuecError
from quecmqtt.probe import TestAnswers, first_range
from quecmqtt.runtime import Modem, Reply, StepHandle
from quecmqtt.secret import Secret

log = logging.getLogger("quecmqtt.services.http")

HEADER_MODE_MAX = 2048  # request-header mode's data: 1-2048 bytes on BG96 ([HTTP] 2.3), the lowest
CONTENT_FORM, CONTENT_TEXT, CONTENT_OCTETS, CONTENT_MULTIPART, CONTENT_JSON, CONTENT_JPEG = range(6)


@dataclass(frozen=True)
class HttpConfig:
    """What `AT+QHTTPCFG` sets. The module forgets it on reboot: it is applied again in
    every init script. `ssl_context` is the `AT+QSSLCFG` context for https:// URLs."""

    context_id: int = 1
    ssl_context: int | None = None
    content_type: int = CONTENT_FORM
    request_header: bool = False
    response_header: bool = False
    headers: tuple[tuple[str, str], ...] = ()  # AT+QHTTPCFG="reqheader/add" (EC200 family)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    length: int | None  # the module's content length, None when it gave none
    body: bytes

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise HttpStatusError(f"HTTP status {self.status}", self.status)

    def __repr__(self) -> str:  # bodies may hold secrets (a registration reply)
        return f"HttpResponse(status={self.status}, length={self.length}, body=<{len(self.body)} bytes>)"


def http_error(code: int, what: str) -> HttpError:
    text = cme_description(code)
    message = f"{what} failed: {code}" + (f" ({text})" if text else "")
    if code == 701 and " https://" in what:
        # modules report a failed TLS handshake or certificate check as an unknown error
        message += "; over HTTPS this is usually the TLS handshake or the server certificate check"
        message += " (is the right CA uploaded, the SSL context's seclevel set, the module's clock right?)"
    return HttpError(message, code)


class Http:
    """`async with Http(modem, config) as http:` removes its init step on exit. The
    configuration is checked when the object is made (a header with a quote raises
    `InvalidArgument` before anything is registered)."""

    def __init__(self, modem: Modem, config: HttpConfig | None = None) -> None:
        self.modem = modem
        self.config = config or HttpConfig()
        self._commands()  # checked now: a step that can never succeed is never added
        # the module forgets the configuration on reboot; one HTTP client per module, so one step
        self._step: StepHandle | None = modem.add_init_step(
            self._reapply, name="http: configuration", required=False, key="http"
        )

    async def __aenter__(self) -> Http:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the init step (the module keeps its configuration until it restarts)."""
        if self._step is not None:
            self._step.remove()
            self._step = None

    def _commands(self) -> list[Command]:
        cfg = self.config
        commands = [C.QHTTPCFG["contextid"](cfg.context_id)]
        if cfg.ssl_context is not None:
            commands.append(C.QHTTPCFG["sslctxid"](cfg.ssl_context))
        commands.append(C.QHTTPCFG["contenttype"](cfg.content_type))
        commands.append(C.QHTTPCFG["requestheader"](int(cfg.request_header)))
        commands.append(C.QHTTPCFG["responseheader"](int(cfg.response_header)))
        commands += [C.QHTTPCFG["reqheader/add"](name, value) for name, value in cfg.headers]
        return commands

    async def configure(self) -> None:
        keys = await TestAnswers.of(self.modem).keys(C.QHTTPCFG_TEST())
        if keys is not None:
            self._check_against(keys)
        for command in self._commands():
            await self.modem.execute(command)

    def _check_against(self, keys: dict[str, str]) -> None:
        """What the module's AT+QHTTPCFG=? allows (BG96: content types 0-3, no request
        header settings): refused here with the reason, not as a bare ERROR there."""
        types = first_range(keys.get("contenttype", ""))
        if types is not None and not types[0] <= self.config.content_type <= types[1]:
            raise InvalidArgument(
                f"content type {self.config.content_type} is not one this module has ({types[0]}-{types[1]})"
            )
        if self.config.headers and "reqheader/add" not in keys:
            raise InvalidArgument(
                "this module cannot add request headers (AT+QHTTPCFG=? lists no reqheader/add): "
                "send the whole request with request_header=True"
            )

    async def _reapply(self, modem: Modem) -> None:
        await self.configure()

    async def get(self, url: str, *, timeout: int = 60, on_body: Callable[[bytes], None] | None = None) -> HttpResponse:
        await self._set_url(url)
        return await self._finish("GET", url, lambda: self.modem.execute(C.QHTTPGET(timeout)), timeout, on_body)

    async def get_range(
        self, url: str, first: int, last: int, *, timeout: int = 60, on_body: Callable[[bytes], None] | None = None
    ) -> HttpResponse:
        """GET bytes `first`..`last` (inclusive) of `url` with a ``Range`` header: status 206
        and those bytes when the server honours it (200 and the whole body when it does not).

        The module's request-header mode carries the header (``AT+QHTTPCFG="requestheader",1``,
        then ``AT+QHTTPGET=<rsptime>,<length>,<input_time>`` and the request as the host writes
        it): every family's HTTP(S) manual has it, where ``reqheader/add`` and ``QHTTPGETEX``
        are the EC200 family's alone. The mode is set back as configured afterwards (and by the
        init script after a reboot)."""
        if not 0 <= first <= last:
            raise InvalidArgument(f"not a byte range: {first}-{last}")
        request = range_request(url, first, last)
        if len(request) > HEADER_MODE_MAX:
            raise InvalidArgument(
                f"the request is {len(request)} bytes; header mode takes at most {HEADER_MODE_MAX} (BG96): "
                "shorten the URL"
            )
        await self._set_url(url)
        await self.modem.execute(C.QHTTPCFG["requestheader"](1))
        try:
            command = C.QHTTPGET_HEADER(timeout, len(request), 60)
            return await self._finish("GET", url, lambda: self.modem.execute(command, request), timeout, on_body)
        finally:
            if not self.config.request_header:
                with contextlib.suppress(QuecError):  # a reboot forgot it anyway; the init step sets it
                    await self.modem.execute(C.QHTTPCFG["requestheader"](0))

    async def post(
        self,
        url: str,
        body: bytes | Secret,
        *,
        content_type: int | None = None,
        timeout: int = 60,
        on_body: Callable[[bytes], None] | None = None,
    ) -> HttpResponse:
        """POST `body` (pass a `Secret` to keep it out of logs and transcripts).
        `on_body(body)` sees the response body in the reader, as it arrives and before the
        recorder writes it: the place to hand a secret it carries to the redactor."""
        if content_type is not None and content_type != self.config.content_type:
            keys = await TestAnswers.of(self.modem).keys(C.QHTTPCFG_TEST())
            types = first_range(keys.get("contenttype", "")) if keys is not None else None
            if types is not None and not types[0] <= content_type <= types[1]:
                raise InvalidArgument(f"content type {content_type} is not one this module has ({types[0]}-{types[1]})")
            await self.modem.execute(C.QHTTPCFG["contenttype"](content_type))
        await self._set_url(url)
        command = C.QHTTPPOST(len(body), timeout, timeout)
        return await self._finish("POST", url, lambda: self.modem.execute(command, body), timeout, on_body)

    async def _set_url(self, url: str) -> None:
        raw = url.encode("utf-8")
        if not raw or any(b < 0x21 for b in raw):
            raise InvalidArgument(f"not a URL: {_strip_query(url)!r}")  # a query may carry a signature
        answer = await TestAnswers.of(self.modem).lines(C.QHTTPURL_TEST())
        limit = first_range(answer[0]) if answer else None
        if limit is not None and len(raw) > limit[1]:
            raise InvalidArgument(
                f"the URL is {len(raw)} bytes; this module takes at most {limit[1]} (AT+QHTTPURL=?): "
                f"shorten it, or move the query into a POST body"
            )
        try:
            await self.modem.execute(C.QHTTPURL(len(raw), 60), raw)
        except CommandError as exc:
            raise self._failed(exc, "setting the URL") from exc

    async def _finish(
        self,
        method: str,
        url: str,
        request: Callable[[], Awaitable[Reply]],
        timeout: int,
        on_body: Callable[[bytes], None] | None = None,
    ) -> HttpResponse:
        what = f"{method} {_strip_query(url)}"
        try:
            reply = await request()
        except CommandError as exc:
            await self._stop()
            raise self._failed(exc, what) from exc
        assert reply.result is not None
        fields = reply.result.fields
        err = fields[0] if fields else -1
        if err != 0:
            await self._stop()
            raise http_error(err if isinstance(err, int) else 701, what)
        status = fields[1] if len(fields) > 1 and isinstance(fields[1], int) else 0
        length = fields[2] if len(fields) > 2 and isinstance(fields[2], int) else None
        body = b""
        if length != 0:
            try:
                inspect = (lambda done: on_body(done.body or b"")) if on_body is not None else None
                read = await self.modem.execute(C.QHTTPREAD(timeout), inspect=inspect)
            except CommandError as exc:
                await self._stop()
                raise self._failed(exc, f"reading the response of {what}") from exc
            read_err = read.result.fields[0] if read.result is not None and read.result.fields else 0
            if read_err != 0:
                await self._stop()
                raise http_error(read_err if isinstance(read_err, int) else 701, f"reading the response of {what}")
            body = read.body or b""
        log.debug("%s -> %d, %d bytes", what, status, len(body))
        return HttpResponse(int(status), length, body)

    @staticmethod
    def _failed(exc: CommandError, what: str) -> HttpError:
        code = exc.cme if exc.cme is not None else 701
        return http_error(code, what)

    async def _stop(self) -> None:
        """Release the HTTP session after a failure (703/704 otherwise follow), where the
        module has AT+QHTTPSTOP (the BG96 HTTP(S) manual V1.0 has none)."""
        if not await TestAnswers.of(self.modem).has(C.QHTTPSTOP_TEST()):
            return
        with contextlib.suppress(CommandError):
            await self.modem.execute(C.QHTTPSTOP())


def range_request(url: str, first: int, last: int) -> bytes:
    """The GET request with a ``Range`` header that request-header mode sends for `url`."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https") or not rest:
        raise InvalidArgument(f"not an http(s) URL: {_strip_query(url)!r}")
    host, slash, target = rest.partition("/")
    default = ":443" if scheme == "https" else ":80"
    host = host.removesuffix(default)
    lines = (
        f"GET /{target if slash else ''} HTTP/1.1",
        f"Host: {host}",
        f"Range: bytes={first}-{last}",
        "User-Agent: QUECTEL_MODULE",
        "Accept: */*",
        "Connection: close",
    )
    text = "\r\n".join(lines) + "\r\n\r\n"
    if any(ord(c) < 0x21 for c in host + target) or not text.isascii():  # a space would end the request line
        raise InvalidArgument(f"the URL cannot go into a request line: {_strip_query(url)!r}")
    return text.encode("ascii")


def _strip_query(url: str) -> str:
    """The URL without its query, for messages: a query may hold a signature."""
    return url.split("?", 1)[0]
