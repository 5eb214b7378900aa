"""The package API (issue 13): `quecmqtt.connect`, `modem.session`, `quecmqtt.aliyun.Device`,
one error hierarchy; through a real pty, the emulator, Mosquitto and the cloud twin."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

import quecmqtt
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.emulator import EmulatorThread
from quecmqtt.errors import InvalidArgument
from tests.broker import Broker, Cloud

PK, DN, DS = "i2uqc2dloOl", "device001", "c4fa40df9c8078073d75a26be2bc8f58"


def test_importing_the_package_loads_nothing_heavy_and_every_name_resolves() -> None:
    code = (
        "import sys, quecmqtt; print(sorted(m for m in sys.modules if m.startswith('quecmqtt')));"
        "[getattr(quecmqtt, n) for n in quecmqtt.__all__]; print(quecmqtt.aliyun.Device.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == ["['quecmqtt', 'quecmqtt.errors']", "Device"]
    assert issubclass(quecmqtt.CommandTimeout, TimeoutError)
    assert issubclass(quecmqtt.HttpStatusError, quecmqtt.HttpError)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = quecmqtt.nothing  # type: ignore[attr-defined]


def test_connect_checks_its_arguments_before_anything_opens() -> None:
    with pytest.raises(InvalidArgument, match="AT port"):
        quecmqtt.connect("")
    with pytest.raises(InvalidArgument, match="baud"):
        quecmqtt.connect("/dev/ttyUSB2", baudrate=0)
    modem = quecmqtt.connect("socket://127.0.0.1:1")
    assert modem.closed  # built, not opened


@pytest.fixture
def emulator(broker: Broker) -> Iterator[EmulatorThread]:
    with EmulatorThread(model="EC200U", hosts=broker.hosts()) as emu:
        yield emu


async def test_a_session_with_a_random_client_id_publishes_and_receives(emulator: EmulatorThread, cloud: Cloud) -> None:
    cloud.subscribe("api/up")
    async with quecmqtt.connect(emulator.path) as modem:
        opener = modem.session("broker.test", subscriptions=[("api/down", 1)])
        other = modem.session("broker.test")
        assert opener.client_id.startswith("quecmqtt-") and opener.client_id != other.client_id
        assert opener.port == 1883 and modem.session("broker.test", tls=True, ca=b"x").port == 8883
        async with opener as session:
            await session.publish("api/up", b"21.5")
            assert (await asyncio.to_thread(cloud.messages.get, timeout=5)).payload == b"21.5"
            await asyncio.to_thread(cloud.publish, "api/down", b"cmd")
            async for message in session.messages:
                assert (message.topic, message.payload) == ("api/down", b"cmd")  # type: ignore[union-attr]
                break
        assert not session.connected
        assert not emulator.emulator.module.clients[0].connected  # left: disconnected on the module too


async def test_tls_is_verified_against_the_ca_given_and_fails_against_another(
    emulator: EmulatorThread, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    async with quecmqtt.connect(emulator.path) as modem:
        async with modem.session("broker.test", ca=broker.ca_pem) as session:
            assert session.connected and session.port == 8883
        with pytest.raises(TimeoutError):
            async with modem.session("broker.test", ca=broker.wrong_ca_pem, timeout=1.5):
                pass
        assert not emulator.emulator.module.clients[0].connected  # nothing left trying
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert failures and all("certificate did not verify" in text for text in failures), failures


async def test_insecure_tls_warns(emulator: EmulatorThread, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="quecmqtt"):
        async with quecmqtt.connect(emulator.path) as modem, modem.session("broker.test", insecure=True) as session:
            assert session.connected
    assert any("without checking its certificate" in r.getMessage() for r in caplog.records)


@pytest_asyncio.fixture
async def twin(broker: Broker) -> AsyncIterator[CloudTwin]:
    twin = CloudTwin(broker=("127.0.0.1", broker.port))
    twin.registry.add_product(PK, "not-used-here")
    twin.registry.add_device(PK, DN, DS)
    await twin.start()
    yield twin
    await twin.stop()


@pytest.mark.parametrize("module_signs", [False, True])
async def test_an_aliyun_device_posts_and_leaves_nothing_set(twin: CloudTwin, module_signs: bool) -> None:
    from quecmqtt.aliyun.tsl import ThingModel, TslError

    model = ThingModel.load(Path(__file__).parent.parent / "fixtures" / "tsl" / "seed-product.json")
    emulator = await asyncio.to_thread(EmulatorThread, model="EC200U", hosts=twin.hosts())
    try:
        async with quecmqtt.connect(emulator.path) as modem:
            device = quecmqtt.aliyun.Device(
                modem, PK, DN, secret=DS, endpoint=DEFAULT_ENDPOINT, module_signs=module_signs, model=model
            )
            assert DS not in repr(device) and DS not in repr(device.secret)
            async with device:
                assert await device.post({"Temp": 21.5}) == 200
                assert twin.responder is not None and twin.responder.posts[-1][3] == {"Temp": 21.5}
                with pytest.raises(TslError, match="Humi: 101 is above the maximum 100"):
                    await device.post({"Humi": 101})
            assert emulator.emulator.module.clients[0].cfg["aliauth"] is None  # no later CONNECT is signed with it
            assert not emulator.emulator.module.clients[0].connected
    finally:
        await asyncio.to_thread(emulator.close)


async def test_an_aliyun_device_without_a_secret_says_so() -> None:
    modem = quecmqtt.connect("socket://127.0.0.1:1")
    with pytest.raises(InvalidArgument, match="no device secret"):
        quecmqtt.aliyun.Device(modem, PK, DN, secret=quecmqtt.load_secret(env="QUECMQTT_NO_SUCH_VAR"), endpoint="x")


async def test_a_text_payload_goes_as_utf8(emulator: EmulatorThread, cloud: Cloud) -> None:
    cloud.subscribe("api/text")
    async with quecmqtt.connect(emulator.path) as modem, modem.session("broker.test") as session:
        await session.publish("api/text", "21.5 °C")
        assert (await asyncio.to_thread(cloud.messages.get, timeout=5)).payload == "21.5 °C".encode()
        with pytest.raises(InvalidArgument, match="not valid text at position 1"):
            await session.publish("api/text", "a\udc80")
