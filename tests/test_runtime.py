"""The runtime's structure and contracts: no protocol above AT in it, a supervisor table that
is data and documented, init steps with owners and policies, values checked before anything
is registered, no waiter outliving its caller, a vanished port that never reaches the
loop's exception handler, bounded memory under a flood. Real pty, scripted module."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from quecmqtt.at import commands as C
from quecmqtt.at.events import Garbage, Urc
from quecmqtt.errors import (
    CommandError,
    InitStepFailed,
    InvalidArgument,
    PortLost,
    QueueClosed,
    ResponseTooLarge,
)
from quecmqtt.modem import Modem, ModuleReset, State
from quecmqtt.runtime.supervisor import TRANSITIONS, render_table
from quecmqtt.services.http import Http, HttpConfig
from quecmqtt.services.network import Network
from quecmqtt.transport.serial import SerialTransport
from tests.peer import ScriptedPeer, settled
from tests.test_modem_pty import make_modem, open_modem

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "quecmqtt" / "runtime"


def test_the_runtime_names_no_protocol_above_at() -> None:
    """The runtime knows AT, the command table and its own lifecycle; MQTT, HTTP and Aliyun
    are layers that register themselves (listeners, gates, steps)."""
    forbidden = re.compile(r"mqtt|qmt|aliyun|alink|http|qssl", re.IGNORECASE)
    for path in sorted(RUNTIME.glob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            bare = line.replace("quecmqtt", "")  # the package's own name is no protocol
            assert not forbidden.search(bare), f"{path.name}:{number}: {line.strip()}"


def test_no_class_in_the_runtime_is_over_400_lines() -> None:
    for path in sorted(RUNTIME.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                assert size <= 400, f"{path.name}: class {node.name} has {size} lines"


def test_the_supervisor_table_is_the_documented_one() -> None:
    text = (ROOT / "docs" / "runtime.md").read_text(encoding="utf-8")
    assert render_table() in text, "docs/runtime.md is stale: paste `python -m quecmqtt.runtime.docs` into it"
    assert len(TRANSITIONS) > 20


# -- init steps ---------------------------------------------------------------------------------


async def _reboot_and_serve(peer: ScriptedPeer) -> None:
    peer.send(b"\r\nRDY\r\n")
    await peer.answer(b"AT", b"\r\nOK\r\n")
    await peer.answer(b"ATE0", b"\r\nOK\r\n")
    await peer.answer(b"AT+CMEE=2", b"\r\nOK\r\n")


async def test_an_optional_step_that_fails_for_good_leaves_the_module_usable(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    told: list[BaseException] = []

    async def step(m: Modem) -> None:
        await m.execute(C.QCSQ())

    try:
        handle = modem.add_init_step(step, name="extra signal report", required=False, on_failure=told.append)
        await _reboot_and_serve(peer)
        await peer.answer(b"AT+QCSQ", b"\r\n+CME ERROR: 4\r\n")  # fails, and will fail every time
        await modem.wait_ready(3)
        assert modem.state is State.READY
        assert len(told) == 1 and isinstance(told[0], CommandError)
        assert handle.failures == 1 and isinstance(handle.last_error, CommandError)
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        assert (await task).fields("+CSQ") == [(20, 99)]
    finally:
        await modem.close()


async def test_a_required_step_that_fails_is_reported_to_callers_at_once(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    calls = 0

    async def step(m: Modem) -> None:
        nonlocal calls
        calls += 1
        await m.execute(C.QCSQ())

    try:
        modem.add_init_step(step, name="the thing the device needs")
        await _reboot_and_serve(peer)
        await peer.answer(b"AT+QCSQ", b"\r\n+CME ERROR: 4\r\n")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(InitStepFailed, match="the thing the device needs") as caught:
            await modem.execute(C.CSQ())  # the command's own time-out is 5 s; recovery_wait is 120 s
        assert loop.time() - started < C.CSQ().timeout
        assert isinstance(caught.value.__cause__, CommandError)
        assert modem.state is State.FAILED
        # retried with back-off: once the step succeeds, the module is ready again
        await peer.answer(b"AT", b"\r\nOK\r\n", timeout=5)
        await peer.answer(b"ATE0", b"\r\nOK\r\n")
        await peer.answer(b"AT+CMEE=2", b"\r\nOK\r\n")
        await peer.answer(b"AT+QCSQ", b'\r\n+QCSQ: "LTE",-60,-85,200,-9\r\n\r\nOK\r\n')
        await modem.wait_ready(3)
        assert calls == 2
    finally:
        await modem.close()


async def test_a_required_step_that_fails_at_open_fails_the_open(peer: ScriptedPeer) -> None:
    modem = make_modem(peer)

    async def step(m: Modem) -> None:
        await m.execute(C.QCSQ())

    modem.add_init_step(step, name="needed")
    opening = asyncio.create_task(modem.open())
    await peer.serve_init()
    await peer.answer(b"AT+QCSQ", b"\r\nERROR\r\n")
    with pytest.raises(InitStepFailed, match="needed"):
        await opening
    assert modem.state is State.CLOSED


async def test_step_handles_remove_and_keys_replace(peer: ScriptedPeer) -> None:
    modem = make_modem(peer)

    async def step(m: Modem) -> None:
        return None

    before = len(modem.steps)
    with modem.add_init_step(step, key="thing"):
        modem.add_init_step(step, key="thing")  # replaces: no stacking
        assert len(modem.steps) == before + 1
    assert len(modem.steps) == before + 1  # the first handle was replaced: removing it removes nothing
    modem.add_init_step(step, key="thing").remove()
    assert len(modem.steps) == before


async def test_invalid_values_register_nothing_and_the_next_reboot_recovers(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        before = len(modem.steps)
        with pytest.raises(InvalidArgument, match="quote"):
            Network(modem, apn='internet"; AT+CFUN=0')
        with pytest.raises(InvalidArgument):
            Http(modem, HttpConfig(headers=(("X-Token", 'a"b'),)))
        with pytest.raises(InvalidArgument):
            Network(modem, apn="internet", password="pa\r\nss")
        assert len(modem.steps) == before
        await _reboot_and_serve(peer)
        await modem.wait_ready(3)
        assert modem.state is State.READY
    finally:
        await modem.close()


# -- cancellation, a vanished port, floods -------------------------------------------------------


async def test_cancelled_callers_leave_no_waiter_behind(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        for i in range(100):
            msg_id = i % 60000 + 1
            task = asyncio.create_task(modem.execute(C.QMTSUB(0, msg_id, "t", 1)))
            await peer.expect_command(f'AT+QMTSUB=0,{msg_id},"t",1'.encode())
            if i % 2:
                task.cancel()  # cancelled before the final result ...
                peer.send(b"\r\nOK\r\n")
            else:
                peer.send(b"\r\nOK\r\n")  # ... or while it waits for the result
                await asyncio.sleep(0)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # the result comes after the caller went away: stale, taken by nobody
            peer.send(f"\r\n+QMTSUB: 0,{msg_id},0,1\r\n".encode())
        probe = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 1,2\r\n\r\nOK\r\n")
        await probe
        assert len(modem.waiters) == 0
        assert not modem.channel.tasks
    finally:
        await modem.close()


async def test_unplugged_during_a_stream_of_writes_the_loop_hears_nothing(tmp_path: Path) -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    for round_ in range(50):
        peer = ScriptedPeer(tmp_path, f"ttyU{round_}")
        peer.plug()
        modem = Modem(SerialTransport(peer.path), reopen_backoff=(0.02, 0.1))
        opening = asyncio.create_task(modem.open())
        await peer.serve_init()
        await opening
        lost = asyncio.Event()
        modem.add_listener(lambda e, lost=lost: lost.set() if isinstance(e, ModuleReset) else None)

        async def writer(m: Modem = modem) -> None:
            payload = bytes(range(256)) * 800  # 200 KiB: most of it waits in the write buffer
            with contextlib.suppress(PortLost, TimeoutError, CommandError):
                await m.execute(C.QFUPL("f.bin", len(payload)), payload, timeout=5)

        stream = asyncio.create_task(writer())
        await peer.expect(b"AT+QFUPL")
        peer.send(b"\r\nCONNECT\r\n")
        await peer.wait_received(20_000 + 1000 * (round_ % 10), timeout=5)
        peer.unplug()  # mid-transfer: the next write of the buffered rest fails with EIO
        async with asyncio.timeout(5):
            await lost.wait()
        await stream
        await modem.close()
        peer.close()
    assert errors == [], errors


FLOOD_SCRIPT = """
import asyncio, resource, sys, tempfile, pathlib
sys.path.insert(0, {root!r})
from quecmqtt.at import commands as C
from quecmqtt.errors import ResponseTooLarge, CommandTimeout
from quecmqtt.modem import Modem
from quecmqtt.transport.serial import SerialTransport
from tests.peer import ScriptedPeer, settled

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))

async def main():
    peer = ScriptedPeer(pathlib.Path(tempfile.mkdtemp()))
    peer.plug()
    modem = Modem(SerialTransport(peer.path))
    opening = asyncio.create_task(modem.open())
    await peer.serve_init()
    await opening
    before = rss_kib()
    for i, (line, total) in enumerate(((b"x" * 1021 + b"\\r\\n", 100 * 1024 * 1024), (b"x\\r\\n", 3 * 1024 * 1024))):
        task = asyncio.create_task(modem.execute(C.CSQ(), timeout=120))
        if i:  # the first one was given up: the late-answer guard probes first
            await peer.answer(b"AT+CMEE?", b"\\r\\n+CMEE: 2\\r\\n\\r\\nOK\\r\\n")
        await peer.expect_command(b"AT+CSQ")
        block = line * (65536 // len(line))
        sent = 0
        while sent < total:
            peer.send(block)
            sent += len(block)
            while peer.backlog > 1 << 20:   # the pty's own pace
                await asyncio.sleep(0.001)
        try:
            await task
            print("NOT FAILED", flush=True)  # the flood must fail the command
        except ResponseTooLarge:
            print("FAILED AT ONCE", flush=True)
        while peer.backlog:
            await asyncio.sleep(0.01)
    print("GROWTH_KIB", rss_kib() - before, flush=True)
    await modem.close()
    peer.close()

asyncio.run(main())
"""


def test_a_flood_while_a_command_waits_keeps_memory_bounded() -> None:
    """100 MB of lines (and 3 MB more of 3-byte lines) while AT+CSQ waits: the command fails
    at once with ResponseTooLarge, and the peak resident memory of the process grows by less
    than 40 MB (it grew by 2.4 GB before the cap)."""
    out = subprocess.run(
        [sys.executable, "-c", FLOOD_SCRIPT.format(root=str(ROOT))],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    match = re.search(r"GROWTH_KIB (-?\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    assert int(match.group(1)) < 40 * 1024, out.stdout
    assert out.stdout.count("FAILED AT ONCE") == 2 and "NOT FAILED" not in out.stdout, out.stdout


async def test_the_overflowing_command_fails_with_a_clear_error(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer, codec_options={"max_pending_lines": 10})
    try:
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.expect_command(b"AT+CSQ")
        peer.send(b"\r\nx\r\n" * 20)
        with pytest.raises(ResponseTooLarge, match="AT\\+CSQ"):
            await task
        peer.send(b"\r\nOK\r\n")  # its late answer completes nothing
        follow = asyncio.create_task(modem.execute(C.CSQ()))
        while (line := await peer.expect(b"\r")) != b"AT+CSQ\r":
            assert line == b"AT+CMEE?\r", line  # the late-answer guard (once, or twice if the OK came late)
            peer.send(b"\r\n+CMEE: 2\r\n\r\nOK\r\n")
        peer.send(b"\r\n+CSQ: 3,99\r\n\r\nOK\r\n")
        assert (await follow).fields("+CSQ") == [(3, 99)]
    finally:
        await modem.close()


async def test_a_closed_subscription_ends_iteration_properly(peer: ScriptedPeer) -> None:
    """get() raises QueueClosed (a plain exception, fine inside async generators); ``async
    for`` ends; what arrived before the close is still taken."""
    modem = await open_modem(peer)
    try:
        sub = modem.subscribe("+QIND")
        peer.send(b'\r\n+QIND: "csq",20\r\n')
        await settled(peer, modem)
        sub.close()

        async def relay() -> AsyncIterator[object]:
            async for event in sub:
                yield event

        assert [e.fields for e in [x async for x in relay()] if isinstance(e, Urc)] == [("csq", 20)]
        with pytest.raises(QueueClosed):
            await sub.get(timeout=1)
    finally:
        await modem.close()


async def test_garbage_is_reported_once_per_period_with_a_count(
    peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    modem = await open_modem(peer)
    try:
        with modem.subscribe(Garbage, maxsize=1000) as sub:
            peer.send(b"\r\nnoise\x01\r\n" * 200)
            for _ in range(200):
                assert isinstance(await sub.get(timeout=3), Garbage)  # every one is delivered ...
        warnings = [r for r in caplog.records if r.levelname == "WARNING" and "garbage" in r.getMessage()]
        assert len(warnings) == 1  # ... and logged once in the period, not 200 times
    finally:
        await modem.close()
