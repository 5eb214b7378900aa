"""Time-outs, back-off and recovery under a virtual clock, over an in-memory port: hours of
module time in milliseconds, and results that cannot depend on the machine's speed."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable

import pytest

from quecmqtt.at import commands as C
from quecmqtt.errors import CommandTimeout, InitStepFailed, ModuleUnresponsive, PortLost
from quecmqtt.modem import Modem, State
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.mqtt.publish import MsgIds
from quecmqtt.mqtt.session import Backoff, Session
from quecmqtt.transport.memory import MemoryPort
from tests.peer import wait_state
from tests.virtual_time import run_virtual

Answer = Callable[[bytes], bytes | None]


class Responder:
    """A module that answers each command line from a table of prefixes (first match wins);
    lines it has no answer for are left unanswered. Records when each line came."""

    def __init__(self, port: MemoryPort, table: list[tuple[bytes, Answer]]) -> None:
        self.port = port
        self.table = table
        self.seen: list[tuple[float, bytes]] = []
        self._line = asyncio.Event()
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = (await self.port.expect(b"\r"))[:-1]
            self.seen.append((loop.time(), line))
            self._line.set()
            for prefix, answer in self.table:
                if line.startswith(prefix):
                    response = answer(line)
                    if response is not None:
                        self.port.send(response)
                    break

    async def wait_for(self, prefix: bytes, count: int) -> None:
        """Until `count` lines starting with `prefix` came."""
        while len(self.times(prefix)) < count:
            self._line.clear()
            await self._line.wait()

    def times(self, prefix: bytes) -> list[float]:
        return [t for t, line in self.seen if line.startswith(prefix)]

    def stop(self) -> None:
        self.task.cancel()


def ok(_line: bytes) -> bytes:
    return b"\r\nOK\r\n"


BASICS: list[tuple[bytes, Answer]] = [
    (b"AT+CMEE?", lambda _: b"\r\n+CMEE: 2\r\n\r\nOK\r\n"),
    (b"ATE0", ok),
    (b"AT+CMEE=", ok),
]


async def opened(port: MemoryPort, **options: object) -> tuple[Modem, Responder]:
    table: list[tuple[bytes, Answer]] = options.pop("table", [])  # type: ignore[assignment]
    responder = Responder(port, [*table, *BASICS, (b"AT\r"[:2], lambda line: b"\r\nOK\r\n" if line == b"AT" else None)])
    modem = Modem(port.transport, reconcile=False, **options)  # type: ignore[arg-type]
    await modem.open()
    return modem, responder


def test_a_result_that_never_comes_expires_at_its_deadline() -> None:
    async def main() -> None:
        port = MemoryPort()
        modem, responder = await opened(port, table=[(b"AT+QMTOPEN=", ok)])  # OK, then no +QMTOPEN
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CommandTimeout, match=r"\+QMTOPEN result"):
            await modem.execute(C.QMTOPEN(0, "broker.example", 1883))
        assert loop.time() - started == pytest.approx(C.QMTOPEN(0, "b", 1).result_timeout)
        assert len(modem.waiters) == 0
        responder.stop()
        await modem.close()

    real = time.monotonic()
    run_virtual(main())
    assert time.monotonic() - real < 5  # 150 s of module time


def test_an_unresponsive_module_is_reset_with_back_off() -> None:
    async def main() -> list[float]:
        port = MemoryPort()
        resets: list[float] = []
        answering = True

        def at(line: bytes) -> bytes | None:
            if not answering:
                return None  # silent: not even the late-answer probe gets an answer
            if line == b"AT+CMEE?":
                return b"\r\n+CMEE: 2\r\n\r\nOK\r\n"
            return b"\r\nOK\r\n"

        third = asyncio.Event()

        async def reset_hook() -> None:
            resets.append(asyncio.get_running_loop().time())
            if len(resets) == 3:
                third.set()

        responder = Responder(port, [(b"AT", at)])
        modem = Modem(
            port.transport, reconcile=False, max_timeouts=2, reset_hook=reset_hook, reset_backoff=(0.0, 600.0, 1800.0)
        )
        await modem.open()
        answering = False  # the module stops answering for good
        for _ in range(2):
            with pytest.raises((CommandTimeout, ModuleUnresponsive)):
                await modem.execute(C.CSQ())
        await third.wait()
        assert modem.state in (State.RESETTING, State.RECOVERING)
        responder.stop()
        await modem.close()
        return resets

    real = time.monotonic()
    resets = run_virtual(main())
    assert time.monotonic() - real < 5
    gaps = [b - a for a, b in itertools.pairwise(resets)]
    assert gaps[0] >= 600 and gaps[1] >= 1800  # the back-off between resets in a row
    assert gaps[0] < 600 + 60 and gaps[1] < 1800 + 60  # and no more than the sync attempts on top


def test_session_reconnects_with_exponential_back_off() -> None:
    async def main() -> list[float]:
        port = MemoryPort()

        def qmtopen(line: bytes) -> bytes:
            index = line.split(b"=")[1].split(b",")[0]
            return b"\r\nOK\r\n\r\n+QMTOPEN: " + index + b",5\r\n"  # network connection error

        def qmtclose(line: bytes) -> bytes:
            return b"\r\nOK\r\n\r\n+QMTCLOSE: " + line.split(b"=")[1] + b",0\r\n"

        table: list[tuple[bytes, Answer]] = [
            (b"AT+QMTCFG=?", lambda _: b'\r\n+QMTCFG: "version",(0-5),(3,4)\r\n\r\nOK\r\n'),
            (b"AT+QMTCFG=", ok),
            (b"AT+QMTOPEN=", qmtopen),
            (b"AT+QMTCLOSE=", qmtclose),
            (b"AT+QMTCONN?", ok),
            (b"AT+QMTOPEN?", ok),
        ]
        modem, responder = await opened(port, table=table)
        backoff = Backoff(initial=1.0, maximum=60.0, factor=2.0, jitter=0.0)
        session = Session(
            modem, "broker.example", 1883, "dev", backoff=backoff, config=MqttConfig.only(version=4),
            rng=random.Random(1),
        )  # fmt: skip
        await session.start(wait=False)
        await responder.wait_for(b"AT+QMTOPEN=", 9)
        await session.stop()
        responder.stop()
        await modem.close()
        return responder.times(b"AT+QMTOPEN=")

    real = time.monotonic()
    attempts = run_virtual(main())
    assert time.monotonic() - real < 5
    gaps = [round(b - a) for a, b in itertools.pairwise(attempts)]
    assert gaps == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_failing_required_step_is_retried_with_back_off() -> None:
    async def main() -> list[float]:
        port = MemoryPort()
        modem, responder = await opened(port, reboot_grace=0.5)
        attempts: list[float] = []
        seventh = asyncio.Event()

        async def step(m: Modem) -> None:
            attempts.append(asyncio.get_running_loop().time())
            if len(attempts) == 7:
                seventh.set()
            raise OSError("the certificate store is not mounted yet")

        modem.add_init_step(step, name="certificates")
        port.send(b"\r\nRDY\r\n")
        await seventh.wait()
        with pytest.raises(InitStepFailed, match="certificates"):
            await modem.execute(C.CSQ())
        responder.stop()
        await modem.close()
        return attempts

    attempts = run_virtual(main())
    gaps = [round(b - a) for a, b in itertools.pairwise(attempts)]
    assert gaps == [1, 2, 4, 8, 16, 30]  # 0.5 s x 2^n, at most 30 s


def test_a_port_that_cannot_be_reopened_fails_callers_at_once() -> None:
    async def main() -> None:
        port = MemoryPort()
        port.transport.reopenable = False
        modem, responder = await opened(port)
        port.unplug()
        await wait_state(modem, State.PORT_LOST)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PortLost, match="cannot be reopened"):
            await modem.execute(C.CSQ())
        assert loop.time() - started < 0.1  # not recovery_wait (120 s)
        responder.stop()
        await modem.close()

    run_virtual(main())


def test_a_port_that_comes_back_is_reopened_with_back_off() -> None:
    async def main() -> float:
        port = MemoryPort()
        modem, responder = await opened(port, reopen_backoff=(0.05, 5.0))
        opens: list[float] = []
        transport_open = port.transport.open

        async def counted_open() -> None:
            opens.append(asyncio.get_running_loop().time())
            await transport_open()

        port.transport.open = counted_open  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        port.unplug()
        lost_at = loop.time()
        await asyncio.sleep(60)  # away for a minute
        port.replug()
        await modem.wait_ready(30)
        back = loop.time() - lost_at
        gaps = [b - a for a, b in itertools.pairwise(opens)]
        assert all(g <= 5.0 + 1e-6 for g in gaps) and gaps[-1] == pytest.approx(5.0)  # capped
        assert len(opens) < 25  # exponential, not a busy loop
        responder.stop()
        await modem.close()
        return back

    back = run_virtual(main())
    assert 60 <= back <= 66


def test_a_msg_id_whose_caller_went_away_is_not_reused_before_the_module_is_done() -> None:
    async def main() -> None:
        ids = MsgIds()
        loop = asyncio.get_running_loop()
        first = ids.take()
        ids.quarantine(first, loop.time() + 65)  # cancelled after the write: +QMTPUBEX may still come
        taken = {ids.take() for _ in range(65533)}
        assert first not in taken and len(ids) == 65534
        for msg_id in taken:
            ids.release(msg_id)
        assert ids.take() != first  # still the module's
        await asyncio.sleep(66)
        ids._next = first
        assert ids.take() == first  # its result time is over: free again

    run_virtual(main())
