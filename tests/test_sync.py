"""The blocking facade drives the same runtime from plain code."""

from __future__ import annotations

import json

import pytest

from quecmqtt.at import commands as C
from quecmqtt.at.events import MqttMessage
from quecmqtt.emulator import EmulatorThread
from quecmqtt.errors import CommandError, InvalidArgument
from quecmqtt.mqtt.session import SessionState
from quecmqtt.mqtt.sync import SyncMqttClient, SyncSession
from quecmqtt.sync import SyncModem
from quecmqtt.transcripts.format import Transcript
from quecmqtt.transcripts.replay import ReplayTransport
from tests.broker import Broker, Cloud
from tests.conftest import SEED
from tests.seed_flows import PROPERTY_POST


def test_sync_facade_runs_seed_4_1_3() -> None:
    transport = ReplayTransport(str(SEED / "4.1.3-topic.txt"), chunking="bytes")
    topic = "/sys/i2uqc2dloOl/device001/thing/event/property/post"
    with SyncModem(transport, init_script=False, reconcile=False) as modem:
        messages = modem.subscribe(MqttMessage)
        modem.execute(C.QMTCFG["version"](0, 4))
        modem.execute(C.QMTCFG_READ["will"](0))
        modem.execute(C.QMTCFG["aliauth"](0, "i2uqc2dloOl", "device001", "c4fa40df9c8078073d75a26be2bc8f58"))
        assert modem.execute(C.QMTOPEN(0, "iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com", 1883)).result is not None
        modem.execute(C.QMTCONN(0, "device001"))
        modem.execute(C.QMTSUB(0, 1, topic + "_reply", 0))
        reply = modem.execute(C.QMTPUBEX(0, 0, 0, 0, topic, len(PROPERTY_POST)), PROPERTY_POST)
        assert reply.result is not None and reply.result.fields == (0, 0, 0)
        message = messages.get(timeout=2)
        assert isinstance(message, MqttMessage) and json.loads(message.payload)["code"] == 200
        modem.execute(C.QMTCLOSE(0))
    transport.assert_complete()


def test_sync_facade_raises_the_runtime_errors() -> None:
    transcript = Transcript.loads("# quecmqtt transcript 1\n> AT+CPIN?\\r\n< \\r\\n+CME ERROR: 10\\r\\n\n")
    with (
        SyncModem(ReplayTransport(transcript), init_script=False, reconcile=False) as modem,
        pytest.raises(CommandError) as info,
    ):
        modem.execute(C.CPIN_READ())
    assert info.value.cme == 10
    assert "SIM not inserted".lower() in str(info.value).lower()


@pytest.mark.broker
def test_sync_session_and_client_against_the_emulator(broker: Broker, cloud: Cloud) -> None:
    cloud.subscribe("sync/up")
    with EmulatorThread(hosts=broker.hosts()) as emulator, SyncModem(emulator.path) as modem:
        with SyncSession(modem, "broker.test", 1883, "dev-sync", subscriptions=[("sync/down", 1)]) as session:
            assert session.connected and session.state is SessionState.CONNECTED
            entry = session.publish("sync/up", b"from a script")
            assert entry.qos == 1
            session.flush(10)
            assert cloud.messages.get(timeout=5).payload == b"from a script"
            cloud.publish("sync/down", b"to a script")
            message = session.next_message(timeout=5)
            assert isinstance(message, MqttMessage) and message.payload == b"to a script"
            with pytest.raises(InvalidArgument):
                session.publish("sync/#", b"x")
        assert session.state is SessionState.STOPPED
        client = SyncMqttClient(modem, 1)
        client.open("broker.test", 1883)
        client.connect("dev-sync-client")
        assert [g.qos for g in client.subscribe([("sync/c", 1)])] == [1]
        client.publish("sync/up", b"plain client", qos=1)
        assert cloud.messages.get(timeout=5).payload == b"plain client"
        client.disconnect()
        client.close()
        assert not client.connected
