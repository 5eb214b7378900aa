"""OTA on the twin: the firmware offered to each product, the upgrade task the platform
pushes (``/ota/device/upgrade/<pk>/<dn>``, reference/aliyun.md 4: ``{"code": "1000", "data":
{"size", "version", "url", "md5", "sign", "signMethod"}, "id", "message"}``), and the file
served in ranges from the twin's HTTPS, as the platform's OSS link serves it.

The platform's links point at OSS (``iotx-ota.oss-<region>.aliyuncs.com``); the twin's point at
``iotx-ota-<region>.aliyuncs.com``, a name its certificate covers (``*.aliyuncs.com`` names one
label). The link's query is OSS's (``Expires``, ``OSSAccessKeyId``, a base64 ``Signature``,
percent-encoded); a link whose ``Expires`` has passed is refused with 403, as OSS does.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

OTA_HOST = "iotx-ota-{region}.aliyuncs.com"
LINK_LIFETIME = 24 * 3600  # how long the link is good for, in seconds [R: the console shows 24 h]
SIGN_METHODS = ("Md5", "SHA256")  # as the task's signMethod spells them
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class Firmware:
    product_key: str
    version: str
    path: Path
    size: int
    md5: str
    sha256: str
    sign_method: str
    token: str  # in the path: the link names this file and no other
    signature: str  # the query's, as OSS signs: base64, so `/`, `+` and `=` percent-encoded in the link

    @property
    def url_path(self) -> str:
        return f"/ota/{quote(self.product_key, safe='')}/{self.token}/{quote(self.path.name, safe='')}"

    def task(self, region: str, port: int | None = None, message_id: int = 1) -> dict[str, Any]:
        """The ``/ota/device/upgrade`` message (port: None for the default 443)."""
        host = OTA_HOST.format(region=region) + (f":{port}" if port and port != 443 else "")
        expires = int(time.time()) + LINK_LIFETIME
        query = f"Expires={expires}&OSSAccessKeyId=LTAI4twin&Signature={quote(self.signature, safe='')}"
        url = f"https://{host}{self.url_path}?{query}"
        sign = self.md5 if self.sign_method == "Md5" else self.sha256
        data = {"size": self.size, "version": self.version, "url": url, "md5": self.md5,
                "sign": sign, "signMethod": self.sign_method}  # fmt: skip
        return {"code": "1000", "data": data, "id": message_id, "message": "success"}


def digest_file(path: Path) -> tuple[int, str, str]:
    """(size, md5, sha256) of a file, read in pieces."""
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    with path.open("rb") as file:
        while piece := file.read(1 << 16):
            md5.update(piece)
            sha256.update(piece)
            size += len(piece)
    return size, md5.hexdigest(), sha256.hexdigest()


class FirmwareStore:
    """One offered firmware per product (the newest `add` wins), with what was served."""

    def __init__(self) -> None:
        self._by_product: dict[str, Firmware] = {}
        self.served = 0  # body bytes written, over all downloads (for tests and benchmarks)

    def add(self, product_key: str, version: str, path: str | Path, sign_method: str = "Md5") -> Firmware:
        if sign_method not in SIGN_METHODS:
            raise ValueError(f"sign method {sign_method!r}: the platform signs with {' or '.join(SIGN_METHODS)}")
        if not version or any(c in version for c in '"\\') or len(version) > 64:
            raise ValueError(f"version {version!r}: 1-64 characters, no quotes or backslashes")
        file = Path(path)
        size, md5, sha256 = digest_file(file)
        if size == 0:
            raise ValueError(f"{file}: the firmware is empty")
        token, signature = secrets.token_hex(16), base64.b64encode(secrets.token_bytes(20)).decode()
        firmware = Firmware(product_key, version, file, size, md5, sha256, sign_method, token, signature)
        self._by_product[product_key] = firmware
        return firmware

    def offered(self, product_key: str) -> Firmware | None:
        return self._by_product.get(product_key)

    def find(self, target: str) -> Firmware | None:
        """The firmware a request target names, with its token right (None otherwise)."""
        path = target.partition("?")[0]
        for firmware in self._by_product.values():
            if secrets.compare_digest(path.encode(), firmware.url_path.encode()):
                return firmware
        return None


def link_refused(target: str, firmware: Firmware, now: float | None = None) -> bool:
    """OSS answers 403: the link's ``Expires`` (seconds) has passed, or it has none, or its
    ``Signature`` is not the one issued. (OSS signs Expires with the rest; the twin compares the
    signature it issued, so a changed Expires is not caught: the path's token still is.)"""
    query = parse_qs(target.partition("?")[2])
    try:
        expired = int(query["Expires"][0]) < (time.time() if now is None else now)
        signature = query["Signature"][0]
    except (KeyError, ValueError):
        return True
    return expired or not secrets.compare_digest(signature.encode(), firmware.signature.encode())


class Unsatisfiable(ValueError):
    """A range that lies outside the file: HTTP 416."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) bytes a ``Range`` header asks for; None for the whole file;
    `Unsatisfiable` when it cannot be met (RFC 9110 14.1.2: one range; a suffix ``-N`` is the
    last N bytes)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # a form this server does not take is ignored, as the RFC allows
    first_text, last_text = match.groups()
    if first_text == "":
        length = int(last_text)
        if length == 0:
            raise Unsatisfiable(header)
        return max(0, size - length), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # not a valid range: ignored (RFC 9110 14.2)
    if first >= size:
        raise Unsatisfiable(header)
    last = min(int(last_text), size - 1) if last_text else size - 1
    return first, last
