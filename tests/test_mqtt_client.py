"""MqttClient through the real driver, a pty, the emulator and a real Mosquitto."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quecmqtt.at import commands as C
from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import ConnectRefused, InvalidArgument, LinkLost, LocalProtocolError, MqttOpenError
from quecmqtt.modem import Overflow
from quecmqtt.mqtt.client import FORM_CTRLZ, FORM_FIXED, FORM_PUBEX, FORM_PUBEX_INLINE, MqttClient
from quecmqtt.mqtt.config import MqttConfig, Will
from quecmqtt.mqtt.state import ClientState
from quecmqtt.secret import Secret
from tests.broker import AUTH_HOST, AUTH_PASSWORD, AUTH_USER, Broker, Cloud
from tests.mqtt_rig import BROKER_HOST, received, rig
from tests.peer import until

pytestmark = pytest.mark.broker

AWKWARD = b'\x00\r\nOK\r\n"quoted",\x1a\x1b\xff end'  # everything a line parser trips on


async def connected(client: MqttClient, client_id: str = "dev-1") -> None:
    await client.open(BROKER_HOST, 1883)
    await client.connect(client_id)


async def test_full_flow_with_binary_payloads(broker: Broker, cloud: Cloud) -> None:
    cloud.subscribe("up/#")
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0, MqttConfig(keepalive=30))
        assert client.state is ClientState.CLOSED
        await connected(client)
        assert client.connected and client.publish_form is None
        granted = await client.subscribe([("down/a", 1), ("down/b", 0)])
        assert [(g.topic, g.qos, g.rejected) for g in granted] == [("down/a", 1, False), ("down/b", 0, False)]

        for qos in (0, 1, 2):
            await client.publish(f"up/{qos}", AWKWARD + bytes([qos]), qos=qos)
        assert client.publish_form == FORM_PUBEX  # probed on the first publish
        got = await received(cloud, 3)
        expected = [(f"up/{q}", AWKWARD + bytes([q]), min(q, 1)) for q in (0, 1, 2)]  # the cloud took QoS 1
        assert [(m.topic, m.payload, m.qos) for m in got] == expected

        seen: list[MqttMessage] = []
        client.on_message(seen.append)
        await asyncio.to_thread(cloud.publish, "down/a", AWKWARD)
        message = await client.next_message(timeout=5)
        assert isinstance(message, MqttMessage)
        assert (message.topic, message.payload) == ("down/a", AWKWARD)
        assert seen == [message]

        await client.unsubscribe(["down/a", "down/b"])
        await asyncio.to_thread(cloud.publish, "down/a", b"after unsubscribe")
        with pytest.raises(TimeoutError):
            await client.next_message(timeout=0.5)

        assert await client.read_config("keepalive") == (30,)
        await client.disconnect()
        assert client.state is ClientState.OPENED
        await client.close()
        assert client.state is ClientState.CLOSED
        await client.aclose()


async def test_many_topics_are_sent_five_per_command(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 1)
        await connected(client, "dev-many")
        topics = [(f"many/{i}", i % 3) for i in range(12)]
        granted = await client.subscribe(topics)
        assert [(g.topic, g.qos) for g in granted] == topics
        await asyncio.to_thread(cloud.publish, "many/11", b"x", 1)
        message = await client.next_message(timeout=5)
        assert isinstance(message, MqttMessage) and message.topic == "many/11" and message.client == 1
        await client.unsubscribe([t for t, _ in topics])
        await client.close()


@pytest.mark.parametrize(
    ("model", "form", "expected"),
    [
        ("EC25", None, FORM_PUBEX),
        # BG96 answers AT+QMTPUB=? with (1-1548) but has only the Ctrl-Z form: the fixed form
        # is refused once, and the Ctrl-Z form kept
        ("BG96", None, FORM_CTRLZ),
        ("BG96", FORM_CTRLZ, FORM_CTRLZ),
        ("BG95", None, FORM_FIXED),  # not the inline QMTPUBEX
        ("BG95", FORM_PUBEX_INLINE, FORM_PUBEX_INLINE),
    ],
)
async def test_publish_forms_per_model(
    broker: Broker, cloud: Cloud, model: str, form: str | None, expected: str
) -> None:
    cloud.subscribe(f"form/{model}")
    async with rig(broker, model=model) as r:
        client = MqttClient(r.modem, 2, publish_form=form)
        await connected(client, f"dev-{model}")
        payload = b"plain, text" if expected in (FORM_CTRLZ, FORM_PUBEX_INLINE) else AWKWARD
        await client.publish(f"form/{model}", payload, qos=1)
        assert client.publish_form == expected
        got = await received(cloud, 1)
        assert [m.payload for m in got] == [payload]
        if expected == FORM_CTRLZ:
            with pytest.raises(InvalidArgument, match="Ctrl-Z"):
                await client.publish(f"form/{model}", b"a\x1ab", qos=1)
            await client.publish(f"form/{model}", b"still fine", qos=1)  # no msg id leaked
            assert client._ids.in_flight == set()
        await client.close()


async def test_pipelined_publishes_keep_several_in_flight(broker: Broker, cloud: Cloud) -> None:
    cloud.subscribe("pipe")
    async with rig(broker, rtt=0.2) as r:
        client = MqttClient(r.modem, 0)
        await connected(client, "dev-pipe")
        handles = [await client.publish_nowait("pipe", b"%d" % i, qos=1) for i in range(8)]
        # all eight were taken by the module before the first PUBACK could be back (rtt 0.2 s)
        assert len(client._ids.in_flight) == 8
        assert len({h.msg_id for h in handles}) == 8
        await asyncio.gather(*(h.result() for h in handles))
        assert client._ids.in_flight == set()
        got = await received(cloud, 8)
        assert [m.payload for m in got] == [b"%d" % i for i in range(8)]
        await client.close()


async def test_wrong_password_is_a_connect_refusal(broker: Broker) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0)
        await client.open(AUTH_HOST, 1883)
        with pytest.raises(ConnectRefused) as caught:
            await client.connect("dev-auth", AUTH_USER, Secret("wrong-password"))
        assert caught.value.return_code in (4, 5)
        assert "wrong-password" not in str(caught.value)
        # the broker closes the connection after the refusal (+QMTSTAT) or leaves it open
        assert client.state in (ClientState.OPENED, ClientState.CLOSED)
        await client.close()
        await client.open(AUTH_HOST, 1883)
        await client.connect("dev-auth", AUTH_USER, Secret(AUTH_PASSWORD))
        assert client.connected
        await client.close()


async def test_open_failures_carry_the_module_result(broker: Broker) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 3)
        with pytest.raises(MqttOpenError) as caught:
            await client.open("no-such-host.test", 1883)
        assert caught.value.result != 0 and "no-such-host.test" in str(caught.value)
        assert client.state is ClientState.CLOSED
        await connected(client, "dev-after-failure")  # the index is usable again
        await client.close()


async def test_misuse_raises_before_anything_is_sent(broker: Broker) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0)
        with pytest.raises(LocalProtocolError, match="closed"):
            await client.publish("t", b"x")
        with pytest.raises(LocalProtocolError):
            await client.subscribe("t")
        await client.open(BROKER_HOST, 1883)
        with pytest.raises(LocalProtocolError, match="opened"):
            await client.publish("t", b"x")
        with pytest.raises(InvalidArgument, match="quote"):
            await client.connect('dev"1')
        assert client.state is ClientState.OPENED  # a refused argument changed nothing
        await client.connect("dev-1")
        with pytest.raises(InvalidArgument, match="quote"):
            await client.publish('to"pic', b"x", qos=1)
        with pytest.raises(InvalidArgument, match="QoS"):
            await client.publish("t", b"x", qos=3)
        assert client._ids.in_flight == set()
        with pytest.raises(InvalidArgument):
            MqttClient(r.modem, 6)
        with pytest.raises(LocalProtocolError):
            MqttClient(r.modem, 0)  # index 0 is taken by `client`
        await client.close()


async def test_link_drop_fails_pending_publishes_and_is_reported(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker, rtt=0.4) as r:
        client = MqttClient(r.modem, 0)
        reasons: list[str] = []
        client.on_link_event(reasons.append)
        await connected(client)
        handle = await client.publish_nowait("t", b"x", qos=1)
        r.emulator.drop_link(0, 2)
        with pytest.raises(LinkLost):
            await handle.result()
        assert client.state is ClientState.CLOSED and client.last_status == 2
        assert reasons == ["+QMTSTAT: 0,2"]
        assert client._ids.in_flight == set()
        await connected(client)  # and it opens again
        await client.close()


async def test_own_disconnect_is_not_a_link_loss(broker: Broker) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0)
        reasons: list[str] = []
        client.on_link_event(reasons.append)
        await connected(client)
        await client.disconnect()
        await client.close()
        await r.modem.execute(C.AT())  # a round trip: all the module said before it has been dealt with
        assert reasons == [] and client.state is ClientState.CLOSED


async def test_configuration_is_reapplied_after_a_reboot(broker: Broker) -> None:
    config = MqttConfig(keepalive=45, will=Will("wills/dev", "gone", 1, True))
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0, config)
        reasons: list[str] = []
        client.on_link_event(reasons.append)
        await connected(client)
        assert await client.read_config("keepalive") == (45,)
        await asyncio.to_thread(r.emulator.reboot)
        await r.modem.wait_ready(10)
        assert client.state is ClientState.CLOSED and reasons and "reset" in reasons[0]
        assert await client.read_config("keepalive") == (45,)
        assert (await client.read_config("will"))[:4] == (1, 1, 1, "wills/dev")
        await connected(client)
        await client.close()


async def test_buffer_mode_reads_each_slot(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0, MqttConfig(recv_buffer=True, recv_length=True))
        await connected(client)
        await client.subscribe("buffered", 1)
        for i in range(3):
            await asyncio.to_thread(cloud.publish, "buffered", b"msg %d\r\n" % i)
        payloads = []
        for _ in range(3):
            message = await client.next_message(timeout=5)
            assert isinstance(message, MqttMessage)
            payloads.append(message.payload)
        assert sorted(payloads) == [b"msg %d\r\n" % i for i in range(3)]
        await client.close()


async def test_a_full_queue_reports_what_it_dropped(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0, queue_size=5)
        await connected(client)
        await client.subscribe("flood", 1)
        r.emulator.burst(0, "flood", 12)
        await until(lambda: client._queue.dropped_total >= 7, timeout=10)
        first = await client.next_message(timeout=5)
        assert first == Overflow(7)
        rest = [await client.next_message(timeout=5) for _ in range(5)]
        assert all(isinstance(m, MqttMessage) for m in rest)
        await client.close()


async def test_secrets_stay_out_of_the_transcript(broker: Broker, tmp_path: Path) -> None:
    record = tmp_path / "session.txt"
    async with rig(broker, record=record) as r:
        client = MqttClient(r.modem, 0)
        await client.open(AUTH_HOST, 1883)
        await client.connect("dev-rec", AUTH_USER, Secret(AUTH_PASSWORD))
        await client.publish("dev/secret", Secret(b"payload-secret-value"), qos=1)
        await client.close()
    text = record.read_text()
    assert AUTH_PASSWORD not in text and "payload-secret-value" not in text
    assert "QMTCONN" in text
