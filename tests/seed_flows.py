"""The seed document's flows, written as a user of the runtime would write them: with
the command table, `Secret` for secrets, results read from the replies. Replay tests run
them against `fixtures/seed/`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from quecmqtt.aliyun.device import (
    Product,
    learn_https_reply,
    learn_registration_replies,
    login,
    login_credentials,
    register_mqtt,
)
from quecmqtt.aliyun.replies import Registered
from quecmqtt.at import commands as C
from quecmqtt.at.events import MqttMessage, MqttStatus
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.config import AliAuth, MqttConfig
from quecmqtt.secret import Secret

HOST = "iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com"
PK = "i2uqc2dloOl"
DEVICE_SECRET_413 = "c4fa40df9c8078073d75a26be2bc8f58"
REGISTER_PASSWORD = "25f4b80c3fab2ed6e41644a38f2c5b67eac1b505"
REGNWL_PASSWORD = "f9130cc77eff4d4474b28da225509a38e7e78b3a"
PROPERTY_POST = (
    b'{"id":"1681363292898","params":{"Temp":23.9,"Humi":69,"mlux":825,"LightStatus":1},'
    b'"version":"1.0","method":"thing.event.property.post"}'
)
# Secrets that must never show in logs or recorded transcripts of these flows
SECRETS = (
    DEVICE_SECRET_413,
    REGISTER_PASSWORD,
    REGNWL_PASSWORD,
    "d2a03b64a5e06b051f481136668133cf",  # DeviceSecret from /ext/register (4.2.1)
    "3c35df4417faf854be8e780536d84c23",  # DeviceSecret from HTTPS registration (4.2.3)
    "^1^1681709523062^c5cce0a49b03685",  # deviceTokens from /ext/regnwl (4.2.2)
    "^1^1681710731098^563fbcf8c38f88",
)


async def open_and_connect(
    modem: Modem, client_id: str, username: str | None = None, password: Secret | None = None
) -> None:
    reply = await modem.execute(C.QMTOPEN(0, HOST, 1883))
    assert reply.result is not None and reply.result.fields == (0, 0)
    args = (0, client_id) if username is None else (0, client_id, username, password)
    reply = await modem.execute(C.QMTCONN(*args))
    assert reply.result is not None and reply.result.fields == (0, 0, 0)


async def close(modem: Modem) -> None:
    reply = await modem.execute(C.QMTCLOSE(0))
    assert reply.result is not None and reply.result.fields == (0, 0)


async def flow_4_1_1(modem: Modem) -> None:
    await modem.execute(C.QMTCFG["version"](0, 4))
    await modem.execute(C.QMTCFG["aliauth"](0, PK, "device001", Secret(DEVICE_SECRET_413)))
    await open_and_connect(modem, "device001")
    await close(modem)


async def flow_4_1_2(modem: Modem) -> None:
    await modem.execute(C.QMTCFG["version"](0, 4))
    reply = await modem.execute(C.QMTCFG_READ["aliauth"](0))
    assert reply.lines == ()
    client_id = f"{PK}.device001|securemode=2,signmethod=hmacsha256,timestamp=1680937625134|"
    # the document masks the last two characters; the fixture holds a 64-byte placeholder
    password = Secret("0309b31761c30d24d37a25558c5604de308c92eb6ac8656a1981f85783fb2300", "password")
    await open_and_connect(modem, client_id, f"device001&{PK}", password)
    await close(modem)


async def flow_4_1_3(modem: Modem) -> None:
    topic = f"/sys/{PK}/device001/thing/event/property/post"
    with modem.subscribe(MqttMessage) as messages:
        await modem.execute(C.QMTCFG["version"](0, 4))
        reply = await modem.execute(C.QMTCFG_READ["will"](0))
        assert reply.fields("+QMTCFG") == [("will", 0)]
        await modem.execute(C.QMTCFG["aliauth"](0, PK, "device001", Secret(DEVICE_SECRET_413)))
        await open_and_connect(modem, "device001")
        reply = await modem.execute(C.QMTSUB(0, 1, topic + "_reply", 0))
        assert reply.result is not None and reply.result.fields == (0, 1, 0, 1)
        reply = await modem.execute(C.QMTPUBEX(0, 0, 0, 0, topic, len(PROPERTY_POST)), PROPERTY_POST)
        assert reply.result is not None and reply.result.fields == (0, 0, 0)
        message = await messages.get(timeout=2)
        assert isinstance(message, MqttMessage) and message.topic == topic + "_reply"
        answer = json.loads(message.payload)
        assert answer["code"] == 200 and answer["id"] == json.loads(PROPERTY_POST)["id"]
        await close(modem)


async def flow_4_1_3_client(modem: Modem) -> None:
    """Section 4.1.3 again, through MqttClient (as a user of the MQTT layer writes it)."""
    topic = f"/sys/{PK}/device001/thing/event/property/post"
    client = MqttClient(modem, 0, probe=False, publish_form="pubex")
    await client.configure(MqttConfig.only(version=4))
    assert await client.read_config("will") == (0,)
    await client.configure(MqttConfig.only(aliauth=AliAuth(PK, "device001", Secret(DEVICE_SECRET_413))))
    await client.open(HOST, 1883, configure=False)
    await client.connect("device001")  # aliauth: the module signs the login
    granted = await client.subscribe(topic + "_reply", 0)
    assert [(g.topic, g.qos) for g in granted] == [(topic + "_reply", 1)]  # the server granted 1
    await client.publish(topic, PROPERTY_POST, qos=0)
    message = await client.next_message(timeout=2)
    assert isinstance(message, MqttMessage) and message.topic == topic + "_reply"
    answer = json.loads(message.payload)
    assert answer["code"] == 200 and answer["id"] == json.loads(PROPERTY_POST)["id"]
    await client.close()
    await client.aclose()


async def flow_4_2_1(modem: Modem) -> None:
    learn_registration_replies(modem)  # the secret in the reply is known before it is logged or recorded
    with modem.subscribe(MqttMessage, MqttStatus) as events:
        reply = await modem.execute(C.QMTCFG_READ["aliauth"](0))
        assert reply.fields("+QMTCFG") == [("aliauth", "", "", "")]
        await modem.execute(C.QMTCFG["ssl"](0, 1, 2))
        client_id = (
            "864430010001091|securemode=2,authType=register,random=123,signmethod=hmacsha1,"
            "instanceId=iot-06z00hxss3rggno|"
        )
        await open_and_connect(modem, client_id, "meter001&i2uqZnX9tZK", Secret(REGISTER_PASSWORD))
        message = await events.get(timeout=2)
        assert isinstance(message, MqttMessage) and message.topic == "/ext/register"
        assert await events.get(timeout=2) == MqttStatus(0, 1)  # the server closes: the expected end
        result = json.loads(message.payload)
        await modem.execute(
            C.QMTCFG["aliauth"](0, result["productKey"], result["deviceName"], Secret(result["deviceSecret"]))
        )
        await open_and_connect(modem, "meter001")
        await close(modem)


async def flow_4_2_2(modem: Modem) -> None:
    learn_registration_replies(modem)
    with modem.subscribe(MqttMessage, MqttStatus) as events:
        reply = await modem.execute(C.QMTCFG_READ["aliauth"](0))
        assert reply.fields("+QMTCFG") == [("aliauth", "", "", "")]
        await modem.execute(C.QMTCFG["ssl"](0, 1, 2))
        client_id = (
            "Kit001|securemode=-2,authType=regnwl,random=123,signmethod=hmacsha1,instanceId=iot-06z00hxss3rggno|"
        )
        results = []
        for _ in range(2):  # each registration hands out a new clientId and token
            await open_and_connect(modem, client_id, "Kit001&i2uq9ORmOSM", Secret(REGNWL_PASSWORD))
            message = await events.get(timeout=2)
            assert isinstance(message, MqttMessage) and message.topic == "/ext/regnwl"
            assert await events.get(timeout=2) == MqttStatus(0, 1)
            results.append(json.loads(message.payload))
        assert results[0]["clientId"] != results[1]["clientId"]
        latest = results[1]
        await open_and_connect(
            modem,
            f"{latest['clientId']}|securemode=-2,authType=connwl|",
            f"{latest['deviceName']}&{latest['productKey']}",
            Secret(latest["deviceToken"]),
        )
        await close(modem)


async def flow_4_2_3(modem: Modem) -> None:
    url = b"https://iot-auth.cn-shanghai.aliyuncs.com/auth/register/device"
    body = (
        b"productKey=i2uqzmkZsLG&deviceName=device001&random=003"
        b"&sign=277969e6c596f0d127fd1d3bf3229f396a3ddff6&signMethod=hmacsha1"
    )
    await modem.execute(C.QHTTPURL(len(url), 80), url)
    reply = await modem.execute(C.QHTTPPOST(len(body), 120, 120), body)
    assert reply.result is not None and reply.result.fields == (0, 200, 143)
    reply = await modem.execute(C.QHTTPREAD(200), inspect=lambda done: learn_https_reply(modem)(done.body or b""))
    assert reply.body is not None and len(reply.body) == 143
    assert reply.result is not None and reply.result.fields == (0,)
    answer = json.loads(reply.body)
    assert answer["code"] == 200
    data = answer["data"]
    reply = await modem.execute(C.QMTCFG_READ["aliauth"](0))
    assert reply.fields("+QMTCFG") == [("aliauth", "", "", "")]
    await modem.execute(C.QMTCFG["aliauth"](0, data["productKey"], data["deviceName"], Secret(data["deviceSecret"])))
    await open_and_connect(modem, "device001")
    await close(modem)


# -- the same sessions through the Aliyun layer (where the seed shows every secret they need) --

PRODUCT_SECRET_421 = "xTzMxVmm9HUY19Pr"  # masked in the seed as xTzMxVmm9HUY19**; recovered from its sign


async def aliyun_4_1_1(modem: Modem) -> None:
    client = MqttClient(
        modem, 0, MqttConfig.only(version=4, aliauth=AliAuth(PK, "device001", Secret(DEVICE_SECRET_413))), probe=False
    )
    await login(client, HOST, 1883, None, client_id="device001")
    await client.close()
    await client.aclose()


async def aliyun_4_1_2(modem: Modem) -> None:
    client = MqttClient(modem, 0, MqttConfig.only(version=4), probe=False)
    await client.configure()
    assert await client.read_config("aliauth") == ()
    credentials = login_credentials(PK, "device001", Secret(DEVICE_SECRET_413), timestamp=1680937625134)
    await login(client, HOST, 1883, credentials)
    await client.close()
    await client.aclose()


async def aliyun_4_2_1(modem: Modem) -> None:
    client = MqttClient(modem, 0, MqttConfig.only(ssl_context=2), probe=False)
    assert await client.read_config("aliauth") == ("", "", "")
    product = Product("i2uqZnX9tZK", "meter001", Secret(PRODUCT_SECRET_421))
    result = await register_mqtt(
        modem, product, HOST, 1883, client=client, configure_tls=False, client_id="864430010001091",
        instance_id="iot-06z00hxss3rggno", random="123", sign_method="hmacsha1", secure_mode=2,  # the seed's
    )  # fmt: skip
    assert isinstance(result, Registered) and result.device_secret.reveal() == "d2a03b64a5e06b051f481136668133cf"
    await client.aclose()
    aliauth = AliAuth(result.product_key, result.device_name, result.device_secret)
    device = MqttClient(modem, 0, MqttConfig.only(aliauth=aliauth), probe=False)
    await login(device, HOST, 1883, None, client_id="meter001")
    await device.close()
    await device.aclose()


ALIYUN_FLOWS: dict[str, Callable[[Modem], Awaitable[None]]] = {
    "4.1.1-aliauth.txt": aliyun_4_1_1,
    "4.1.2-host-signed.txt": aliyun_4_1_2,
    "4.2.1-register.txt": aliyun_4_2_1,
}

FLOWS: dict[str, Callable[[Modem], Awaitable[None]]] = {
    "4.1.1-aliauth.txt": flow_4_1_1,
    "4.1.2-host-signed.txt": flow_4_1_2,
    "4.1.3-topic.txt": flow_4_1_3,
    "4.1.3-topic-echo.txt": flow_4_1_3,
    "4.2.1-register.txt": flow_4_2_1,
    "4.2.2-regnwl-connwl.txt": flow_4_2_2,
    "4.2.3-https-register.txt": flow_4_2_3,
}
