"""The session's and the client's contracts through the real driver, a pty, the emulator and
Mosquitto: a message the module can never take is a dead letter at once (no reconnect, the
rest in order), iteration ends, one owner for the PDP context, and init steps that come and
go with the services that own them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest

from quecmqtt.aliyun.device import shipped_roots
from quecmqtt.at.events import MqttMessage
from quecmqtt.at.spec import Command
from quecmqtt.errors import LinkLost
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.outbox import MemoryOutbox
from quecmqtt.mqtt.session import Backoff, Session, SessionState
from quecmqtt.services.http import Http, HttpConfig
from quecmqtt.services.network import Network
from quecmqtt.services.tls import Tls
from tests.broker import Broker, Cloud
from tests.mqtt_rig import BROKER_HOST, rig
from tests.test_mqtt_session import catch_loop_errors, cloud_received

pytestmark = pytest.mark.broker

FAST = Backoff(initial=0.1, maximum=0.5)
_names = itertools.count()


async def reconnected(session: Session, timeout: float = 20) -> None:
    """Until the session has reconnected at least once and is connected."""
    changed = asyncio.Event()
    remove = session.on_state(lambda _state: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while session.reconnects < 1 or not session.connected:
                changed.clear()
                await changed.wait()
    finally:
        remove()


@pytest.mark.parametrize("window", [1, 8])
async def test_a_message_over_the_modules_limit_is_a_dead_letter_at_once(
    broker: Broker, cloud: Cloud, window: int
) -> None:
    errors = catch_loop_errors()
    name = f"limit{next(_names)}"
    cloud.subscribe(f"{name}/#")
    async with rig(broker) as r:
        session = Session(r.modem, BROKER_HOST, 1883, f"dev-{name}", window=window, backoff=FAST)
        # published before the first connect: the form and its limit (4096 on this module,
        # 10240 in the command table) are not known yet, so publish() accepts it
        await session.publish(f"{name}/big", b"x" * 5000)
        expected = [b"%03d" % i for i in range(12)]
        for payload in expected:
            await session.publish(f"{name}/small", payload)
        await session.start(timeout=20)
        await session.flush(timeout=20)
        letters = session.dead_letters()
        assert [(d.entry.topic, d.entry.attempts) for d in letters] == [(f"{name}/big", 0)]
        assert "5000 bytes" in letters[0].reason and "4096" in letters[0].reason
        assert session.reconnects == 0 and session.connected
        arrived = await cloud_received(cloud, set(expected))
        assert arrived == expected if window == 1 else sorted(set(arrived)) == expected
        # once the limit is known, publish() refuses such a message up front
        with pytest.raises(ValueError, match="4096"):
            await session.publish(f"{name}/big", b"x" * 5000)
        await session.stop()
    assert errors == []


async def test_session_messages_end_on_stop(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker) as r:
        session = Session(r.modem, BROKER_HOST, 1883, "dev-end", subscriptions=[("end/down", 1)], backoff=FAST)
        await session.start(timeout=20)
        got: list[bytes] = []
        arrived = asyncio.Event()

        async def consume() -> None:
            async for message in session.messages:
                assert isinstance(message, MqttMessage)
                got.append(message.payload)
                arrived.set()

        consumer = asyncio.create_task(consume())
        await asyncio.to_thread(cloud.publish, "end/down", b"one", 1)
        async with asyncio.timeout(10):
            await arrived.wait()
        await asyncio.to_thread(r.emulator.drop_link, 0, 1)  # a reconnect does not end it
        await reconnected(session)
        assert not consumer.done()
        await session.stop()
        async with asyncio.timeout(5):
            await consumer  # ended, no exception
        assert got == [b"one"] and session.state is SessionState.STOPPED


async def test_client_messages_raise_on_link_loss_and_end_on_close(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0)
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-iter")
        await client.subscribe([("iter/down", 1)])
        await asyncio.to_thread(cloud.publish, "iter/down", b"before", 1)
        got: list[bytes] = []

        async def consume() -> None:
            async for message in client.messages:
                assert isinstance(message, MqttMessage)
                got.append(message.payload)
                if len(got) == 1:
                    await asyncio.to_thread(r.emulator.drop_link, 0, 1)

        with pytest.raises(LinkLost) as caught:
            async with asyncio.timeout(10):
                await consume()
        assert got == [b"before"] and caught.value.code == 1
        # connected again, then closed by the user: the iteration ends quietly
        await client.close()
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-iter")
        consumer = asyncio.create_task(consume())
        await client.close()
        async with asyncio.timeout(5):
            await consumer
        await client.aclose()


async def test_one_pdp_loss_with_a_session_and_a_watch_is_one_deactivate_and_activate(
    broker: Broker, cloud: Cloud
) -> None:
    async with rig(broker) as r:
        sent: list[str] = []

        def count(command: Command, what: str) -> None:
            if what == "sent" and command.spec.id in ("QIDEACT", "QIACT"):
                sent.append(command.spec.id)

        r.modem.observe_commands(count)
        watch = Network(r.modem)
        watch.watch(timeout=20)
        session = Session(r.modem, BROKER_HOST, 1883, "dev-pdp", backoff=FAST)
        await session.start(timeout=20)
        await asyncio.to_thread(r.emulator.deactivate_pdp, 1)
        await reconnected(session)
        await watch.ensure_active()  # nothing left to do: the loss was handled once
        assert sent == ["QIDEACT", "QIACT"]
        await session.stop()
        await watch.close()


async def test_services_remove_their_init_steps_and_do_not_stack(broker: Broker) -> None:
    async with rig(broker) as r:
        modem = r.modem
        before = len(modem.steps)
        async with Network(modem, apn="internet") as network, Network(modem, apn="internet"):
            assert len(modem.steps) == before + 1  # the same context again: replaces, never stacks
            await network.configure_context()
        assert len(modem.steps) == before
        async with Http(modem, HttpConfig()) as http:
            await http.configure()
            async with Http(modem, HttpConfig()):
                assert len(modem.steps) == before + 1
        assert len(modem.steps) == before
        ca = await asyncio.to_thread(shipped_roots)
        async with Tls(modem) as tls:
            await tls.setup(1, ca=ca, clock=None)
            await tls.setup(1, ca=ca, clock=None)
            assert len(modem.steps) == before + 1
        assert len(modem.steps) == before
        async with MqttClient(modem, 0, MqttConfig(keepalive=30)) as client:
            await client.open(BROKER_HOST, 1883)
            await client.connect("dev-steps")
            assert len(modem.steps) > before
        assert len(modem.steps) == before
        for _ in range(2):
            async with Session(modem, BROKER_HOST, 1883, "dev-steps", backoff=FAST) as session:
                assert session.connected
        assert len(modem.steps) == before
        # and the module still starts cleanly without them
        with contextlib.suppress(Exception):
            await asyncio.to_thread(r.emulator.reboot)
        await modem.wait_ready(20)


async def test_links_lost_with_several_messages_in_flight_dead_letter_none(broker: Broker, cloud: Cloud) -> None:
    """The link goes again and again while messages are out (a keep-alive failure, the
    network, the server closing it): none of them is a dead letter, all arrive. A loss the
    server's close (code 1) causes with several messages out blames none of them either:
    they become suspects, sent alone until acknowledged."""
    name = f"flap{next(_names)}"
    cloud.subscribe(f"{name}/#")
    async with rig(broker, rtt=0.1) as r:
        session = Session(r.modem, BROKER_HOST, 1883, f"dev-{name}", window=8, max_attempts=2, backoff=FAST)
        await session.start(timeout=20)
        expected = []
        for round_ in range(3):
            for i in range(8):  # eight out when the link goes
                payload = b"%d-%d" % (round_, i)
                await session.publish(f"{name}/m", payload)
                expected.append(payload)
            await asyncio.to_thread(r.emulator.drop_link, 0, (2, 7, 1)[round_])
            await reconnected(session)
        await session.flush(timeout=30)
        assert session.dead_letters() == []
        assert set(await cloud_received(cloud, set(expected))) >= set(expected)
        await session.stop()


async def test_the_message_that_drops_the_link_is_found_among_many(broker: Broker, cloud: Cloud) -> None:
    name = f"culprit{next(_names)}"
    cloud.subscribe(f"{name}/#")
    async with rig(broker) as r:
        await asyncio.to_thread(r.emulator.refuse_topic, f"{name}/forbidden")
        session = Session(r.modem, BROKER_HOST, 1883, f"dev-{name}", window=8, max_attempts=3, backoff=FAST)
        expected = [b"%02d" % i for i in range(10)]
        for payload in expected[:5]:
            await session.publish(f"{name}/ok", payload)
        await session.publish(f"{name}/forbidden", b"never")
        for payload in expected[5:]:
            await session.publish(f"{name}/ok", payload)
        async with session:
            await session.flush(timeout=60)
            assert [(d.entry.payload, d.entry.attempts) for d in session.dead_letters()] == [(b"never", 3)]
            assert set(await cloud_received(cloud, set(expected))) >= set(expected)


async def test_drop_oldest_under_load_never_fails_the_session(broker: Broker) -> None:
    async with rig(broker, rtt=0.05) as r:
        outbox = MemoryOutbox(max_messages=5, policy="drop-oldest")
        session = Session(r.modem, BROKER_HOST, 1883, "dev-drop", outbox=outbox, window=4, backoff=FAST)
        async with session:
            for i in range(60):
                await session.publish("drop/m", b"%d" % i)
            await session.flush(timeout=30)
            assert session.connected and session.error is None
            assert any("outbox full" in d.reason for d in session.dead_letters())


async def test_a_session_that_cannot_start_leaves_nothing_behind(broker: Broker) -> None:
    async with rig(broker) as r:

        async def enter_and_leave() -> None:
            async with Session(r.modem, "no-such-host.test", 1883, "dev-none", backoff=FAST):
                raise AssertionError("it never connects")

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(enter_and_leave(), 1.0)
        # the index is free again and nothing runs for the session that did not start
        async with Session(r.modem, BROKER_HOST, 1883, "dev-next", backoff=FAST) as session:
            assert session.connected
