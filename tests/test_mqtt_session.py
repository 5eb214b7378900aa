"""The session under every fault the emulator injects, during a stream of QoS 1 publishes and
subscribed deliveries: through the real driver, a pty, the emulator and a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import ConnectRefused, InvalidArgument, SessionFailed
from quecmqtt.modem import State
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.outbox import MemoryOutbox
from quecmqtt.mqtt.session import Backoff, Session, SessionState
from quecmqtt.secret import Secret
from tests.broker import AUTH_HOST, AUTH_PASSWORD, AUTH_USER, Broker, Cloud
from tests.mqtt_rig import BROKER_HOST, Rig, rig
from tests.peer import wait_state

pytestmark = pytest.mark.broker

FAST = Backoff(initial=0.1, maximum=1.0)
_names = itertools.count()


def catch_loop_errors() -> list[dict[str, Any]]:
    """Everything the event loop would report (an exception nobody retrieved, a failed
    callback): the test asserts it stays empty."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    return errors


async def cloud_received(cloud: Cloud, wanted: set[bytes], timeout: float = 20.0) -> list[bytes]:
    """Payloads the cloud side got, in arrival order, until all of `wanted` came."""

    def take() -> list[bytes]:
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while not wanted <= set(out) and time.monotonic() < deadline:
            try:
                out.append(cloud.messages.get(timeout=0.1).payload)
            except Exception:
                continue
        return out

    return await asyncio.to_thread(take)


def non_decreasing(values: list[bytes]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


Fault = Callable[[Rig], Awaitable[None]]


async def _unplug(r: Rig) -> None:
    await asyncio.to_thread(r.emulator.unplug)
    await wait_state(r.modem, State.PORT_LOST, timeout=10)  # until the driver has seen it go
    await asyncio.to_thread(r.emulator.replug)


async def _stall(r: Rig) -> None:
    # The fault is a module silent for 3 s (about one command time-out): its length is the
    # fault's parameter, not a wait for something to happen. A module silent until it is
    # reset is covered in virtual time (tests/test_virtual_time.py).
    await asyncio.to_thread(r.emulator.stall, True)
    await asyncio.sleep(3.0)
    await asyncio.to_thread(r.emulator.stall, False)


async def _garbage(r: Rig) -> None:
    for noise in (b"\x00\xfe\xff\r\n", b"\r\n+QXYZ: 1,2\r\n", b"\xff" * 40, b"\r\n+QMTRECV: 0,garbage\r\n"):
        await asyncio.to_thread(r.emulator.inject, noise)


def _call(method: str, *args: Any) -> Fault:
    async def fault(r: Rig) -> None:
        await asyncio.to_thread(getattr(r.emulator, method), *args)

    return fault


FAULTS: dict[str, Fault] = {
    **{f"drop-link-{code}": _call("drop_link", 0, code) for code in (1, 2, 3, 4, 5, 6, 7)},
    "reboot": _call("reboot"),
    "unplug-replug": _unplug,
    "pdp-loss": _call("deactivate_pdp", 1),
    "stall": _stall,
    "fragment": _call("fragment", 3),
    "garbage": _garbage,
    "delay-urcs": _call("delay_urcs", 0.3),
    "burst": _call("burst", 0, "noise/burst", 50, b"burst"),  # 50 messages at once, mid-stream
    "qmtping": _call("inject", b"\r\n+QMTPING: 0,1\r\n"),  # the module's keep-alive failed
}
BREAKS_THE_LINK = {name for name in FAULTS if name.startswith("drop-link")} | {
    "reboot",
    "unplug-replug",
    "pdp-loss",
    "qmtping",
}


@pytest.mark.parametrize("window", [1, 8])
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_stream_survives(broker: Broker, cloud: Cloud, fault: str, window: int) -> None:
    await _stream_survives(broker, cloud, fault, window, "EC200U")


# a representative subset of the matrix on the other families (the whole one would take the
# suite past its time budget): a lost link, a reboot, a lost context, and fragmented output
@pytest.mark.parametrize("model", ["EC25", "BG96", "BG95"])
@pytest.mark.parametrize("fault", ["drop-link-1", "reboot", "pdp-loss", "fragment"])
async def test_stream_survives_on_every_family(broker: Broker, cloud: Cloud, fault: str, model: str) -> None:
    await _stream_survives(broker, cloud, fault, 5, model)


async def _stream_survives(broker: Broker, cloud: Cloud, fault: str, window: int, model: str) -> None:
    errors = catch_loop_errors()
    name = f"s{next(_names)}"
    cloud.subscribe(f"up/{name}")
    async with rig(broker, rtt=0.05, model=model) as r:
        session = Session(
            r.modem,
            BROKER_HOST,
            1883,
            f"dev-{name}",
            subscriptions=[(f"down/{name}", 1)],
            window=window,
            backoff=FAST,
            config=MqttConfig(keepalive=30, packet_timeout=2, retries=1),
        )
        got_down: list[bytes] = []
        arrived_down = asyncio.Event()

        def on_message(message: MqttMessage) -> None:
            got_down.append(message.payload)
            arrived_down.set()

        session.on_message(on_message)
        await session.start(timeout=20)

        accepted: list[bytes] = []
        for i in range(30):
            payload = b"%04d" % i
            await session.publish(f"up/{name}", payload, qos=1)
            accepted.append(payload)
            if i == 5:
                await asyncio.to_thread(cloud.publish, f"down/{name}", b"before", 1)
            if i == 10:
                await FAULTS[fault](r)
            await asyncio.sleep(0.02)

        await session.wait_connected(timeout=30)
        await session.flush(timeout=30)
        arrived = await cloud_received(cloud, set(accepted))
        missing = set(accepted) - set(arrived)
        assert not missing, f"never reached the broker: {sorted(missing)}"
        if window == 1:
            assert non_decreasing(arrived), arrived
        if fault in BREAKS_THE_LINK:
            assert session.reconnects >= 1

        # subscribed deliveries: the one before the fault, and new ones after it
        await asyncio.to_thread(cloud.publish, f"down/{name}", b"after", 1)
        await asyncio.to_thread(r.emulator.burst, session.client.index, f"down/{name}", 20)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while b"after" not in got_down or sum(p.startswith(b'{"n":') for p in got_down) < 20:
                    arrived_down.clear()
                    await arrived_down.wait()
        assert b"before" in got_down and b"after" in got_down
        assert sum(1 for p in got_down if p.startswith(b'{"n":')) == 20
        assert got_down.count(b"burst") == (50 if fault == "burst" else 0)
        assert session.connected and session.error is None and session.dead_letters() == []
        await session.stop()
    assert errors == []


async def test_wrong_password_fails_once_and_stays_failed(broker: Broker) -> None:
    errors = catch_loop_errors()
    async with rig(broker) as r:
        session = Session(r.modem, AUTH_HOST, 1883, "dev-wrong", AUTH_USER, Secret("not-it"), backoff=FAST)
        connects = 0

        def count(state: SessionState) -> None:
            nonlocal connects
            connects += state is SessionState.CONNECTING

        session.on_state(count)
        with pytest.raises(SessionFailed) as caught:
            await session.start(timeout=10)
        assert isinstance(caught.value.__cause__, ConnectRefused)
        assert caught.value.__cause__.return_code in (4, 5)
        assert "not-it" not in str(caught.value) and "not-it" not in repr(session)
        with pytest.raises(SessionFailed):
            await session.wait_stopped()  # the runner has ended: nothing left to reconnect
        assert session.state is SessionState.FAILED and connects <= 1  # no reconnect loop
        with pytest.raises(SessionFailed):
            await session.publish("dev/x", b"x")
        with pytest.raises(SessionFailed):
            await session.wait_stopped()
        await session.stop()
        assert session.state is SessionState.FAILED
    assert errors == []


async def test_right_password_and_bad_messages_are_refused_up_front(broker: Broker) -> None:
    async with rig(broker) as r:
        session = Session(r.modem, AUTH_HOST, 1883, "dev-right", AUTH_USER, AUTH_PASSWORD, backoff=FAST)
        async with session:
            assert session.connected
            for topic, payload in (
                ('dev/"x"', b"x"),
                ("dev/#", b"x"),
                ("", b"x"),
                ("dev/x", b""),
                ("dev/x", b"x" * 20000),
            ):
                with pytest.raises(InvalidArgument):
                    await session.publish(topic, payload)
            with pytest.raises(InvalidArgument):
                await session.publish("dev/x", b"x", qos=3)
            assert len(session.outbox) == 0


async def test_a_message_that_keeps_failing_goes_to_the_dead_letters(broker: Broker, cloud: Cloud) -> None:
    cloud.subscribe("dl/#")
    async with rig(broker) as r:
        await asyncio.to_thread(r.emulator.refuse_topic, "dl/forbidden")
        session = Session(r.modem, BROKER_HOST, 1883, "dev-dl", window=1, max_attempts=3, backoff=FAST)
        async with session:
            await session.publish("dl/ok", b"first")
            await session.publish("dl/forbidden", b"never")
            await session.publish("dl/ok", b"second")
            await session.flush(timeout=30)
            letters = session.dead_letters()
            assert [(d.entry.topic, d.entry.payload, d.entry.attempts) for d in letters] == [
                ("dl/forbidden", b"never", 3)
            ]
            assert "attempts" in letters[0].reason
            assert await cloud_received(cloud, {b"first", b"second"}) == [b"first", b"second"]
            assert session.reconnects == 3


async def test_outbox_bound_rejects_and_keeps_what_it_has(broker: Broker) -> None:
    async with rig(broker) as r:
        outbox = MemoryOutbox(max_messages=3)
        session = Session(r.modem, "no-such-host.test", 1883, "dev-full", outbox=outbox, backoff=FAST)
        await session.start(wait=False)
        for i in range(3):
            await session.publish("t", b"%d" % i)
        from quecmqtt.errors import OutboxFull

        with pytest.raises(OutboxFull):
            await session.publish("t", b"3")
        assert [e.payload for e in outbox.pending()] == [b"0", b"1", b"2"]
        assert session.state in (SessionState.CONNECTING, SessionState.WAITING)  # still trying
        await session.stop()
        assert session.state is SessionState.STOPPED


async def test_session_subscriptions_and_messages(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker) as r:
        session = Session(r.modem, BROKER_HOST, 1883, "dev-subs", backoff=FAST)
        async with session:
            granted = await session.subscribe("later/topic", 1)
            assert granted is not None and granted.qos == 1
            await asyncio.to_thread(cloud.publish, "later/topic", b"hello")
            async with asyncio.timeout(5):
                async for message in session.messages:
                    assert isinstance(message, MqttMessage) and message.payload == b"hello"
                    break
            await session.unsubscribe("later/topic")
            assert "later/topic" not in session.subscriptions
