"""The delivery contract, as a Hypothesis state machine: a Session with a SQLite outbox
publishes while faults hit it (the link dropped, the module rebooted, the port unplugged, the
process restarted over the same outbox). Whatever the order, every message accepted is
delivered at least once, and only the ones the module can never take are dead letters.
Real driver, pty, emulator and Mosquitto; the choices are derandomized (the same run each
time)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.outbox import SqliteOutbox
from quecmqtt.mqtt.session import Backoff, Session
from quecmqtt.transport.serial import SerialTransport
from tests.broker import Broker, Cloud
from tests.mqtt_rig import BROKER_HOST

pytestmark = pytest.mark.broker

TOO_BIG = 5000  # over this module's 4096: never sendable
_runs = itertools.count()


def test_every_accepted_message_is_delivered_whatever_happens(broker: Broker, tmp_path: Path) -> None:
    class Delivery(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.run = next(_runs)
            self.topic = f"contract/{self.run}"
            self.loop = asyncio.new_event_loop()
            self.cloud = Cloud(broker)
            self.cloud.subscribe(f"{self.topic}/#")
            self.emulator = EmulatorThread(hosts=broker.hosts(), rtt=0.02)
            self.db = tmp_path / f"outbox-{self.run}.db"
            self.accepted: set[bytes] = set()
            self.unsendable: set[bytes] = set()
            self.counter = itertools.count()
            self.modem: Modem | None = None
            self.session: Session | None = None
            self.restarts = 0
            self._do(self._start())

        def _do(self, coro: Any) -> Any:
            return self.loop.run_until_complete(asyncio.wait_for(coro, 60))

        async def _start(self) -> None:
            self.modem = Modem(SerialTransport(self.emulator.path), reopen_backoff=(0.05, 0.2), reboot_grace=2.0)
            await self.modem.open()
            self.session = Session(
                self.modem,
                BROKER_HOST,
                1883,
                f"contract-{self.run}",
                outbox=SqliteOutbox(self.db),
                window=4,
                backoff=Backoff(initial=0.05, maximum=0.3),
                config=MqttConfig(keepalive=30, packet_timeout=2, retries=1),
            )
            await self.session.start(wait=False)

        async def _stop(self) -> None:
            assert self.session is not None and self.modem is not None
            outbox = self.session.outbox
            await self.session.stop()
            await outbox.aclose()
            await self.modem.close()

        @rule(count=st.integers(1, 5), big=st.booleans())
        def publish(self, count: int, big: bool) -> None:
            assert self.session is not None

            async def put() -> None:
                assert self.session is not None
                for _ in range(count):
                    payload = b"%06d" % next(self.counter)
                    await self.session.publish(f"{self.topic}/m", payload, qos=1)
                    self.accepted.add(payload)
                if big and self.session.client.form is None:  # accepted only while the limit is unknown
                    payload = b"%06d" % next(self.counter) + b"x" * TOO_BIG
                    await self.session.publish(f"{self.topic}/m", payload, qos=1)
                    self.unsendable.add(payload)

            self._do(put())

        def _during_traffic(self, fault: Any, *args: Any) -> None:
            """The fault strikes while messages are in flight (the loop runs meanwhile)."""

            async def burst() -> None:
                assert self.session is not None
                for _ in range(6):
                    payload = b"%06d" % next(self.counter)
                    await self.session.publish(f"{self.topic}/m", payload, qos=1)
                    self.accepted.add(payload)
                await asyncio.sleep(0.03)
                await asyncio.to_thread(fault, *args)
                await asyncio.sleep(0.05)

            self._do(burst())

        @rule(code=st.sampled_from([1, 2, 3, 4, 6, 7]))
        def drop_link(self, code: int) -> None:
            self._during_traffic(self.emulator.drop_link, 0, code)

        @rule()
        def reboot(self) -> None:
            self._during_traffic(self.emulator.reboot)

        @rule()
        def unplug_and_replug(self) -> None:
            self._during_traffic(self.emulator.unplug)
            self._do(asyncio.sleep(0.1))  # the port is away for a while: the driver sees it gone
            self.emulator.replug()

        @rule()
        def restart_the_process(self) -> None:
            self.restarts += 1
            self._do(self._stop())
            self._do(self._start())  # a new runtime, the same outbox file

        @rule()
        def let_it_work(self) -> None:
            self._do(asyncio.sleep(0.2))

        @invariant()
        def nothing_sendable_is_dead(self) -> None:
            if self.session is not None:
                dead = {d.entry.payload for d in self.session.dead_letters()}
                assert dead <= self.unsendable, "a sendable message was dead-lettered"

        def teardown(self) -> None:
            try:
                session = self.session
                assert session is not None
                self._do(session.wait_connected(timeout=40))
                self._do(session.flush(timeout=40))
                dead = {d.entry.payload for d in session.dead_letters()}
                assert dead == self.unsendable, "every unsendable message, and only those, is dead"
                arrived = self._take(self.accepted)
                missing = self.accepted - arrived
                assert not missing, f"{len(missing)} accepted messages never arrived: {sorted(missing)[:5]}"
                self._do(self._stop())
            finally:
                self.emulator.close()
                self.cloud.close()
                self.loop.close()

        def _take(self, wanted: set[bytes]) -> set[bytes]:
            got: set[bytes] = set()
            deadline = time.monotonic() + 20
            while not wanted <= got and time.monotonic() < deadline:
                try:
                    got.add(self.cloud.messages.get(timeout=0.1).payload)
                except queue.Empty:
                    continue
            return got

    run_state_machine_as_test(
        Delivery,
        settings=settings(
            max_examples=15,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
