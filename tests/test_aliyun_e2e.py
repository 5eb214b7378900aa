"""Every seed flow end to end: the real driver, a pty, the emulator, the cloud twin and a real
Mosquitto behind it; and the failures. No secret or token may appear in any log line."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from quecmqtt.aliyun.alink import Thing, ntp_time
from quecmqtt.aliyun.credentials import registration_sign
from quecmqtt.aliyun.device import Product, aliauth_config, login, login_credentials, register_https, register_mqtt
from quecmqtt.aliyun.errors import AlreadyActive, BadCredentials, RegistrationNeedsTls
from quecmqtt.aliyun.replies import Registered, Whitelisted
from quecmqtt.aliyun.store import SecretStore, StoreError, rescue
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.auth import Forward, Push, Refuse
from quecmqtt.emulator import EmulatorThread
from quecmqtt.errors import InvalidArgument, MqttOpenError
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.session import Session
from quecmqtt.secret import Secret
from quecmqtt.transport.serial import SerialTransport
from tests.broker import Broker
from tests.peer import until

pytestmark = pytest.mark.broker

PK_411, DS_411 = "i2uqc2dloOl", "c4fa40df9c8078073d75a26be2bc8f58"
PK_421, PS_421 = "i2uqZnX9tZK", "xTzMxVmm9HUY19Pr"  # recovered from the seed's recorded sign
PK_422, PS_422 = "i2uq9ORmOSM", "cSsjZl19qkGDLvQq"  # the seed masks its end; ours
PK_423, PS_423 = "i2uqzmkZsLG", "hTtPsPrOdUcTsEc1"  # the seed does not show it; ours
KNOWN_SECRETS = [
    DS_411,
    PS_421,
    PS_422,
    PS_423,
    "25f4b80c3fab2ed6e41644a38f2c5b67eac1b505",  # the 4.2.1 registration password (random 123, hmacsha1)
    "0309b31761c30d24d37a25558c5604de308c92eb6ac8656a1981f85783fb23db",  # the 4.1.2 login password
]


@dataclass
class Rig:
    twin: CloudTwin
    emulator: EmulatorThread
    modem: Modem
    store: SecretStore
    secrets: list[str]  # everything that must stay out of the logs, growing as the test learns more

    def product(self, pk: str, ps: str, dn: str) -> Product:
        return Product(pk, dn, Secret(ps, "product_secret"))


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with the traceback text, if any


@pytest.fixture
def no_secrets_logged() -> Iterator[list[str]]:
    """Every log line of the test, from every logger at DEBUG (driver, emulator, twin)."""
    handler = Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    learned: list[str] = list(KNOWN_SECRETS)
    try:
        yield learned
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = "\n".join(handler.lines)
    assert len(handler.lines) > 20, "hardly anything was logged: the check would prove nothing"
    for value in learned:
        assert value not in text, f"a secret or token appeared in the log: {value[:4]}..."


FAMILIES = ["EC200U", "EC25", "BG96", "BG95"]  # the flows that must work on every family


@pytest.fixture
def model() -> str:
    """The emulated family; a test parametrised over "model" overrides it."""
    return "EC200U"


@pytest_asyncio.fixture
async def rig(broker: Broker, tmp_path: Path, no_secrets_logged: list[str], model: str) -> AsyncIterator[Rig]:
    twin = CloudTwin(broker=("127.0.0.1", broker.port))
    registry = twin.registry
    registry.add_product(PK_411, "not-used-here")
    registry.add_device(PK_411, "device001", DS_411)
    registry.add_product(PK_421, PS_421)
    registry.add_device(PK_421, "meter001")  # pre-registered, no secret yet
    registry.add_product(PK_422, PS_422)
    registry.add_product(PK_423, PS_423)
    registry.add_device(PK_423, "device001")
    await twin.start()
    emulator = await asyncio.to_thread(EmulatorThread, model=model, hosts=twin.hosts())
    modem = Modem(SerialTransport(emulator.path))
    try:
        await modem.open()
        yield Rig(twin, emulator, modem, SecretStore(tmp_path / "store"), no_secrets_logged)
    finally:
        await modem.close()
        await asyncio.to_thread(emulator.close)
        await twin.stop()


def learned(r: Rig, result: Registered | Whitelisted) -> None:
    r.secrets.append(result.device_secret.reveal() if isinstance(result, Registered) else result.device_token.reveal())


async def aliauth_login(r: Rig, pk: str, dn: str, ds: str | Secret) -> MqttClient:
    client = MqttClient(r.modem, 0, aliauth_config(pk, dn, ds))
    await login(client, DEFAULT_ENDPOINT, 1883, None, client_id=dn)
    return client


# -- 4.1: one device, one secret ---------------------------------------------------------------


async def test_4_1_1_the_module_signs(rig: Rig) -> None:
    client = await aliauth_login(rig, PK_411, "device001", Secret(DS_411))
    assert client.connected
    cid, decision = rig.twin.decisions[-1]
    assert cid == "device001" and decision == Forward(f"{PK_411}.device001", PK_411, "device001")
    await client.close()


async def test_4_1_2_host_signed_login_with_the_seeds_timestamp(rig: Rig) -> None:
    credentials = login_credentials(PK_411, "device001", Secret(DS_411), timestamp=1680937625134)
    assert credentials.client_id == f"{PK_411}.device001|securemode=2,signmethod=hmacsha256,timestamp=1680937625134|"
    client = MqttClient(rig.modem, 0)
    await login(client, DEFAULT_ENDPOINT, 1883, credentials)
    assert client.connected
    await client.close()


@pytest.mark.parametrize("model", FAMILIES)
async def test_4_1_3_property_post_and_the_thing_model(rig: Rig) -> None:
    client = await aliauth_login(rig, PK_411, "device001", Secret(DS_411))
    thing = Thing(client, PK_411, "device001")
    await thing.start()
    assert await thing.post_properties({"Temp": 23.9, "Humi": 69, "mlux": 825, "LightStatus": 1}) == 200
    assert rig.twin.responder is not None
    pk, dn, method, params = rig.twin.responder.posts[-1]
    assert (pk, dn, method, params["Temp"]) == (PK_411, "device001", "thing.event.property.post", 23.9)
    assert await thing.post_event("alarm", {"level": 2}) == 200

    applied: list[dict[str, object]] = []
    thing.on_property_set(lambda p: applied.append(p))
    reply = await rig.twin.responder.set_properties(PK_411, "device001", {"LightStatus": 0})
    assert reply["code"] == 200 and applied == [{"LightStatus": 0}]
    thing.on_service("reboot", lambda p: {"accepted": p.get("delay", 0)})
    reply = await rig.twin.responder.call_service(PK_411, "device001", "reboot", {"delay": 5})
    assert reply["code"] == 200 and reply["data"] == {"accepted": 5}
    reply = await rig.twin.responder.call_service(PK_411, "device001", "unknown", {})
    assert reply["code"] == 460

    now = await thing.sync_time()
    assert abs(now - time.time() * 1000) < 5000
    assert ntp_time(1700000000000, 1700000000350, 1700000000352, 1700000000800) == 1700000000751  # N1
    await thing.report_version("1.0.1", module="MCU")
    responder = rig.twin.responder
    await until(lambda: (PK_411, "device001") in responder.versions)
    assert rig.twin.responder.versions[(PK_411, "device001")] == {"version": "1.0.1", "module": "MCU"}
    await client.close()


async def test_wrong_device_secret_is_bad_credentials(rig: Rig) -> None:
    client = MqttClient(rig.modem, 0)
    credentials = login_credentials(PK_411, "device001", Secret("0" * 32))
    with pytest.raises(BadCredentials) as caught:
        await login(client, DEFAULT_ENDPOINT, 1883, credentials)
    assert caught.value.code == 4
    assert isinstance(rig.twin.decisions[-1][1], Refuse)
    with pytest.raises(BadCredentials):
        await aliauth_login_on(rig, MqttClient(rig.modem, 1, aliauth_config(PK_411, "device001", "1" * 32)))


async def aliauth_login_on(r: Rig, client: MqttClient) -> None:
    await login(client, DEFAULT_ENDPOINT, 1883, None, client_id="device001")


# -- 4.2: one product, one secret -------------------------------------------------------------------


@pytest.mark.parametrize("model", FAMILIES)
async def test_4_2_1_register_over_tls_then_log_in(rig: Rig) -> None:
    product = rig.product(PK_421, PS_421, "meter001")
    result = await register_mqtt(
        rig.modem, product, DEFAULT_ENDPOINT, 1883, store=rig.store, ca=rig.twin.ca_pem,
        client_id="864430010001091", instance_id="iot-06z00hxss3rggno", random="123", sign_method="hmacsha1",
    )  # fmt: skip
    assert isinstance(result, Registered)
    learned(rig, result)
    assert rig.twin.registry.device(PK_421, "meter001").device_secret == result.device_secret.reveal()  # type: ignore[union-attr]
    path = rig.store.path(PK_421, "meter001")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert isinstance(rig.twin.decisions[-1][1], Push)
    # stored: a second call reuses it without asking the cloud
    decisions = len(rig.twin.decisions)
    again = await register_mqtt(rig.modem, product, DEFAULT_ENDPOINT, 1883, store=rig.store, ca=rig.twin.ca_pem)
    assert again == result and len(rig.twin.decisions) == decisions
    client = await aliauth_login(rig, PK_421, "meter001", result.device_secret)
    assert client.connected
    await client.close()
    await client.aclose()
    # the device is active now: registering again (forced) is refused [R: CONNACK 4]
    with pytest.raises(BadCredentials, match="already active"):
        await register_mqtt(
            rig.modem, product, DEFAULT_ENDPOINT, 1883, store=rig.store, ca=rig.twin.ca_pem, force=True,
            configure_tls=False,
        )  # fmt: skip
    assert rig.store.load(PK_421, "meter001") == result  # the stored secret is untouched


async def test_4_2_2_regnwl_twice_then_connwl(rig: Rig) -> None:
    product = rig.product(PK_422, PS_422, "Kit001")
    steps = len(rig.modem.steps)
    first = await register_mqtt(
        rig.modem, product, DEFAULT_ENDPOINT, 1883, auth_type="regnwl", store=rig.store, ca=rig.twin.ca_pem,
        instance_id="iot-06z00hxss3rggno", random="123", sign_method="hmacsha1",
    )  # fmt: skip
    assert isinstance(first, Whitelisted)
    learned(rig, first)
    second = await register_mqtt(
        rig.modem, product, DEFAULT_ENDPOINT, 1883, auth_type="regnwl", store=rig.store, force=True,
        configure_tls=False, instance_id="iot-06z00hxss3rggno", random="124", sign_method="hmacsha1",
    )  # fmt: skip
    assert isinstance(second, Whitelisted)
    learned(rig, second)
    assert second.client_id != first.client_id and second.device_token != first.device_token
    assert rig.store.load(PK_422, "Kit001") == second
    assert len(rig.modem.steps) == steps  # registrations leave no init step behind (TLS, client)
    client = MqttClient(rig.modem, 0)
    await login(client, DEFAULT_ENDPOINT, 1883, login_credentials(PK_422, "Kit001", second))
    assert client.connected
    assert rig.twin.decisions[-1][1] == Forward(f"{PK_422}.Kit001.{second.client_id}", PK_422, "Kit001")
    await client.close()


@pytest.mark.parametrize("model", FAMILIES)
async def test_4_2_3_https_registration_then_log_in(rig: Rig) -> None:
    product = rig.product(PK_423, PS_423, "device001")
    steps = len(rig.modem.steps)
    result = await register_https(
        rig.modem, product, store=rig.store, ca=rig.twin.ca_pem, random="003", sign_method="hmacsha1"
    )
    learned(rig, result)
    assert len(rig.modem.steps) == steps  # nor does HTTPS registration (TLS, HTTP)
    client = await aliauth_login(rig, PK_423, "device001", result.device_secret)
    assert client.connected
    await client.close()
    await client.aclose()
    with pytest.raises(AlreadyActive) as caught:
        await register_https(rig.modem, product, store=rig.store, force=True, configure_tls=False, random="004")
    assert caught.value.code == 6289


async def test_registration_over_plain_tcp_is_refused(rig: Rig) -> None:
    product = rig.product(PK_421, PS_421, "meter001")
    with pytest.raises(InvalidArgument, match="plain TCP"):
        await register_mqtt(rig.modem, product, DEFAULT_ENDPOINT, 1883, tls=False)
    with pytest.raises(RegistrationNeedsTls) as caught:  # forced through: the cloud says no
        await register_mqtt(rig.modem, product, DEFAULT_ENDPOINT, 1883, tls=False, allow_plain_tcp=True)
    assert caught.value.code == 2


async def test_registration_verifies_the_server_by_default(rig: Rig) -> None:
    """Without the twin's CA the module checks the twin's certificate against the shipped
    public roots, which did not sign it: the TLS handshake fails and nothing is sent."""
    product = rig.product(PK_421, PS_421, "meter001")
    decisions = len(rig.twin.decisions)
    with pytest.raises(MqttOpenError):
        await register_mqtt(rig.modem, product, DEFAULT_ENDPOINT, 1883, store=rig.store)
    assert len(rig.twin.decisions) == decisions  # no CONNECT reached the twin
    assert rig.store.load(PK_421, "meter001") is None


async def test_wrong_product_secret_is_refused(rig: Rig) -> None:
    product = rig.product(PK_421, "wrong-secret-000", "meter001")
    rig.secrets.append("wrong-secret-000")
    with pytest.raises(BadCredentials):
        await register_mqtt(rig.modem, product, DEFAULT_ENDPOINT, 1883, ca=rig.twin.ca_pem)
    assert rig.store.load(PK_421, "meter001") is None


async def test_a_store_that_cannot_be_written_keeps_the_result_on_the_error(rig: Rig, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = SecretStore(blocker / "store")
    product = rig.product(PK_421, PS_421, "meter001")
    with pytest.raises(StoreError) as caught:
        await register_mqtt(rig.modem, product, DEFAULT_ENDPOINT, 1883, store=store, ca=rig.twin.ca_pem)
    result = caught.value.result
    assert isinstance(result, Registered)
    learned(rig, result)
    secret = result.device_secret.reveal()
    assert secret == rig.twin.registry.device(PK_421, "meter001").device_secret  # type: ignore[union-attr]
    assert secret not in str(caught.value) and secret not in repr(caught.value.result)
    # rescue() keeps it in the first directory that takes it, written like the store writes.
    kept = rescue(caught.value, [blocker / "again", tmp_path / "rescue"])
    assert kept == tmp_path / "rescue" / f"{PK_421}.meter001.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    reloaded = SecretStore(tmp_path / "rescue").load(PK_421, "meter001")
    assert isinstance(reloaded, Registered) and reloaded.device_secret.reveal() == secret
    assert rescue(caught.value, [blocker / "a", blocker / "b"]) is None


def test_registration_sign_matches_the_twin() -> None:
    """The twin verifies with the same rule the device signs with (a cross-check of both)."""
    from quecmqtt.cloud.auth import sign_ok

    sign = registration_sign(PK_421, "meter001", PS_421, "123", "hmacsha1")
    assert sign == "25f4b80c3fab2ed6e41644a38f2c5b67eac1b505"  # the seed's 4.2.1 password
    assert sign_ok("hmacsha1", PS_421, f"deviceNamemeter001productKey{PK_421}random123", sign.upper().encode())
    assert MqttConfig.only(ssl_context=2).commands(0)[0].line == b'AT+QMTCFG="ssl",0,1,2'


async def test_thing_model_over_a_session(rig: Rig) -> None:
    """The thing model over a Session (reconnects, outbox) rather than a bare client."""
    credentials = login_credentials(PK_411, "device001", Secret(DS_411))
    session = Session(
        rig.modem, DEFAULT_ENDPOINT, 1883, credentials.client_id, credentials.username, credentials.password
    )
    async with session:
        thing = Thing(session, PK_411, "device001")
        await thing.start()
        assert await thing.post_properties({"Humi": 70}) == 200
        assert rig.twin.responder is not None
        reply = await rig.twin.responder.set_properties(PK_411, "device001", {"x": 1})
        assert reply["code"] == 460  # no handler set: the device says so rather than staying silent
