"""The OTA parts that need no module: the task as the platform sends it (and what a hostile
or broken push is refused for), byte ranges as the twin reads them, the firmware served in
ranges over HTTPS, and the device taking its piece out of a 206 or a whole 200."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from quecmqtt.aliyun.ota import OtaTask, range_piece
from quecmqtt.cloud import CloudTwin
from quecmqtt.cloud.ota import FirmwareStore, Unsatisfiable, byte_range
from quecmqtt.errors import HttpStatusError

MD5 = "9323b3a29e5a7a6d3f1c3a8f2a0b1c2d"
SHA = hashlib.sha256(b"x").hexdigest()


def push(**data: Any) -> dict[str, Any]:
    base = {"size": 432945, "version": "2.0.0", "url": "https://iotx-ota.oss-cn-shanghai.aliyuncs.com/ota/x.bin?Signature=s",
            "md5": MD5, "sign": MD5, "signMethod": "Md5"}  # fmt: skip
    base.update(data)
    return {"code": "1000", "data": {k: v for k, v in base.items() if v is not None}, "id": 1507707025,
            "message": "success"}  # fmt: skip


def test_the_documented_push_and_a_firmware_get_reply_are_tasks() -> None:
    task = OtaTask.from_message(push())
    assert (task.version, task.size, task.sign_method, task.sign) == ("2.0.0", 432945, "md5", MD5)
    sha = OtaTask.from_message({"code": 200, "data": {**push(signMethod="SHA256", sign=SHA, md5=None)["data"]}})
    assert sha.sign_method == "sha256" and sha.sign == SHA
    assert "Signature" not in repr(task) and "oss-cn-shanghai" not in repr(task)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"code": 200, "data": {}}, "no task"),
        ([1, 2], "no task"),
        (push(version="../../etc/passwd"), "version"),
        (push(version="2.0.0/evil"), "version"),
        (push(version=".."), "version"),
        (push(version="x" * 65), "version"),
        (push(url="ftp://host/fw.bin"), "URL"),
        (push(url=None), "URL"),
        (push(size=0), "size"),
        (push(size=-5), "size"),
        (push(size=True), "size"),
        (push(size="12abc"), "size"),
        (push(signMethod="CRC32"), "signMethod"),
        (push(sign="zz" * 16, md5=None), "32 hex digits"),
        (push(signMethod="SHA256", sign=MD5), "64 hex digits"),
    ],
)
def test_a_push_the_device_cannot_use_is_refused_with_why(message: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        OtaTask.from_message(message)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-500", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("items=0-9", 100, None),  # a unit it does not take: the whole file, as the RFC allows
        ("bytes=0-9,20-29", 100, None),
        ("bytes=-", 100, None),
        ("bytes=9-3", 100, None),  # not a valid range: ignored (RFC 9110 14.2)
    ],
)
def test_byte_ranges(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_a_range_outside_the_file_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 100)


def test_the_device_takes_its_piece_from_206_or_from_a_whole_200() -> None:
    whole = bytes(range(256)) * 4
    assert range_piece(206, whole[10:20], 10, 19, len(whole)) == whole[10:20]
    assert range_piece(200, whole, 10, 19, len(whole)) == whole[10:]  # it ignored the range: all the rest is kept
    for status, body in ((206, whole[10:19]), (200, whole[:500]), (404, b"not found"), (416, b""), (302, b"")):
        with pytest.raises((ValueError, HttpStatusError), match=r"bytes for range|HTTP status"):
            range_piece(status, body, 10, 19, len(whole))


def test_the_store_refuses_what_the_platform_would_not_offer(tmp_path: Path) -> None:
    store = FirmwareStore()
    (tmp_path / "fw.bin").write_bytes(b"firmware")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="Md5 or SHA256"):
        store.add("pk", "1.0", tmp_path / "fw.bin", "CRC32")
    with pytest.raises(ValueError, match="no quotes"):
        store.add("pk", 'a"b', tmp_path / "fw.bin")
    with pytest.raises(ValueError, match="empty"):
        store.add("pk", "1.0", tmp_path / "empty.bin")
    firmware = store.add("pk", "1.0", tmp_path / "fw.bin")
    assert store.find(firmware.url_path + "?Expires=1&Signature=x") is firmware
    assert store.find(firmware.url_path.replace(firmware.token, "0" * 32)) is None
    assert store.find("/ota/pk/../../../etc/passwd") is None


async def test_the_twin_serves_firmware_in_ranges_and_nothing_else(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "fw.bin").write_bytes(data)
    twin = CloudTwin()
    firmware = twin.firmware.add("pk", "2.0.0", tmp_path / "fw.bin", "SHA256")
    await twin.start()
    context = ssl.create_default_context(cadata=twin.ca_pem.decode())

    def get(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPSConnection("127.0.0.1", twin.https_port, context=context, timeout=5)
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    try:
        signature = quote(firmware.signature, safe="")
        path = f"{firmware.url_path}?Expires=99999999999&Signature={signature}"
        for refused in (f"{firmware.url_path}?Expires=1&Signature={signature}",  # as OSS refuses an old link
                        f"{firmware.url_path}?Expires=99999999999&Signature=forged",
                        f"{firmware.url_path}?Signature={signature}", firmware.url_path):  # fmt: skip
            assert (await asyncio.to_thread(get, "GET", refused, {}))[0] == 403, refused
        status, headers, body = await asyncio.to_thread(get, "GET", path, {"Range": "bytes=1000-1999"})
        assert (status, body, headers["Content-Range"]) == (206, data[1000:2000], f"bytes 1000-1999/{len(data)}")
        status, headers, body = await asyncio.to_thread(get, "GET", path, {})
        assert (status, body, headers["Accept-Ranges"]) == (200, data, "bytes")
        status, headers, body = await asyncio.to_thread(get, "HEAD", path, {"Range": "bytes=-10"})
        assert (status, headers["Content-Length"]) == (206, "10")
        status, headers, _ = await asyncio.to_thread(get, "GET", path, {"Range": f"bytes={len(data)}-"})
        assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
        for other in ("/ota/pk/wrong-token/fw.bin", "/etc/passwd", "/ota/pk/" + firmware.token + "/../fw.bin"):
            status, _, _ = await asyncio.to_thread(get, "GET", other, {})
            assert status == 404, other
        assert twin.firmware.served == len(data) + 1000  # HEAD and refusals send no body
    finally:
        await twin.stop()
