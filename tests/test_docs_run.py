"""Every Python example in README.md and docs/ runs, as written, against the emulator, the
cloud twin, a real Mosquitto and a local HTTPS server (issue 13). An example may use `modem`
without opening it (the docs say so: an open `Modem`); the only other changes are the places
a reader's machine differs: the serial device is the emulator's, `/var/lib/` a temporary
directory, and the secrets come from the variables the examples read."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest
import trustme

import quecmqtt
from quecmqtt.cloud import DEFAULT_ENDPOINT
from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker, TwinThread
from tests.httpserver import HttpServers

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
DEVICES = ("/dev/ttyUSB2", "/dev/serial/by-id/usb-Quectel_EC200U-if02-port0")
README_ENDPOINT = "iot-06z00abcdefghij.mqtt.iothub.aliyuncs.com"
DS, PS = "c4fa40df9c8078073d75a26be2bc8f58", "xTzMxVmm9HUY19Pr"  # the seed's 4.1.x device, 4.2.1 product


def examples() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for number, match in enumerate(m for m in FENCE.finditer(path.read_text("utf-8")) if m.group(1) == "python"):
            out.append((f"{path.name}#{number + 1}", match.group(2)))
    return out


EXAMPLES = examples()


def uses_given_modem(source: str) -> bool:
    """The example names `modem` without binding it itself."""
    tree = ast.parse(source)
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    stores = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return "modem" in loads and "modem" not in stores


@pytest.fixture(scope="module")
def world(broker: Broker) -> Iterator[dict[str, str]]:
    twin = TwinThread(
        broker,
        products=[("i2uqc2dloOl", "not-used-here"), ("a1B2c3D4e5F", "not-used-here"), ("i2uqZnX9tZK", PS)],
        devices=[("i2uqc2dloOl", "device001", DS), ("a1B2c3D4e5F", "dev-01", DS), ("i2uqZnX9tZK", "meter001", None)],
    )
    web = HttpServers()
    hosts = {**broker.hosts(), **twin.twin.hosts(DEFAULT_ENDPOINT), **twin.twin.hosts(README_ENDPOINT)}
    hosts["broker.example"] = f"127.0.0.1:{broker.port}"
    hosts["api.example.com:443"] = web.hosts()["web.test:443"]
    # what `async for message in ...messages` examples receive: a retained command
    publish.single("cmd/hello", b"hi", qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
    hosts["__web_ca__"] = web.ca.cert_pem.bytes().decode()
    hosts["__twin_ca__"] = twin.twin.ca_pem.decode()
    try:
        yield hosts
    finally:
        publish.single("cmd/hello", b"", qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
        web.close()
        twin.close()


@pytest.mark.parametrize(("where", "source"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_the_example_runs(
    where: str, source: str, world: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    hosts = {k: v for k, v in world.items() if not k.startswith("__")}
    # the reader's machine: files the examples read, in the working directory
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text(world["__web_ca__"])
    client_ca = trustme.CA()
    issued = client_ca.issue_cert("device-01")
    (tmp_path / "client.pem").write_bytes(issued.cert_chain_pems[0].bytes())
    (tmp_path / "client.key").write_bytes(issued.private_key_pem.bytes())
    (tmp_path / "fixtures" / "seed").mkdir(parents=True)
    shutil.copy(ROOT / "fixtures" / "seed" / "4.1.1-aliauth.txt", tmp_path / "fixtures" / "seed")
    for directory in ("dev", "mydevice"):
        (tmp_path / "var" / "lib" / directory).mkdir(parents=True)
    # the real endpoints chain to the shipped public roots; the twin's to its own CA
    monkeypatch.setattr("quecmqtt.aliyun.device.shipped_roots", lambda: world["__twin_ca__"].encode())
    monkeypatch.setenv("DEVICE_SECRET", DS)
    monkeypatch.setenv("PRODUCT_SECRET", PS)

    with EmulatorThread(model="EC200U", hosts=hosts) as emulator:
        text = source.replace("/var/lib/", f"{tmp_path}/var/lib/")
        for device in DEVICES:
            text = text.replace(f'"{device}"', repr(emulator.path))
        code = compile(text, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        namespace: dict[str, Any] = {"__name__": "__docs__"}
        if uses_given_modem(source) or code.co_flags & inspect.CO_COROUTINE:

            async def body() -> None:
                async with contextlib.AsyncExitStack() as stack:
                    if uses_given_modem(source):
                        namespace["modem"] = await stack.enter_async_context(quecmqtt.connect(emulator.path))
                    async with asyncio.timeout(60):
                        result = eval(code, namespace)  # the docs' own example
                        if inspect.iscoroutine(result):
                            await result

            asyncio.run(body())
        else:
            exec(code, namespace)  # a whole program (its own asyncio.run), or blocking code
    out = capsys.readouterr().out
    if where.startswith("README"):
        assert out.strip() == "200", out  # the platform accepted the property post
    if "print(message.topic, message.payload)" in source:
        assert "cmd/hello b'hi'" in out, out
