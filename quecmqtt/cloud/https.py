"""The twin's HTTPS: ``POST /auth/register/device``, as iot-auth.<region>.aliyuncs.com answers
it (reference/aliyun.md 3; replies are HTTP 200 with the JSON code [R: whether errors keep
status 200 is not documented]), and ``GET`` of the OTA firmware its upgrade tasks link to, in
ranges (``Range: bytes=a-b`` -> 206, as OSS serves it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import urllib.parse
from typing import Any

from quecmqtt.cloud.auth import HASHES, sign_ok
from quecmqtt.cloud.ota import Firmware, FirmwareStore, Unsatisfiable, byte_range, link_refused
from quecmqtt.cloud.registry import Registry, RegistryRefusal
from quecmqtt.wire.http import HttpFramingError, read_request, response

log = logging.getLogger("quecmqtt.cloud")
REGISTER_PATH = "/auth/register/device"
PIECE = 1 << 16  # firmware is read and written in pieces: memory stays flat whatever the range


def register_device(form: dict[str, str], registry: Registry) -> dict[str, Any]:
    """The JSON reply for a registration form (pure; the registry is updated)."""
    pk, dn, random = form.get("productKey", ""), form.get("deviceName", ""), form.get("random", "")
    method, sign = form.get("signMethod", ""), form.get("sign", "")
    if not (pk and dn and random and method and sign):
        return {"code": 460, "message": "request parameter error"}
    if method.lower() not in HASHES:
        return {"code": 6292, "message": "sign method not supported"}
    try:
        product_secret = registry.product_secret(pk)
        if not sign_ok(method, product_secret, f"deviceName{dn}productKey{pk}random{random}", sign.encode()):
            return {"code": 6600, "message": "sign check error"}
        secret = registry.register(pk, dn)
    except RegistryRefusal as exc:
        return {"code": exc.code, "message": str(exc)}
    return {"code": 200, "data": {"deviceName": dn, "deviceSecret": secret, "productKey": pk}, "message": "success"}


class RegistrationServer:
    def __init__(
        self, registry: Registry, tls_context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0,
        firmware: FirmwareStore | None = None,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.firmware = firmware if firmware is not None else FirmwareStore()
        self.tls_context = tls_context
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.tls_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                method, path, headers, body = await read_request(reader)
            firmware = self.firmware.find(path) if method in ("GET", "HEAD") else None
            if firmware is not None and link_refused(path, firmware):
                writer.write(response(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml"))
                await writer.drain()
                return
            if firmware is not None:
                await self._send_firmware(writer, firmware, headers.get("range"), head_only=method == "HEAD")
                return
            if method != "POST" or path.split("?")[0] != REGISTER_PATH:
                status, reply = 404, {"code": 404, "message": "not found"}
            else:
                form = dict(urllib.parse.parse_qsl(body.decode("utf-8", errors="replace")))
                reply = register_device(form, self.registry)
                status = 200
                log.info(
                    "https: registration of %s/%s: %s", form.get("productKey"), form.get("deviceName"), reply["code"]
                )
            writer.write(response(status, json.dumps(reply, separators=(",", ":")).encode()))
            await writer.drain()
        except HttpFramingError as exc:  # not a request this server can read: answered and closed
            log.info("https: a request that is not HTTP/1.1: %s", exc)
            with contextlib.suppress(OSError, ssl.SSLError):
                writer.write(response(400, b'{"code":400,"message":"bad request"}'))
                await writer.drain()
        except (OSError, ssl.SSLError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send_firmware(
        self, writer: asyncio.StreamWriter, firmware: Firmware, range_header: str | None, *, head_only: bool
    ) -> None:
        try:
            wanted = byte_range(range_header, firmware.size)
        except Unsatisfiable:
            refusal = (("Content-Range", f"bytes */{firmware.size}"),)
            writer.write(response(416, b"", "application/octet-stream", headers=refusal))
            await writer.drain()
            return
        first, last = (0, firmware.size - 1) if wanted is None else wanted
        extra: tuple[tuple[str, str], ...] = (("Accept-Ranges", "bytes"),)
        status = 200
        if wanted is not None:
            status, extra = 206, (*extra, ("Content-Range", f"bytes {first}-{last}/{firmware.size}"))
        length = last - first + 1
        writer.write(response(status, b"", "application/octet-stream", length=length, headers=extra))
        if head_only:
            await writer.drain()
            return
        log.info("https: firmware %s %d-%d of %d", firmware.version, first, last, firmware.size)
        with firmware.path.open("rb") as file:  # opening is quick; the reads go to a thread
            position = first
            while position <= last:
                piece = await asyncio.to_thread(_read_at, file, position, min(PIECE, last - position + 1))
                if not piece:  # the file shrank under us: the client sees a short body
                    break
                writer.write(piece)
                self.firmware.served += len(piece)
                position += len(piece)
                async with asyncio.timeout(60):  # a client that stopped reading is dropped
                    await writer.drain()


def _read_at(file: Any, position: int, size: int) -> bytes:
    file.seek(position)
    data: bytes = file.read(size)
    return data
