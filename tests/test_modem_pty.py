"""The runtime over a real pseudo-terminal: a scripted module on the master, the driver's
real serial transport (pyserial-asyncio-fast) on the slave."""

from __future__ import annotations

import asyncio
import logging

import pytest

from quecmqtt.at import commands as C
from quecmqtt.at.events import Garbage, ModuleReady, MqttMessage, MqttStatus, PsmEntered
from quecmqtt.errors import (
    CommandError,
    CommandTimeout,
    LinkLost,
    ModuleRebooted,
    ModuleUnresponsive,
    PortLost,
)
from quecmqtt.modem import Modem, Overflow, State
from quecmqtt.mqtt.links import MqttLinks
from quecmqtt.secret import Secret
from quecmqtt.transport.serial import SerialTransport
from tests.peer import ScriptedPeer, settled, wait_state

HOST = "broker.example"


def make_modem(peer: ScriptedPeer, **options: object) -> Modem:
    options.setdefault("reopen_backoff", (0.02, 0.1))
    options.setdefault("reboot_grace", 0.5)
    return Modem(SerialTransport(peer.path), **options)  # type: ignore[arg-type]


async def open_modem(peer: ScriptedPeer, **options: object) -> Modem:
    modem = make_modem(peer, **options)
    opening = asyncio.create_task(modem.open())
    await peer.serve_init(reconcile=False)  # a bare runtime reconciles nothing: that is the MQTT layer's
    await opening
    return modem


async def test_start_up_runs_sync_reconcile_and_init_script(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        assert modem.state is State.READY
        task = asyncio.create_task(modem.execute(C.ATI()))
        await peer.answer(b"ATI", b"\r\nQuectel\r\nEC200U\r\nRevision: EC200UCNAAR02A09M08\r\n\r\nOK\r\n")
        reply = await task
        assert reply.lines == ("Quectel", "EC200U", "Revision: EC200UCNAAR02A09M08")
    finally:
        await modem.close()


async def test_two_phase_result_after_ok_and_before_ok(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        task = asyncio.create_task(modem.execute(C.QMTOPEN(0, HOST, 1883)))
        await peer.expect_command(b'AT+QMTOPEN=0,"broker.example",1883')
        peer.send(b"\r\nOK\r\n")
        await settled(peer, modem)
        assert not task.done(), "execute() must wait for the +QMTOPEN result"
        peer.send(b"\r\n+QMTOPEN: 1,0\r\n\r\n+QMTOPEN: 0,3\r\n")  # client 1's result is not ours
        reply = await task
        assert reply.result is not None and reply.result.fields == (0, 3)

        # the URC may overtake OK: the waiter is registered before the write
        task = asyncio.create_task(modem.execute(C.QMTCLOSE(0)))
        await peer.answer(b"AT+QMTCLOSE=0", b"\r\n+QMTCLOSE: 0,0\r\n\r\nOK\r\n")
        reply = await task
        assert reply.result is not None and reply.result.fields == (0, 0)
    finally:
        await modem.close()


async def test_result_line_instead_of_ok_is_carried_on_the_error(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        task = asyncio.create_task(modem.execute(C.QMTOPEN(0, HOST, 8883)))
        await peer.answer(b'AT+QMTOPEN=0,"broker.example",8883', b"\r\n+QMTOPEN: 0,-1\r\n\r\nERROR\r\n")
        with pytest.raises(CommandError) as info:
            await task
        assert [r.fields for r in info.value.results] == [(0, -1)]
        assert "+QMTOPEN: 0,-1" in str(info.value)
    finally:
        await modem.close()


async def test_cme_errors_numeric_and_verbose(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        task = asyncio.create_task(modem.execute(C.CPIN_READ()))
        await peer.answer(b"AT+CPIN?", b"\r\n+CME ERROR: 14\r\n")
        with pytest.raises(CommandError) as numeric:
            await task
        task = asyncio.create_task(modem.execute(C.CPIN_READ()))
        await peer.answer(b"AT+CPIN?", b"\r\n+CME ERROR: SIM busy\r\n")
        with pytest.raises(CommandError) as verbose:
            await task
        assert numeric.value.cme == verbose.value.cme == 14
    finally:
        await modem.close()


async def test_qmtstat_fails_the_clients_waiters_at_once(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(modem.execute(C.QMTCONN(0, "dev")))
        await peer.answer(b'AT+QMTCONN=0,"dev"', b"\r\nOK\r\n")
        await settled(peer, modem)
        started = loop.time()
        peer.send(b"\r\n+QMTSTAT: 0,1\r\n")
        with pytest.raises(LinkLost) as info:
            await task
        assert info.value.code == 1
        assert loop.time() - started < 1.0  # not the 60 s result time-out
    finally:
        await modem.close()


async def test_reboot_mid_command_fails_it_and_reruns_init(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        generation = modem.generation
        task = asyncio.create_task(modem.execute(C.QMTCONN(0, "dev")))
        await peer.expect_command(b'AT+QMTCONN=0,"dev"')
        peer.send(b"\r\nRDY\r\n")
        with pytest.raises(ModuleRebooted):
            await task
        assert modem.generation == generation + 1
        await peer.serve_init(reconcile=False)  # init script runs again: echo and CMEE are back to defaults
        await modem.wait_ready(3)
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        assert (await task).fields("+CSQ") == [(20, 99)]
    finally:
        await modem.close()


async def test_powered_down_then_rdy(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        with modem.subscribe(ModuleReady) as sub:
            peer.send(b"\r\nPOWERED DOWN\r\n")
            await wait_state(modem, State.RECOVERING)
            assert modem.state is State.RECOVERING
            peer.send(b"\r\nRDY\r\n")
            assert isinstance(await sub.get(timeout=2), ModuleReady)
        await peer.serve_init(reconcile=False)
        await modem.wait_ready(3)
        assert modem.generation == 2  # POWERED DOWN and RDY
    finally:
        await modem.close()


async def test_psm_power_down_waits_for_the_wake_without_probing(peer: ScriptedPeer) -> None:
    """PSM POWER DOWN: the module sleeps until something wakes it. A typed event; what was in
    flight fails (the module will not answer it); the runtime waits for RDY, sending nothing
    that could look like a dead module to reset, then starts up again."""
    modem = await open_modem(peer)
    try:
        seen: list[object] = []
        modem.add_listener(lambda e: seen.append(e) if isinstance(e, PsmEntered) else None)
        pending = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.expect_command(b"AT+CSQ")
        peer.send(b"\r\nPSM POWER DOWN\r\n")
        with pytest.raises(ModuleRebooted):
            await pending
        assert [type(e).__name__ for e in seen] == ["PsmEntered"]
        assert modem.generation == 1 and modem.state is not State.READY
        await settled(peer, modem)
        assert peer.received.endswith(b"AT+CSQ\r")  # nothing sent to the sleeping module
        peer.send(b"\r\nRDY\r\n")
        await peer.serve_init()
        await wait_state(modem, State.READY)
    finally:
        await modem.close()


async def test_timeouts_then_reset_hook(peer: ScriptedPeer) -> None:
    resets: list[float] = []

    async def reset_hook() -> None:
        resets.append(asyncio.get_running_loop().time())
        peer.send(b"\r\nRDY\r\n")

    modem = await open_modem(peer, max_timeouts=2, reset_hook=reset_hook, reset_backoff=(0.0, 0.2))
    try:
        with pytest.raises(CommandTimeout):
            await modem.execute(C.CSQ(), timeout=0.2)
        assert modem.state is State.READY
        with pytest.raises((CommandTimeout, ModuleUnresponsive)):
            await modem.execute(C.CSQ(), timeout=0.2)
        await peer.serve_init(reconcile=False)
        await modem.wait_ready(3)
        assert len(resets) == 1
        assert modem.generation >= 1
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 31,99\r\n\r\nOK\r\n")
        await task
    finally:
        await modem.close()


@pytest.mark.parametrize("late_after_probe", [False, True])
async def test_a_late_answer_after_a_timeout_never_completes_the_next_command(
    peer: ScriptedPeer, late_after_probe: bool
) -> None:
    modem = await open_modem(peer)
    try:
        with pytest.raises(CommandTimeout):
            await modem.execute(C.CSQ(), timeout=0.2)
        late = b"\r\n+CSQ: 5,99\r\n\r\nOK\r\n"
        if not late_after_probe:
            peer.send(late)  # arrives, and is read, before the next command is written
            await settled(peer, modem)
        task = asyncio.create_task(modem.execute(C.QCSQ()))
        # the runtime re-synchronises with a probe whose answer it can recognise
        await peer.expect_command(b"AT+CMEE?")
        if late_after_probe:
            peer.send(late)  # the late OK completes the probe: the runtime must notice
            await settled(peer, modem)
        peer.send(b"\r\n+CMEE: 2\r\n\r\nOK\r\n")
        if late_after_probe:
            await peer.answer(b"AT+CMEE?", b"\r\n+CMEE: 2\r\n\r\nOK\r\n")
        await peer.expect_command(b"AT+QCSQ")
        await settled(peer, modem)
        assert not task.done()
        peer.send(b'\r\n+QCSQ: "LTE",-60,-85,200,-9\r\n\r\nOK\r\n')
        assert (await task).lines == ('+QCSQ: "LTE",-60,-85,200,-9',)
        assert b"AT+CMEE?" not in peer.pending_input()
    finally:
        await modem.close()


async def test_port_loss_fails_in_flight_and_reopens(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(modem.execute(C.QMTOPEN(0, HOST, 1883)))
        await peer.expect_command(b'AT+QMTOPEN=0,"broker.example",1883')
        started = loop.time()
        peer.unplug()
        with pytest.raises(PortLost):
            await task
        assert loop.time() - started < 1.0
        with pytest.raises((PortLost, ModuleUnresponsive)):
            await modem.execute(C.CSQ(), timeout=0.2)
        await wait_state(modem, State.PORT_LOST)
        peer.plug()  # re-plugged: the link points at a new pty
        await peer.serve_init(reconcile=False)
        await modem.wait_ready(5)
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 9,99\r\n\r\nOK\r\n")
        await task
    finally:
        await modem.close()


async def test_bounded_urc_queue_reports_overflow(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        sub = modem.subscribe(MqttMessage, maxsize=3)
        for i in range(10):
            peer.send(f'\r\n+QMTRECV: 0,{i},"t",1,"{i}"\r\n'.encode())
        await settled(peer, modem)
        first = await sub.get(timeout=1)
        assert first == Overflow(7)
        rest = [await sub.get(timeout=1) for _ in range(3)]
        assert [m.payload for m in rest if isinstance(m, MqttMessage)] == [b"7", b"8", b"9"]
        sub.close()
    finally:
        await modem.close()


async def test_cancelled_caller_still_completes_the_data_phase(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        payload = b'{"a":"\r\nOK\r\n"}'
        task = asyncio.create_task(modem.execute(C.QMTPUBEX(0, 1, 1, 0, "t", len(payload)), payload))
        await peer.expect_command(b'AT+QMTPUBEX=0,1,1,0,"t",14')
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        peer.send(b"\r\n> ")
        assert await peer.expect(payload) == payload  # the module would otherwise eat the next command
        peer.send(b"\r\nOK\r\n\r\n+QMTPUBEX: 0,1,0\r\n")
        follow = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 9,99\r\n\r\nOK\r\n")
        await follow
    finally:
        await modem.close()


async def test_cancelled_caller_aborts_a_ctrl_z_entry_with_esc(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        task = asyncio.create_task(modem.execute(C.QMTPUB_CTRLZ(0, 1, 1, 0, "t"), b"hello"))
        await peer.expect_command(b'AT+QMTPUB=0,1,1,0,"t"')
        task.cancel()
        peer.send(b"\r\n> ")
        assert await peer.expect(b"\x1b") == b"\x1b"
        assert b"hello" not in peer.received
        peer.send(b"\r\nOK\r\n")
        with pytest.raises(asyncio.CancelledError):
            await task
        follow = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 9,99\r\n\r\nOK\r\n")
        await follow
    finally:
        await modem.close()


async def test_start_up_closes_clients_left_open_by_an_earlier_process(peer: ScriptedPeer) -> None:
    modem = make_modem(peer)
    MqttLinks.of(modem)  # the MQTT layer's reconciliation and own-close window
    opening = asyncio.create_task(modem.open())
    await peer.answer(b"AT", b"\r\nOK\r\n")
    await peer.answer(b"AT+QMTCONN?", b"\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n")
    await peer.answer(
        b"AT+QMTOPEN?", b'\r\n+QMTOPEN: 0,"old.example",1883\r\n+QMTOPEN: 2,"old.example",1883\r\n\r\nOK\r\n'
    )
    await peer.answer(b"AT+QMTDISC=0", b"\r\nOK\r\n\r\n+QMTDISC: 0,0\r\n\r\n+QMTSTAT: 0,5\r\n")
    await peer.answer(b"AT+QMTCLOSE=0", b"\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n")
    await peer.answer(b"AT+QMTCLOSE=2", b"\r\nOK\r\n\r\n+QMTCLOSE: 2,0\r\n")
    # a result of the earlier process's last publish arrives late: stale
    peer.send(b"\r\n+QMTPUBEX: 0,7,0\r\n")
    await peer.answer(b"ATE0", b"\r\nOK\r\n")
    await peer.answer(b"AT+CMEE=2", b"\r\nOK\r\n")
    await opening
    try:
        assert modem.state is State.READY
        with modem.subscribe(MqttStatus, "+QMTPUBEX") as sub:
            await settled(peer, modem)
            assert len(sub) == 0, "the +QMTSTAT of our own disconnect and the stale result are not delivered"
            # our own publish with the same msg id gets its own result, not the stale one
            task = asyncio.create_task(modem.execute(C.QMTPUBEX(0, 7, 1, 0, "t", 2), b"hi"))
            await peer.expect_command(b'AT+QMTPUBEX=0,7,1,0,"t",2')
            peer.send(b"\r\n> ")
            await peer.expect(b"hi")
            peer.send(b"\r\nOK\r\n")
            await settled(peer, modem)
            assert not task.done()
            peer.send(b"\r\n+QMTPUBEX: 0,6,0\r\n\r\n+QMTPUBEX: 0,7,2\r\n")  # 6 is stale too
            reply = await task
            assert reply.result is not None and reply.result.fields == (0, 7, 2)
    finally:
        await modem.close()


async def test_pipelined_results_correlate_by_msg_id(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        pending = []
        for msg_id in (1, 2, 3):
            task = asyncio.create_task(modem.submit(C.QMTPUBEX(0, msg_id, 1, 0, "t", 1), b"x"))
            await peer.expect_command(f'AT+QMTPUBEX=0,{msg_id},1,0,"t",1'.encode())
            peer.send(b"\r\n> ")
            await peer.expect(b"x")
            peer.send(b"\r\nOK\r\n")
            pending.append(await task)
        peer.send(b"\r\n+QMTPUBEX: 0,3,0\r\n\r\n+QMTPUBEX: 0,1,1,2\r\n\r\n+QMTPUBEX: 0,2,2\r\n")
        results = [(await p.result()).fields for p in pending]
        assert results == [(0, 1, 1, 2), (0, 2, 2), (0, 3, 0)]
    finally:
        await modem.close()


async def test_garbage_is_reported_and_parsing_continues(peer: ScriptedPeer, caplog: pytest.LogCaptureFixture) -> None:
    modem = await open_modem(peer)
    try:
        with modem.subscribe(Garbage, MqttStatus) as sub:
            peer.send(b"\r\n\x00\xff\xfe\x01junk\r\n\r\n+QMTSTAT: 1,2\r\n")
            first = await sub.get(timeout=2)
            second = await sub.get(timeout=2)
        assert isinstance(first, Garbage) and first.length == 8
        assert second == MqttStatus(1, 2)
        assert "garbage" in caplog.text
    finally:
        await modem.close()


async def test_secret_arguments_never_reach_the_log(peer: ScriptedPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="quecmqtt")
    modem = await open_modem(peer)
    secret = "c4fa40df9c8078073d75a26be2bc8f58"
    try:
        task = asyncio.create_task(modem.execute(C.QMTCFG["aliauth"](0, "pk", "dev", Secret(secret))))
        echo = f'AT+QMTCFG="aliauth",0,"pk","dev","{secret}"'.encode()
        await peer.answer(echo, echo + b"\r\r\nOK\r\n")
        await task
        task = asyncio.create_task(modem.execute(C.QMTCFG_READ["aliauth"](0)))
        await peer.answer(
            b'AT+QMTCFG="aliauth",0', f'\r\n+QMTCFG: "aliauth","pk","dev","{secret}"\r\n\r\nOK\r\n'.encode()
        )
        reply = await task
        assert secret not in repr(reply) and secret not in str(reply.lines)
        assert isinstance(reply.responses[0].fields[-1], Secret)
        assert reply.responses[0].fields[-1].reveal() == secret
    finally:
        await modem.close()
    assert caplog.text and secret not in caplog.text


async def test_without_a_reset_hook_an_unresponsive_module_gets_cfun_1_1(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer, max_timeouts=1, reset_backoff=(0.0,))
    try:
        with pytest.raises((CommandTimeout, ModuleUnresponsive)):
            await modem.execute(C.CSQ(), timeout=0.2)
        await peer.expect_command(b"AT+CMEE?")  # the late-answer guard probes first
        peer.send(b"\r\n+CMEE: 2\r\n\r\nOK\r\n")
        await peer.answer(b"AT+CFUN=1,1", b"\r\nOK\r\n\r\nRDY\r\n")
        await peer.serve_init(reconcile=False)
        await modem.wait_ready(3)
        assert modem.state is State.READY
    finally:
        await modem.close()


async def test_start_up_cancels_a_data_entry_left_open(peer: ScriptedPeer) -> None:
    """An earlier process died inside a Ctrl-Z entry: the module swallows the first AT."""
    modem = make_modem(peer, reconcile=False)
    opening = asyncio.create_task(modem.open())
    try:
        await peer.expect_command(b"AT", timeout=3)  # taken as payload: no answer
        assert await peer.expect(b"\x1b", timeout=5) == b"\x1b"  # ESC ends the entry
        # the first AT went unanswered, so its answer could still come: a probe first
        await peer.answer(b"AT+CMEE?", b"\r\n+CMEE: 2\r\n\r\nOK\r\n")
        await peer.answer(b"AT", b"\r\nOK\r\n")
        await peer.answer(b"ATE0", b"\r\nOK\r\n")
        await peer.answer(b"AT+CMEE=2", b"\r\nOK\r\n")
        await opening
        assert modem.state is State.READY
    finally:
        opening.cancel()
        await modem.close()


async def test_open_fails_clearly_when_the_module_never_answers(peer: ScriptedPeer) -> None:
    modem = make_modem(peer, reconcile=False, sync_attempts=2)
    with pytest.raises(ModuleUnresponsive, match="no answer to AT"):
        await modem.open()
    assert modem.state is State.CLOSED
