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

PK, DN, DS = "a1PlatfRm01", "sdk-device", "0123456789abcdef0123456789abcdef"


def sign(method: str, key: str, content: str) -> str:
    digest = {"hmacsha256": hashlib.sha256, "hmacsha1": hashlib.sha1, "hmacmd5": hashlib.md5}[method]
    return hmac.new(key.encode(), content.encode(), digest).hexdigest()


def link_sdk_4_login(timestamp: str = "2524608000000") -> tuple[str, str, str]:
    """As Link SDK 4.x builds it: a fixed timestamp (2050), `_ss=1`, `_v`, `ext=3` and the
    trailing comma of its format string; plain TCP is securemode 3."""
    client_id = f"{PK}.{DN}|timestamp={timestamp},_ss=1,_v=sdk-c-4.1.0,securemode=3,signmethod=hmacsha256,ext=3,|"
    content = f"clientId{PK}.{DN}deviceName{DN}productKey{PK}timestamp{timestamp}"
    return client_id, f"{DN}&{PK}", sign("hmacsha256", DS, content)


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
            assert not any("post_reply" in line or "property/set" in line for line in sent), sent
    finally:
        await asyncio.to_thread(emulator.close)
