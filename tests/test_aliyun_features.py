"""The Link SDK's device features through the real driver, a pty, the emulated module and the
cloud twin (its embedded broker): the thing model checked on both sides, RRPC (system and
synchronous services) within the platform's 8 s, and the device shadow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from quecmqtt.aliyun.alink import Thing
from quecmqtt.aliyun.device import login, login_credentials
from quecmqtt.aliyun.shadow import DeviceShadow, ShadowError
from quecmqtt.aliyun.tsl import ThingModel, TslError
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.responder import Responder
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.transport.serial import SerialTransport
from tests.peer import until

PK, DN, DS = "i2uqc2dloOl", "device001", "c4fa40df9c8078073d75a26be2bc8f58"
TSL = Path(__file__).parent.parent / "fixtures" / "tsl" / "seed-product.json"
SEED_POST = {"Temp": 23.9, "Humi": 69, "mlux": 825, "LightStatus": 1}  # the seed's 4.1.3 post


@dataclass
class Rig:
    twin: CloudTwin
    responder: Responder
    modem: Modem
    client: MqttClient
    thing: Thing


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    twin = CloudTwin()
    twin.registry.add_product(PK, "not-used")
    twin.registry.add_device(PK, DN, DS)
    twin.load_model(PK, TSL)
    await twin.start()
    assert twin.responder is not None
    emulator = await asyncio.to_thread(EmulatorThread, model="EC200U", hosts=twin.hosts())
    try:
        async with Modem(SerialTransport(emulator.path)) as modem, MqttClient(modem, 0) as client:
            await login(client, DEFAULT_ENDPOINT, 1883, login_credentials(PK, DN, DS, tls=False))
            async with Thing(client, PK, DN) as thing:
                yield Rig(twin, twin.responder, modem, client, thing)
    finally:
        await asyncio.to_thread(emulator.close)
        await twin.stop()


# -- thing model ------------------------------------------------------------------------------


def test_the_model_reads_the_console_export() -> None:
    model = ThingModel.load(TSL)
    assert {"Temp", "Humi", "mlux", "LightStatus", "Location", "Samples"} <= set(model.properties)
    assert model.services["GetStatus"].call_type == "sync" and "Uptime" in model.services["GetStatus"].outputs
    model.check_properties(SEED_POST)
    model.check_properties({"Temp": {"value": -40, "time": 1524448722000}, "Location": {"Longitude": 121.4}})
    model.check_event("Alarm", {"Level": 2})


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"Temp": 130.5}, "Temp: 130.5 is above the maximum 120"),
        ({"Humi": -1}, "Humi: -1 is below the minimum 0"),
        ({"Humi": 69.5}, "Humi: 69.5 is not a whole number"),
        ({"Humi": "69"}, "Humi: '69' is not a number"),
        ({"LightStatus": True}, "LightStatus: True is not an integer"),
        ({"LightStatus": 2}, "LightStatus: 2 is not one of its values (0, 1)"),
        ({"Mode": 3}, "Mode: 3 is not one of its values (0, 1, 2)"),
        ({"Label": "é" * 9}, "Label: the text is 18 bytes, longer than its length 16"),
        ({"Location": {"Longitude": 200}}, "Location.Longitude: 200 is above the maximum 180"),
        ({"Location": {"Height": 1}}, "Location: Height is not one of its items (Longitude, Latitude)"),
        ({"Samples": [1, 2, 3, 4, 5]}, "Samples: 5 elements, more than its size 4"),
        ({"Samples": [1, 2000]}, "Samples[1]: 2000 is above the maximum 1000"),
        ({"LastSeen": "yesterday"}, "LastSeen: 'yesterday' is not a date"),
        ({"Temp": float("nan")}, "Temp: nan is not a finite float"),
        ({"Pressure": 1013}, "Pressure: not a property of this thing model"),
        ({}, "at least one property"),
    ],
)
def test_the_model_refuses_what_it_does_not_allow(params: dict[str, object], says: str) -> None:
    with pytest.raises(TslError, match=".*".join(map(_escape, says.split(" ")))):
        ThingModel.load(TSL).check_properties(params)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(
    "document",
    ['{"properties": [{"identifier": "x"}]}', "[1, 2]", '{"name": "no model"}', "not json",
     '{"properties": [{"identifier": "x", "dataType": {"type": "enum", "specs": {"on": "1"}}}]}'],
)  # fmt: skip
def test_a_file_that_is_not_a_thing_model_is_refused_with_why(document: str) -> None:
    with pytest.raises(TslError, match=r"thing model|not JSON"):
        ThingModel.from_json(document)


async def test_the_seeds_post_passes_and_an_out_of_range_one_is_refused_locally_then_by_the_twin(rig: Rig) -> None:
    assert await rig.thing.post_properties(SEED_POST) == 200
    assert rig.responder.posts[-1][3] == SEED_POST
    rig.thing.model = ThingModel.load(TSL)
    sent: list[str] = []
    rig.modem.observe_commands(lambda command, what: sent.append(command.redacted) if what == "sent" else None)
    with pytest.raises(TslError, match="Temp: 130 is above the maximum 120"):
        await rig.thing.post_properties({"Temp": 130, "Humi": 50})
    assert not any("QMTPUB" in line for line in sent)  # refused before anything went out
    rig.thing.model = None  # forced through: the platform's check answers
    assert await rig.thing.post_properties({"Temp": 130}) == 6307
    assert await rig.thing.post_properties({"Humi": "50"}) == 6306
    assert rig.responder.posts[-1][3] == SEED_POST  # neither was kept


async def test_the_twin_drops_unknown_properties_and_says_so(rig: Rig) -> None:
    reply = await rig.thing._request(  # the whole reply, as the platform sends it
        f"/sys/{PK}/{DN}/thing/event/property/post", "thing.event.property.post",
        {"Temp": 20.5, "Pressure": 1013}, 10,
    )  # fmt: skip
    assert reply["code"] == 200 and reply["data"] == {"Pressure": "tsl parse: params not exist"}
    assert rig.responder.posts[-1][3] == {"Temp": 20.5}


async def test_events_are_checked_against_their_output_data(rig: Rig) -> None:
    assert await rig.thing.post_event("Alarm", {"Level": 2}) == 200
    assert await rig.thing.post_event("Alarm", {"Level": 7}) == 6309
    assert await rig.thing.post_event("Flood", {"Level": 1}) == 6321


# -- RRPC ---------------------------------------------------------------------------------------


async def test_system_rrpc_gets_the_handlers_answer_within_the_platforms_limit(rig: Rig) -> None:
    rig.thing.on_rrpc(lambda payload: b"pong:" + payload)
    result = await rig.responder.rrpc(PK, DN, b"ping \x00\xff")
    assert (result.code, result.payload) == ("SUCCESS", b"pong:ping \x00\xff")


async def test_rrpc_without_an_answer_times_out_and_an_offline_device_is_offline(rig: Rig) -> None:
    result = await rig.responder.rrpc(PK, DN, b"ping", timeout=0.5)  # no handler: never answered
    assert result.code == "TIMEOUT"
    assert (await rig.responder.rrpc(PK, "nobody", b"ping")).code == "OFFLINE"
    with pytest.raises(ValueError, match="1000-8000 ms"):
        await rig.responder.rrpc(PK, DN, b"ping", timeout=9)


async def test_a_synchronous_service_is_answered_on_the_rrpc_topic(rig: Rig) -> None:
    rig.thing.on_service("GetStatus", lambda params: {"Uptime": 42 if params.get("Verbose") else 0})
    reply = await rig.responder.call_sync_service(PK, DN, "GetStatus", {"Verbose": 1})
    assert reply["code"] == 200 and reply["data"] == {"Uptime": 42}


async def test_an_unknown_service_gets_the_platforms_error(rig: Rig) -> None:
    reply = await rig.responder.call_sync_service(PK, DN, "SelfDestruct", {})
    assert reply["code"] == 6321 and "service not exist" in reply["message"]
    twin_without_model = rig.responder.models.pop(PK)
    try:  # no model on the platform: the device says it has no such service
        reply = await rig.responder.call_sync_service(PK, DN, "SelfDestruct", {})
        assert reply["code"] == 460
    finally:
        rig.responder.models[PK] = twin_without_model


# -- shadow -------------------------------------------------------------------------------------


async def test_the_shadow_keeps_versions_and_pushes_the_desired_state(rig: Rig) -> None:
    shadow = DeviceShadow(rig.thing)
    await shadow.start()
    with pytest.raises(ShadowError) as empty:
        await shadow.get()
    assert empty.value.code == 407
    assert await shadow.report({"LightStatus": 0}) == 1
    assert await shadow.report({"LightStatus": 1, "Mode": 2}) == 2
    document = await shadow.get()
    assert document["state"]["reported"] == {"LightStatus": 1, "Mode": 2}
    applied: list[dict[str, object]] = []
    shadow.on_desired(applied.append)
    version = await rig.responder.set_desired(PK, DN, {"LightStatus": 0})
    await until(lambda: applied == [{"LightStatus": 0}], timeout=5)
    stored = rig.responder.shadows[(PK, DN)]
    await until(lambda: not stored.desired, timeout=5)  # the device cleared it
    assert stored.version == version + 1
    shadow.version = 0  # a device that lost track: 409, a get, and the update goes through
    assert await shadow.report({"Mode": 1}) == version + 2
    shadow.close()


async def test_a_device_that_lost_track_reports_to_an_empty_shadow_with_a_version(rig: Rig) -> None:
    from quecmqtt.cloud.shadow import Shadow

    rig.responder.shadows[(PK, DN)] = Shadow(version=5)  # desired set, then cleared: empty at 5
    shadow = DeviceShadow(rig.thing)
    await shadow.start()
    assert await shadow.report({"Mode": 1}) == 1  # 409, a get (407: empty), cleared to 0, sent again
    assert rig.responder.shadows[(PK, DN)].reported == {"Mode": 1}
    shadow.close()


def test_the_platforms_shadow_refusals() -> None:
    from quecmqtt.cloud import shadow

    document = shadow.Shadow()

    def code(message: object) -> str:
        return str(shadow.handle(document, message)["payload"]["content"]["errorcode"])

    assert code([1]) == "400"
    assert code({"state": {}}) == "401"
    assert code({"method": "update", "version": 1}) == "402"
    assert code({"method": "update", "state": {"reported": {"a": 1}}, "version": "1"}) == "403"
    assert code({"method": "update", "state": {}, "version": 1}) == "404"
    assert code({"method": "update", "state": {"reported": {}}, "version": 1}) == "405"
    assert code({"method": "patch", "state": {}, "version": 1}) == "406"
    assert code({"method": "get"}) == "407"
    many = {f"p{i}": i for i in range(129)}
    assert code({"method": "update", "state": {"reported": many}, "version": 1}) == "408"
    assert (
        shadow.handle(document, {"method": "update", "state": {"reported": {"a": 1}}, "version": 5})["payload"][
            "status"
        ]
        == "success"
    )
    assert code({"method": "update", "state": {"reported": {"a": 2}}, "version": 5}) == "409"
    cleared = shadow.handle(document, {"method": "update", "state": {"reported": {"a": 2}}, "version": -1})
    assert cleared["payload"] == {"status": "success", "version": 0} and document.reported == {}
    assert json.dumps(cleared)  # what goes on the wire is JSON


# -- the twin under hostile input --------------------------------------------------------------


async def test_no_message_silences_the_platform_side(rig: Rig) -> None:
    post = f"/sys/{PK}/{DN}/thing/event/property/post"
    hostile = [
        b"[" * 3000,  # deeper than the JSON parser goes
        json.dumps({"id": "1", "params": {"Temp": 10**400}}).encode(),  # no float holds it
        json.dumps({"id": "2", "params": {"Temp": {"value": {"x": 1}}}}).encode(),
        json.dumps({"id": "3", "params": ["Temp"]}).encode(),
        b'{"id": "4", "params": {"Label": "\\ud800"}}',
    ]
    for payload in hostile:
        await rig.client.publish(post, payload, 1)
    await rig.client.publish(f"/shadow/update/{PK}/made-up-{'x' * 50}", b'{"method":"get"}', 1)
    await rig.client.publish(f"/ota/device/inform/{PK}/made-up", b'{"params":{"version":"1"}}', 1)
    assert await rig.thing.post_properties(SEED_POST) == 200  # still answering
    assert (PK, f"made-up-{'x' * 50}") not in rig.responder.shadows  # no state for made-up names
    assert (PK, "made-up") not in rig.responder.versions


async def test_names_that_cannot_be_topics_are_refused_before_anything_is_sent(rig: Rig) -> None:
    for call in (
        rig.responder.set_properties(PK, "dev+", {}),
        rig.responder.call_sync_service(PK, DN, "a/b", {}),
        rig.responder.call_service(PK, DN, "#", {}),
        rig.responder.rrpc(PK, "", b"x"),
        rig.responder.set_desired(PK, "dev\x00", {"a": 1}),
    ):
        with pytest.raises(ValueError, match="cannot be part of a topic"):
            await call
    assert await rig.thing.post_properties(SEED_POST) == 200  # the responder's link is still up


def test_both_models_agree_on_the_edges() -> None:
    from quecmqtt.cloud.thingmodel import PlatformModel, Refused

    device, platform = ThingModel.load(TSL), PlatformModel.load(TSL)
    struct = {"properties": [{"identifier": "Reading", "dataType": {"type": "struct", "specs": [
        {"identifier": "value", "dataType": {"type": "int", "specs": {"min": "0", "max": "9"}}},
        {"identifier": "time", "dataType": {"type": "date", "specs": {}}}]}}]}  # fmt: skip
    for params, ok in (
        ({"Samples": [0]}, True),
        ({"LastSeen": "1700000000000"}, True),
        ({"Humi": 2**31 - 1}, False),  # an int, but above the model's maximum of 100
        ({"Temp": {"value": 20.5, "time": 1}}, True),
        ({"Temp": 10**400}, False),
    ):
        try:
            device.check_properties(params)
            device_ok = True
        except TslError:
            device_ok = False
        try:
            platform.judge_properties(params)
            platform_ok = True
        except Refused:
            platform_ok = False
        assert device_ok == platform_ok == ok, params
    ThingModel.from_json(json.dumps(struct)).check_properties({"Reading": {"value": 3, "time": "1"}})
    PlatformModel(struct).judge_properties({"Reading": {"value": 3, "time": "1"}})
    with pytest.raises(TslError, match=r"Reading\.value: 12 is above the maximum 9"):
        ThingModel.from_json(json.dumps(struct)).check_properties({"Reading": {"value": 12}})
    huge = {"properties": [{"identifier": "T", "dataType": {"type": "text", "specs": {"length": "1e400"}}}]}
    ThingModel.from_json(json.dumps(huge)).check_properties({"T": "short"})
    PlatformModel(huge).judge_properties({"T": "short"})


async def test_a_handler_that_returns_the_wrong_thing_is_logged_not_sent(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.thing.on_rrpc(lambda payload: "text, not bytes")  # type: ignore[arg-type,return-value]
    rig.thing.on_service("GetStatus", lambda params: {"Uptime": object()})
    assert (await rig.responder.rrpc(PK, DN, b"ping", timeout=1)).code == "TIMEOUT"
    reply = await rig.responder.call_sync_service(PK, DN, "GetStatus", {})
    assert reply["code"] == 460
    text = caplog.text
    assert "RRPC handler failed" in text and "returns bytes, not str" in text and "handler for GetStatus failed" in text
