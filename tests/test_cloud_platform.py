"""The twin behaves as the platform does toward Aliyun's own device SDKs (issue 14): a login
with `_ss=1` is subscribed to the system reply and downlink topics without a SUBSCRIBE, a login
without it is not; the signature and client id formats are the SDKs' own (Link SDK 4.x
`core_auth_mqtt_clientid`, aliyun-iot-linkkit 1.2.13 `linkkit.py`), computed here by hand."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import socket
import threading
from collections.abc import AsyncIterator

import paho.mqtt.client as mqtt
import pytest
import pytest_asyncio

from quecmqtt.aliyun.alink import Thing
from quecmqtt.aliyun.device import login, login_credentials
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.transport.serial import SerialTransport
from quecmqtt.wire.mqtt import Connect
from tests.peer import until

PK, DN, DS = "a1PlatfRm01", "sdk-device", "0123456789abcdef0123456789abcdef"


def sign(method: str, key: str, content: str) -> str:
    digest = {"hmacsha256": hashlib.sha256, "hmacsha1": hashlib.sha1, "hmacmd5": hashlib.md5}[method]
    return hmac.new(key.encode(), content.encode(), digest).hexdigest()


def link_sdk_4_login(timestamp: str = "2524608000000", dn: str = DN, secret: str = DS) -> tuple[str, str, str]:
    """As Link SDK 4.x builds it: a fixed timestamp (2050), `_ss=1`, `_v`, `ext=3` and the
    trailing comma of its format string; plain TCP is securemode 3."""
    client_id = f"{PK}.{dn}|timestamp={timestamp},_ss=1,_v=sdk-c-4.1.0,securemode=3,signmethod=hmacsha256,ext=3,|"
    content = f"clientId{PK}.{dn}deviceName{dn}productKey{PK}timestamp{timestamp}"
    return client_id, f"{dn}&{PK}", sign("hmacsha256", secret, content)


def python_linkkit_login() -> tuple[str, str, str]:
    """As aliyun-iot-linkkit 1.2.13 builds it: client id `pk&dn`, hmacsha1, the timestamp in
    seconds, `_ss=1` among lan and _v."""
    timestamp = "1700000000"
    client_id = f"{PK}&{DN}|securemode=3,signmethod=hmacsha1,ext=1,_ss=1,lan=Python,_v=1.2.13,timestamp={timestamp}|"
    content = f"clientId{PK}&{DN}deviceName{DN}productKey{PK}timestamp{timestamp}"
    return client_id, f"{DN}&{PK}", sign("hmacsha1", DS, content)


class SdkDevice:
    """A device written the platform's way: connect, publish, never SUBSCRIBE to replies."""

    def __init__(self, port: int, login: tuple[str, str, str]) -> None:
        client_id, username, password = login
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.rc: list[object] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set(username, password)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_connect = lambda c, u, f, rc, p: (self.rc.append(rc), self.connected.set())
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(5) and not self.rc[0].is_failure, self.rc  # type: ignore[attr-defined]

    def post(self, params: dict[str, object], message_id: str) -> None:
        body = {"id": message_id, "version": "1.0", "params": params, "method": "thing.event.property.post"}
        self.client.publish(f"/sys/{PK}/{DN}/thing/event/property/post", json.dumps(body), 0).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest_asyncio.fixture
async def twin() -> AsyncIterator[CloudTwin]:
    twin = CloudTwin()  # the embedded broker: the twin alone
    twin.registry.add_product(PK, "not-used")
    twin.registry.add_device(PK, DN, DS)
    await twin.start()
    yield twin
    await twin.stop()


LOGINS = {"link-sdk-4": link_sdk_4_login, "linkkit-py": python_linkkit_login}


@pytest.mark.parametrize("form", sorted(LOGINS))
async def test_a_device_that_never_subscribes_gets_its_post_reply(twin: CloudTwin, form: str) -> None:
    def device_side() -> dict[str, object]:
        device = SdkDevice(twin.mqtt_port, LOGINS[form]())
        try:
            device.post({"Temp": 21.5}, "101")
            reply = device.messages.get(timeout=5)
            assert reply.topic == f"/sys/{PK}/{DN}/thing/event/property/post_reply"
            result: dict[str, object] = json.loads(reply.payload)
            return result
        finally:
            device.close()

    reply = await asyncio.to_thread(device_side)
    assert reply["id"] == "101" and reply["code"] == 200


async def test_a_login_without_ss_gets_nothing_it_did_not_subscribe_to(twin: CloudTwin) -> None:
    """MQTT.fx-style (no `_ss`): the platform does not subscribe it (Aliyun's document)."""

    def device_side() -> bool:
        client_id, username, password = link_sdk_4_login()
        device = SdkDevice(twin.mqtt_port, (client_id.replace("_ss=1,", ""), username, password))
        try:
            device.post({"Temp": 21.5}, "102")
            try:
                device.messages.get(timeout=1.0)
            except queue.Empty:
                return False
            return True
        finally:
            device.close()

    assert await asyncio.to_thread(device_side) is False


async def test_downlinks_reach_an_auto_subscribed_device(twin: CloudTwin) -> None:
    assert twin.responder is not None

    def connect() -> SdkDevice:
        return SdkDevice(twin.mqtt_port, link_sdk_4_login())

    device = await asyncio.to_thread(connect)
    try:
        task = asyncio.create_task(twin.responder.set_properties(PK, DN, {"LightStatus": 1}, timeout=3))
        message = await asyncio.to_thread(device.messages.get, True, 5)
        assert message.topic == f"/sys/{PK}/{DN}/thing/service/property/set"
        assert json.loads(message.payload)["params"] == {"LightStatus": 1}
        task.cancel()
    finally:
        await asyncio.to_thread(device.close)


async def test_quecmqtts_thing_with_ss_sends_no_subscribe_for_replies(twin: CloudTwin) -> None:
    emulator = await asyncio.to_thread(EmulatorThread, model="EC200U", hosts=twin.hosts())
    try:
        async with Modem(SerialTransport(emulator.path)) as modem, MqttClient(modem, 0) as client:
            credentials = login_credentials(PK, DN, DS, tls=False, auto_subscribe=True)
            assert "_ss=1" in credentials.client_id
            await login(client, DEFAULT_ENDPOINT, 1883, credentials)
            sent: list[str] = []
            modem.observe_commands(lambda command, *rest: sent.append(command.redacted))
            async with Thing(client, PK, DN, auto_subscribed=True) as thing:
                assert await thing.post_properties({"Temp": 23.9}) == 200
                assert await thing.post_event("Alarm", {"Level": 2}) == 200  # the event's reply, unsubscribed
            assert not any("post_reply" in line or "property/set" in line or "rrpc" in line for line in sent), sent
    finally:
        await asyncio.to_thread(emulator.close)


# -- the registration flows and the event post, as the SDKs write them -------------------------

PS = "sdk-product-secret-0001"


def tls_device(
    twin: CloudTwin, ca_file: str, client_id: str, username: str, password: str
) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage], threading.Event]:
    """A paho client over TLS verifying the twin, as the SDKs connect for registration; it
    subscribes to nothing."""
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    closed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.tls_set(ca_certs=ca_file)
    client.username_pw_set(username, password)
    client.on_message = lambda c, u, m: messages.put(m)
    client.on_disconnect = lambda *args: closed.set()
    client.connect("127.0.0.1", twin.mqtt_port, keepalive=60)
    client.loop_start()
    return client, messages, closed


def link_sdk_registration(auth_type: str, dn: str, random: str) -> tuple[str, str, str]:
    """Link SDK 4.x `aiot_dynregmq_api.c`: client id `dn.pk|random,authType,securemode=2,
    signmethod=hmacsha256|` (securemode 2, as the SDK sends it), user `dn&pk`, the password
    HMAC-SHA256 of deviceName..productKey..random.. under the ProductSecret."""
    client_id = f"{dn}.{PK}|random={random},authType={auth_type},securemode=2,signmethod=hmacsha256|"
    return client_id, f"{dn}&{PK}", sign("hmacsha256", PS, f"deviceName{dn}productKey{PK}random{random}")


@pytest_asyncio.fixture
async def registering_twin(tmp_path: object) -> AsyncIterator[tuple[CloudTwin, str]]:
    from pathlib import Path

    twin = CloudTwin()
    twin.registry.add_product(PK, PS)
    twin.registry.add_device(PK, "pre-registered")  # register: the console has the name, no secret yet
    await twin.start()
    ca_file = Path(str(tmp_path)) / "twin-ca.pem"
    ca_file.write_bytes(twin.ca_pem)
    yield twin, str(ca_file)
    await twin.stop()


def post_and_reply(client: mqtt.Client, messages: queue.Queue[mqtt.MQTTMessage], dn: str) -> dict[str, object]:
    body = {"id": "7", "version": "1.0", "params": {"Temp": 20.5}, "method": "thing.event.property.post"}
    client.publish(f"/sys/{PK}/{dn}/thing/event/property/post", json.dumps(body), 1).wait_for_publish(5)
    reply = messages.get(timeout=5)
    assert reply.topic == f"/sys/{PK}/{dn}/thing/event/property/post_reply"
    result: dict[str, object] = json.loads(reply.payload)
    return result


async def test_pre_registration_as_the_link_sdk_does_it(registering_twin: tuple[CloudTwin, str]) -> None:
    twin, ca_file = registering_twin

    def device_side() -> dict[str, object]:
        login = link_sdk_registration("register", "pre-registered", "7fe3")
        client, messages, closed = tls_device(twin, ca_file, *login)
        try:
            pushed = messages.get(timeout=5)  # no SUBSCRIBE: the result is pushed
            assert pushed.topic == "/ext/register"
            assert closed.wait(5)  # and the platform closes, as the seed's 4.2.1 shows (+QMTSTAT: 0,1)
        finally:
            client.loop_stop()
        secret = json.loads(pushed.payload)["deviceSecret"]
        device = SdkDevice(twin.mqtt_port, link_sdk_4_login(dn="pre-registered", secret=secret))
        try:
            return post_and_reply(device.client, device.messages, "pre-registered")
        finally:
            device.close()

    assert (await asyncio.to_thread(device_side))["code"] == 200


async def test_regnwl_then_connwl_as_the_link_sdk_does_it(registering_twin: tuple[CloudTwin, str]) -> None:
    twin, ca_file = registering_twin

    def device_side() -> dict[str, object]:
        client, messages, closed = tls_device(twin, ca_file, *link_sdk_registration("regnwl", "fresh-01", "a1b2"))
        try:
            pushed = messages.get(timeout=5)
            assert pushed.topic == "/ext/regnwl" and closed.wait(5)
        finally:
            client.loop_stop()
        token = json.loads(pushed.payload)
        # Link SDK 4.x `_dynregmq_recv_handler`: the connwl login with the pushed client id and token
        connwl_id = f"{token['clientId']}|authType=connwl,securemode=-2,_ss=1,ext=3,_v=sdk-c-4.1.0|"
        client, messages, _ = tls_device(twin, ca_file, connwl_id, f"fresh-01&{PK}", token["deviceToken"])
        try:
            return post_and_reply(client, messages, "fresh-01")
        finally:
            client.disconnect()
            client.loop_stop()

    assert (await asyncio.to_thread(device_side))["code"] == 200


async def test_https_registration_as_the_link_sdk_does_it(registering_twin: tuple[CloudTwin, str]) -> None:
    """Link SDK 4.x `components/dynreg`: POST /auth/register/device, a form of productKey,
    deviceName, random, sign and signMethod; the secret in ``data``."""
    import http.client
    import ssl
    import urllib.parse

    twin, ca_file = registering_twin

    def device_side() -> dict[str, object]:
        form = {"productKey": PK, "deviceName": "pre-registered", "random": "xyz",
                "sign": sign("hmacsha256", PS, f"deviceNamepre-registeredproductKey{PK}randomxyz"),
                "signMethod": "hmacsha256"}  # fmt: skip
        context = ssl.create_default_context(cafile=ca_file)
        connection = http.client.HTTPSConnection("127.0.0.1", twin.https_port, context=context, timeout=5)
        connection.request("POST", "/auth/register/device", urllib.parse.urlencode(form),
                           {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        response = connection.getresponse()
        assert response.status == 200
        result: dict[str, object] = json.loads(response.read())
        connection.close()
        return result

    reply = await asyncio.to_thread(device_side)
    assert reply["code"] == 200 and isinstance(reply["data"], dict) and len(str(reply["data"]["deviceSecret"])) > 16


async def test_an_event_post_gets_its_reply_without_a_subscribe(twin: CloudTwin) -> None:
    def device_side() -> dict[str, object]:
        device = SdkDevice(twin.mqtt_port, link_sdk_4_login())
        try:  # Link SDK 4.x `aiot_dm_send` of an event: the topic names it, the method too
            body = {"id": "9", "version": "1.0", "params": {"value": {"Level": 2}, "time": 1700000000000},
                    "method": "thing.event.Alarm.post"}  # fmt: skip
            device.client.publish(f"/sys/{PK}/{DN}/thing/event/Alarm/post", json.dumps(body), 0).wait_for_publish(5)
            reply = device.messages.get(timeout=5)
            assert reply.topic == f"/sys/{PK}/{DN}/thing/event/Alarm/post_reply"
            result: dict[str, object] = json.loads(reply.payload)
            return result
        finally:
            device.close()

    reply = await asyncio.to_thread(device_side)
    assert reply["id"] == "9" and reply["code"] == 200 and reply["method"] == "thing.event.Alarm.post"


async def test_ota_rrpc_and_shadow_reach_an_auto_subscribed_sdk_device(twin: CloudTwin, tmp_path: object) -> None:
    """Link SDK 4.x's OTA, shadow and data-model components never SUBSCRIBE (they only map
    topics to handlers): the platform delivers to the `_ss=1` login."""
    from pathlib import Path

    assert twin.responder is not None
    firmware = Path(str(tmp_path)) / "fw.bin"
    firmware.write_bytes(b"\x7fELF" * 1000)
    twin.firmware.add(PK, "2.0.0", firmware, "Md5")
    device = await asyncio.to_thread(SdkDevice, twin.mqtt_port, link_sdk_4_login())
    try:
        inform = {"id": 1, "params": {"version": "1.0.0"}}
        device.client.publish(f"/ota/device/inform/{PK}/{DN}", json.dumps(inform), 0)
        task = await asyncio.to_thread(device.messages.get, True, 5)
        assert task.topic == f"/ota/device/upgrade/{PK}/{DN}"
        data = json.loads(task.payload)["data"]
        assert json.loads(task.payload)["code"] == "1000" and data["signMethod"] == "Md5" and data["size"] == 4000

        call = asyncio.create_task(twin.responder.rrpc(PK, DN, b"ping", timeout=5))
        request = await asyncio.to_thread(device.messages.get, True, 5)
        assert request.topic.startswith(f"/sys/{PK}/{DN}/rrpc/request/") and request.payload == b"ping"
        device.client.publish(request.topic.replace("/request/", "/response/"), b"pong", 0)
        assert (await call).payload == b"pong"

        update = {"method": "update", "state": {"reported": {"Mode": 1}}, "version": 1}
        device.client.publish(f"/shadow/update/{PK}/{DN}", json.dumps(update), 1)
        reply = await asyncio.to_thread(device.messages.get, True, 5)
        assert reply.topic == f"/shadow/get/{PK}/{DN}"
        assert json.loads(reply.payload)["payload"] == {"status": "success", "version": 1}
    finally:
        await asyncio.to_thread(device.close)


# -- each device to its own topics ---------------------------------------------------------------


def test_the_topic_rules() -> None:
    from quecmqtt.cloud.topics import may_publish, may_subscribe

    for topic in (f"/sys/{PK}/{DN}/thing/event/property/post", f"/{PK}/{DN}/user/update",
                  f"/ota/device/progress/{PK}/{DN}", f"/shadow/update/{PK}/{DN}", f"/ext/ntp/{PK}/{DN}/request",
                  f"/ext/rrpc/123/sys/{PK}/{DN}/thing/service/Get", f"/sys/{PK}/{DN}/rrpc/response/9"):  # fmt: skip
        assert may_publish(PK, DN, topic), topic
    for topic in (f"/sys/{PK}/other/thing/event/property/post", "test/abc", f"/shadow/get/{PK}/{DN}",
                  f"/ota/device/upgrade/{PK}/{DN}", f"/sys/{PK}/{DN}x/thing", f"/broadcast/{PK}/all", ""):  # fmt: skip
        assert not may_publish(PK, DN, topic), topic
    for topic_filter in (f"/sys/{PK}/{DN}/#", f"/sys/{PK}/{DN}/thing/service/+", f"/{PK}/{DN}/user/+",
                         f"/ext/rrpc/+/sys/{PK}/{DN}/thing/service/+", f"/shadow/get/{PK}/{DN}",
                         f"/ota/device/upgrade/{PK}/{DN}", f"/broadcast/{PK}/#"):  # fmt: skip
        assert may_subscribe(PK, DN, topic_filter), topic_filter
    for topic_filter in ("#", "+/#", f"/sys/{PK}/+/thing/event/property/post", f"/sys/{PK}/#", "/ext/rrpc/#",
                         f"/ext/rrpc/+/sys/{PK}/+/thing/service/+", f"/shadow/get/{PK}/+", "/broadcast/#",
                         f"/ext/rrpc/#/sys/{PK}/{DN}/x", f"/sys/{PK}/{DN}/#/x", f"/sys/{PK}/{DN}/a+b", ""):  # fmt: skip
        assert not may_subscribe(PK, DN, topic_filter), topic_filter


async def test_a_device_reaches_only_its_own_topics(twin: CloudTwin) -> None:
    """A SUBSCRIBE's foreign filters are refused with 0x80 and the rest granted (the field
    report in aliyun/iotkit-embedded issue 127); a PUBLISH to another device's topic is
    acknowledged and never delivered; the connection stays."""
    twin.registry.add_device(PK, "victim", DS)

    def device_side() -> tuple[list[int], bool, dict[str, object]]:
        victim = SdkDevice(twin.mqtt_port, link_sdk_4_login(dn="victim"))  # auto-subscribed to its property/set
        plain = link_sdk_4_login()
        device = SdkDevice(twin.mqtt_port, (plain[0].replace("_ss=1,", ""), plain[1], plain[2]))
        granted: queue.Queue[list[int]] = queue.Queue()
        device.client.on_subscribe = lambda c, u, mid, codes, p: granted.put([int(code.value) for code in codes])
        try:
            own = f"/sys/{PK}/{DN}/thing/event/+/post_reply"
            device.client.subscribe([(own, 1), ("#", 0), (f"/sys/{PK}/victim/#", 1)])
            codes = granted.get(timeout=5)
            device.client.subscribe("#", 1)
            codes_all_refused = granted.get(timeout=5)
            set_topic = f"/sys/{PK}/victim/thing/service/property/set"
            for qos in (0, 1, 2):  # acknowledged as the protocol wants, then dropped
                device.client.publish(set_topic, b'{"id":"1","params":{"LightStatus":1}}', qos).wait_for_publish(5)
            reply = post_and_reply(device.client, device.messages, DN)  # still connected, still served
            try:
                victim.messages.get(timeout=0.5)
                delivered = True
            except queue.Empty:
                delivered = False
            return [*codes, *codes_all_refused], delivered, reply
        finally:
            device.close()
            victim.close()

    codes, delivered, reply = await asyncio.to_thread(device_side)
    assert codes == [1, 0x80, 0x80, 0x80]  # own granted at QoS 1; #, the victim's, and # alone refused
    assert not delivered and reply["code"] == 200


def _raw_login(port: int, connect: Connect) -> socket.socket:
    """A device that speaks MQTT by hand: CONNECT, then the CONNACK read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(connect.encode())
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


async def test_a_will_on_another_devices_topic_is_dropped_and_a_second_connect_ends_it(twin: CloudTwin) -> None:
    assert twin.responder is not None
    twin.registry.add_device(PK, "victim", DS)
    client_id, username, password = link_sdk_4_login()

    def device_side() -> tuple[bool, bytes]:
        victim = SdkDevice(twin.mqtt_port, link_sdk_4_login(dn="victim"))
        try:
            own = f"/sys/{PK}/{DN}/thing/event/property/post"
            for will in (f"/sys/{PK}/victim/thing/service/property/set", own):
                body = b'{"id":"66","params":{"LightStatus":1},"method":"thing.event.property.post"}'
                connect = Connect(client_id, username, password.encode(), 60, True, will_topic=will.encode(),
                                  will_message=body)  # fmt: skip
                _raw_login(twin.mqtt_port, connect).close()  # gone without DISCONNECT: the will is sent
            try:
                victim.messages.get(timeout=0.5)
                reached = True
            except queue.Empty:
                reached = False
            sock = _raw_login(twin.mqtt_port, Connect(client_id, username, password.encode(), 60, True))
            sock.sendall(Connect(client_id, username, password.encode(), 60, True).encode())
            return reached, sock.recv(16)  # b"": the session ended
        finally:
            victim.close()

    reached, after_second_connect = await asyncio.to_thread(device_side)
    assert not reached and after_second_connect == b""
    await until(lambda: any(params == {"LightStatus": 1} for *_, params in twin.responder.posts), timeout=5)
