"""``POST /auth/register/device`` over HTTPS, as iot-auth.<region>.aliyuncs.com answers it
(reference/aliyun.md 3). Replies are HTTP 200 with the JSON code [R: whether errors keep
status 200 is not documented]."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import urllib.parse
from typing import Any

from quecmqtt.cloud.auth import HASHES, sign_ok
from quecmqtt.cloud.registry import Registry, RegistryRefusal
from quecmqtt.wire.http import HttpFramingError, read_request, response

log = logging.getLogger("quecmqtt.cloud")
REGISTER_PATH = "/auth/register/device"


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
    def __init__(self, registry: Registry, tls_context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0):
        self.registry = registry
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
                method, path, _, body = await read_request(reader)
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
