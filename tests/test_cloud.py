"""The cloud twin's parts: the auth decisions (pure), the embedded broker against paho
clients, the `quecmqtt cloud` command under a pty, and a whole flow on the embedded broker
(the zero-install path: no Mosquitto)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import sys
import threading
from collections.abc import AsyncIterator

import paho.mqtt.client as mqtt
import pexpect
import pytest
import pytest_asyncio

from quecmqtt.aliyun.alink import Thing
from quecmqtt.aliyun.credentials import connwl_login, direct_login, registration_login
from quecmqtt.aliyun.device import Product, aliauth_config, login, register_mqtt
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.auth import Forward, Push, Refuse, decide, split_client_id
from quecmqtt.cloud.broker import EmbeddedBroker, matches
from quecmqtt.cloud.https import register_device
from quecmqtt.cloud.registry import Registry
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.secret import Secret
from quecmqtt.transport.serial import SerialTransport
from quecmqtt.wire.mqtt import BACKEND_USER, Connect
from tests.children import spawn_child
from tests.peer import until
from tests.test_cli import ENV


def connect_of(client_id: str, username: str, password: str | Secret, keepalive: int = 120) -> Connect:
    raw = password.reveal() if isinstance(password, Secret) else password
    return Connect(client_id, username, raw.encode(), keepalive, True)


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add_product("pk1", "product-secret-1")
    reg.add_device("pk1", "dev1", "device-secret-1")
    reg.add_device("pk1", "pre1")
    reg.add_product("pk2", "product-secret-2", dynamic_registration=False)
    return reg


# -- decisions -------------------------------------------------------------------------------------


def test_direct_login_decisions(registry: Registry) -> None:
    good = direct_login("pk1", "dev1", "device-secret-1", timestamp=1, sign_method="hmacmd5", secure_mode=3)
    decision = decide(connect_of(good.client_id, good.username, good.password), registry, tls=False)
    assert decision == Forward("pk1.dev1", "pk1", "dev1")
    assert registry.device("pk1", "dev1").active  # type: ignore[union-attr]
    upper = connect_of(good.client_id, good.username, good.password.reveal().upper())
    assert isinstance(decide(upper, registry, tls=False), Forward)  # hex is case-blind
    wrong = direct_login("pk1", "dev1", "not-the-secret", timestamp=1)
    assert decide(connect_of(wrong.client_id, wrong.username, wrong.password), registry, tls=True) == Refuse(
        4, "signature mismatch"
    )
    assert decide(connect_of("plain-id", "dev1&pk1", "x"), registry, tls=True).code == 2  # type: ignore[union-attr]
    assert decide(connect_of(good.client_id, "dev1", good.password), registry, tls=True).code == 4  # type: ignore[union-attr]
    slow = connect_of(good.client_id, good.username, good.password, keepalive=10)
    assert decide(slow, registry, tls=True).code == 2  # type: ignore[union-attr]
    assert split_client_id("a|b=c,d=e|") == ("a", {"b": "c", "d": "e"})
    assert split_client_id("a|b|") is None


def test_registration_decisions(registry: Registry) -> None:
    reg = registration_login("pk1", "pre1", "product-secret-1", random="9")
    over_tcp = decide(connect_of(reg.client_id, reg.username, reg.password), registry, tls=False)
    assert isinstance(over_tcp, Refuse) and over_tcp.code == 2
    pushed = decide(connect_of(reg.client_id, reg.username, reg.password), registry, tls=True)
    assert isinstance(pushed, Push) and pushed.topic == "/ext/register" and b"deviceSecret" in pushed.payload
    unknown = registration_login("pk1", "nobody", "product-secret-1", random="9")
    assert decide(connect_of(unknown.client_id, unknown.username, unknown.password), registry, tls=True).code == 4  # type: ignore[union-attr]
    disabled = registration_login("pk2", "x", "product-secret-2", random="9")
    refusal = decide(connect_of(disabled.client_id, disabled.username, disabled.password), registry, tls=True)
    assert isinstance(refusal, Refuse) and "6288" in refusal.reason

    tokens = []
    for n in range(5):
        nwl = registration_login("pk1", "free1", "product-secret-1", auth_type="regnwl", random=str(n))
        push = decide(connect_of(nwl.client_id, nwl.username, nwl.password), registry, tls=True)
        assert isinstance(push, Push) and push.topic == "/ext/regnwl"
        tokens.append(push.payload)
    assert len(set(tokens)) == 5
    sixth = registration_login("pk1", "free1", "product-secret-1", auth_type="regnwl", random="6")
    assert decide(connect_of(sixth.client_id, sixth.username, sixth.password), registry, tls=True).code == 4  # type: ignore[union-attr]
    device = registry.device("pk1", "free1")
    assert device is not None
    client_id, token = next(iter(device.client_ids.items()))
    login_ = connwl_login("pk1", "free1", client_id, token)
    assert decide(connect_of(login_.client_id, login_.username, login_.password), registry, tls=True) == Forward(
        f"pk1.free1.{client_id}", "pk1", "free1"
    )
    stolen = connwl_login("pk1", "free1", client_id, "^1^0^wrong")
    assert decide(connect_of(stolen.client_id, stolen.username, stolen.password), registry, tls=True).code == 4  # type: ignore[union-attr]


def test_https_registration_replies(registry: Registry) -> None:
    import urllib.parse

    from quecmqtt.aliyun.credentials import https_registration

    def form(pk: str, dn: str, ps: str, method: str = "hmacsha256") -> dict[str, str]:
        body = https_registration(pk, dn, ps, random="1", sign_method=method).body
        return dict(urllib.parse.parse_qsl(body))

    ok = register_device(form("pk1", "pre1", "product-secret-1"), registry)
    assert ok["code"] == 200 and len(ok["data"]["deviceSecret"]) == 32
    assert register_device(form("pk1", "pre1", "wrong"), registry)["code"] == 6600
    assert register_device(form("pk9", "pre1", "x"), registry)["code"] == 6250
    assert register_device(form("pk2", "x", "product-secret-2"), registry)["code"] == 6288
    assert register_device(form("pk1", "nobody", "product-secret-1"), registry)["code"] == 6100
    registry.activate("pk1", "pre1")
    assert register_device(form("pk1", "pre1", "product-secret-1"), registry)["code"] == 6289
    assert register_device({"productKey": "pk1"}, registry)["code"] == 460
    bad_method = form("pk1", "pre1", "product-secret-1") | {"signMethod": "sha512"}
    assert register_device(bad_method, registry)["code"] == 6292


def test_registry_file_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "registry.json"
    reg = Registry(path)
    reg.add_product("pk1", "ps")
    reg.add_device("pk1", "d", "ds")
    client_id, token = reg.register_free("pk1", "free")
    again = Registry(path)
    assert again.device("pk1", "d").device_secret == "ds"  # type: ignore[union-attr]
    assert again.token_owner(client_id, token.encode()) == ("pk1", "free")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


# -- the embedded broker ----------------------------------------------------------------------------


def test_topic_matching() -> None:
    assert matches("a/+/c", "a/b/c") and matches("a/#", "a/b/c") and matches("#", "a") and matches("a/#", "a")
    assert not matches("a/+", "a/b/c") and not matches("a/b", "a/c") and not matches("#", "$SYS/x")


class Paho:
    def __init__(self, port: int, client_id: str, **options: object) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        if "will" in options:
            self.client.will_set("wills/" + client_id, b"gone", 1)
        self.client.username_pw_set(BACKEND_USER, TOKEN)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


TOKEN = b"test-broker-token"


@pytest_asyncio.fixture
async def embedded() -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker(token=TOKEN, max_buffer=64 << 10)
    await broker.start()
    yield broker
    await broker.stop()


async def test_embedded_broker_routes_every_qos_retained_and_wills(embedded: EmbeddedBroker) -> None:
    def scenario() -> None:
        sub = Paho(embedded.port, "sub")
        sub.client.subscribe([("t/+", 2), ("wills/#", 1)])
        assert sub.subscribed.wait(5), "no SUBACK"
        pub = Paho(embedded.port, "pub")
        for qos in (0, 1, 2):
            pub.client.publish(f"t/{qos}", b"q%d" % qos, qos).wait_for_publish(5)
        got = sorted((sub.messages.get(timeout=5) for _ in range(3)), key=lambda m: m.topic)
        assert [(m.topic, m.payload, m.qos) for m in got] == [("t/0", b"q0", 0), ("t/1", b"q1", 1), ("t/2", b"q2", 2)]
        pub.client.publish("keep/this", b"retained", 1, retain=True).wait_for_publish(5)
        late = Paho(embedded.port, "late")
        late.client.subscribe("keep/#", 1)
        message = late.messages.get(timeout=5)
        assert (message.topic, message.payload, message.retain) == ("keep/this", b"retained", True)
        dying = Paho(embedded.port, "dying", will=True)  # connected: its will is registered
        dying.client.loop_stop()
        dying.client.socket().close()  # no DISCONNECT: the will goes out
        will = sub.messages.get(timeout=5)
        assert (will.topic, will.payload) == ("wills/dying", b"gone")
        for client in (sub, pub, late):
            client.close()

    await asyncio.to_thread(scenario)


# -- the command ---------------------------------------------------------------------------------


def test_cloud_command_serves_logins_and_stops_on_ctrl_c() -> None:
    child = spawn_child(
        sys.executable,
        ["-m", "quecmqtt", "cloud", "--product", "pk1:$TWIN_PS", "--device", "pk1:dev1:$TWIN_DS"],
        encoding="utf-8",
        env={**ENV, "TWIN_PS": "product-secret-1", "TWIN_DS": "device-secret-1"},
        timeout=20,
    )
    child.expect(r"mqtt: 127\.0\.0\.1:(\d+)")
    port = int(child.match.group(1))
    child.expect(r"ca: (\S+)")
    ca = child.match.group(1)
    child.expect("Ctrl-C stops")

    def attempt(password: str, tls: bool, client_id_params: str = "") -> int:
        login_ = direct_login("pk1", "dev1", password, timestamp=5)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id_params or login_.client_id)
        client.username_pw_set(login_.username, login_.password.reveal())
        if tls:
            client.tls_set(ca_certs=ca)
            client.tls_insecure_set(False)
        codes: queue.Queue[int] = queue.Queue()
        client.on_connect = lambda c, u, f, rc, p: codes.put(rc.value)
        client.connect("localhost", port)
        client.loop_start()
        code = codes.get(timeout=10)
        client.loop_stop()
        client.disconnect()
        return code

    assert attempt("device-secret-1", tls=False) == 0
    assert attempt("device-secret-1", tls=True) == 0  # the same port, with the printed CA
    assert attempt("wrong-secret", tls=False) == 134  # MQTT 3.1.1 CONNACK 4, as paho numbers it
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130  # Ctrl-C: interrupted

    status = pexpect.run(
        f"{sys.executable} -m quecmqtt cloud --product nocolon", env=ENV, withexitstatus=True, encoding="utf-8"
    )
    assert status[1] == 2 and "PK:$VAR or PK:@FILE" in status[0]
    help_text = pexpect.run(f"{sys.executable} -m quecmqtt cloud --help", env=ENV, encoding="utf-8")
    assert all(o in help_text for o in ("--registry", "--product", "--device", "--broker", "--endpoint"))
    assert re.search(r"embedded", help_text)


# -- the zero-install path ------------------------------------------------------------------------


async def test_a_whole_flow_on_the_embedded_broker() -> None:
    async with CloudTwin() as twin:
        twin.registry.add_product("pkE", "product-secret-E")
        twin.registry.add_device("pkE", "devE")
        emulator = await asyncio.to_thread(EmulatorThread, hosts=twin.hosts())
        modem = Modem(SerialTransport(emulator.path))
        try:
            await modem.open()
            product = Product("pkE", "devE", Secret("product-secret-E"))
            result = await register_mqtt(modem, product, DEFAULT_ENDPOINT, 1883, ca=twin.ca_pem)
            client = MqttClient(modem, 0, aliauth_config("pkE", "devE", result.device_secret))  # type: ignore[union-attr]
            await login(client, DEFAULT_ENDPOINT, 1883, None, client_id="devE")
            thing = Thing(client, "pkE", "devE")
            await thing.start()
            assert await thing.post_properties({"Temp": 1}) == 200
            await client.close()
        finally:
            await modem.close()
            await asyncio.to_thread(emulator.close)


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"POST /auth/register/device HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
)
async def test_the_https_server_answers_a_request_it_cannot_read_with_400_and_goes_on(request_bytes: bytes) -> None:
    """Requests framed by h11: a broken one gets 400 (on b32764a a bad head was dropped
    without an answer), and the server still registers the next device."""
    import ssl

    twin = CloudTwin(respond=False)
    twin.registry.add_product("pkHttps00001", "https-product-secret")
    await twin.start()
    try:
        context = ssl.create_default_context(cadata=twin.ca_pem.decode())
        context.check_hostname = False
        reader, writer = await asyncio.open_connection(twin.host, twin.https_port, ssl=context)
        writer.write(request_bytes)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        reader, writer = await asyncio.open_connection(twin.host, twin.https_port, ssl=context)
        writer.write(b"POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 404 ") and answer.endswith(b'"message":"not found"}'), answer
    finally:
        await twin.stop()


# -- the twin under hostile input (issue 14) ----------------------------------------------------


async def _mqtt_exchange(host: str, port: int, data: bytes, *, read: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4), 10) if read else b""
    finally:
        writer.close()


async def test_the_embedded_broker_takes_no_login_but_the_twins() -> None:
    """A local program cannot reach the devices behind the front: a CONNECT without the twin's
    token gets CONNACK 5 (on b32764a: CONNACK 0, then `#` and a device's property/set)."""
    twin = CloudTwin(respond=True)
    await twin.start()
    try:
        host, port = twin.broker_address()
        for user, password in ((None, None), ("x", b"guess"), (BACKEND_USER, b"not-the-token")):
            answer = await _mqtt_exchange(host, port, Connect("intruder", user, password, 60, True).encode())
            assert answer == b"\x20\x02\x00\x05", (user, answer)
        assert twin.responder is not None  # the twin's own client got in
    finally:
        await twin.stop()


async def test_credentials_with_any_bytes_are_refused_with_connack_4() -> None:
    """Non-ASCII, non-hex passwords and user names: CONNACK 4, never a TypeError in
    compare_digest (on b32764a: no CONNACK, "Task exception was never retrieved")."""
    twin = CloudTwin(respond=False)
    twin.registry.add_product("pkHostile001", "ps")
    twin.registry.add_device("pkHostile001", "dev", "device-secret")
    await twin.start()
    try:
        client_id = "pkHostile001.dev|securemode=3,signmethod=hmacsha256,timestamp=1|"
        for password in ("pässwörd".encode(), b"\xff\xfe\x00", ("é" * 64).encode()):
            connect = Connect(client_id, "dev&pkHostile001", password, 60, True).encode()
            assert await _mqtt_exchange(twin.host, twin.mqtt_port, connect) == b"\x20\x02\x00\x04", password
        connect = Connect(client_id, "dév&pkHostile001", b"00", 60, True).encode()
        assert await _mqtt_exchange(twin.host, twin.mqtt_port, connect) == b"\x20\x02\x00\x04"
    finally:
        await twin.stop()


async def test_an_oversized_connect_is_dropped_before_it_is_read() -> None:
    """A CONNECT announcing 1 MiB: the front reads none of it (at most 8 KiB per CONNECT, so
    300 such connections cost ~2 MB, not 300 MB)."""
    twin = CloudTwin(respond=False)
    await twin.start()
    try:
        reader, writer = await asyncio.open_connection(twin.host, twin.mqtt_port)
        writer.write(b"\x10" + bytes([0x80, 0x80, 0x40]))  # remaining length 1 MiB
        await writer.drain()
        assert await asyncio.wait_for(reader.read(10), 10) == b""  # closed, nothing answered
        writer.close()
    finally:
        await twin.stop()


async def test_a_subscriber_that_does_not_read_is_cut_off(embedded: EmbeddedBroker) -> None:
    """Memory does not grow for a subscriber that never reads: once 64 KiB wait for it, it is
    disconnected (on b32764a the broker buffered without limit: +124 MB)."""
    _, writer = await asyncio.open_connection("127.0.0.1", embedded.port)
    writer.transport.pause_reading()  # never reads: the kernel buffers fill, then the broker's
    writer.write(Connect("sleeper", BACKEND_USER, TOKEN, 60, True).encode())
    topic = b"flood/x"
    writer.write(
        bytes([0x82]) + bytes([2 + 2 + len(topic) + 1]) + b"\x00\x01" + len(topic).to_bytes(2, "big") + topic + b"\x00"
    )
    await writer.drain()

    def flood() -> None:
        pub = Paho(embedded.port, "flooder")
        payload = b"x" * 60000
        for _ in range(400):  # 24 MB offered to the sleeper
            pub.client.publish("flood/x", payload, 0)
        pub.close()

    await asyncio.to_thread(flood)
    await until(lambda: "sleeper" not in embedded._clients, timeout=20)  # cut off past the bound
    writer.close()


async def test_an_https_body_over_the_limit_is_refused_with_bounded_memory() -> None:
    """`Content-Length: 4000000000`: the server stops at its limit with 400 (on b32764a it kept
    1.7 GB before its time-out)."""
    import ssl

    twin = CloudTwin(respond=False)
    await twin.start()
    try:
        context = ssl.create_default_context(cadata=twin.ca_pem.decode())
        context.check_hostname = False
        reader, writer = await asyncio.open_connection(twin.host, twin.https_port, ssl=context)
        writer.write(b"POST /auth/register/device HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000000\r\n\r\n")
        chunk = b"a" * 65536
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            for _ in range(40):  # 2.5 MB, over the 1 MiB limit
                writer.write(chunk)
                await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 10)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
        writer.close()
    finally:
        await twin.stop()
