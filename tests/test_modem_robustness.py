"""Regression tests for the runtime's failure paths (pty with a scripted peer, or replay):
hostile input never stops the reader, queued commands never reach a rebooted module,
recovery survives any failure, cancellation and close leave nothing behind, and the
recorder never writes a secret it could have known."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest

from quecmqtt.aliyun.replies import registration_secrets
from quecmqtt.at import commands as C
from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import CommandTimeout, LocalProtocolError, ModuleRebooted, NotOpen
from quecmqtt.modem import Modem, State
from quecmqtt.secret import Secret
from quecmqtt.transcripts.format import Transcript
from quecmqtt.transcripts.recorder import RecorderTransport
from quecmqtt.transcripts.replay import ReplayTransport
from quecmqtt.transport.serial import SerialTransport
from tests.peer import ScriptedPeer, settled, until, wait_state
from tests.test_modem_pty import open_modem


async def test_hostile_module_output_never_stops_the_reader(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        nested = b'{"token":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        peer.send(b"\r\n+CME ERROR: --5\r\n\r\n+CMS ERROR: " + b"1" * 5000 + b"\r\n")
        peer.send(b'\r\n+QMTRECV: 0,1,"t",%d,"' % len(nested) + nested + b'"\r\n')
        await settled(peer, modem, timeout=10)
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 1,99\r\n\r\nOK\r\n")
        assert (await task).fields("+CSQ") == [(1, 99)]
        assert modem._reader_task is not None and not modem._reader_task.done()
    finally:
        await modem.close()


async def test_commands_queued_behind_a_reboot_never_reach_the_fresh_module(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        first = asyncio.create_task(modem.execute(C.QMTCONN(0, "dev")))
        await peer.expect_command(b'AT+QMTCONN=0,"dev"')
        queued = asyncio.create_task(modem.execute(C.QMTSUB(0, 1, "t", 1)))
        await until(lambda: len(modem.channel.tasks) == 2)  # queued behind the first
        peer.send(b"\r\nRDY\r\n")
        for task in (first, queued):
            with pytest.raises(ModuleRebooted):
                await task
        await peer.serve_init(reconcile=False)  # the recovery comes first; no QMTSUB at all
        await modem.wait_ready(3)
        assert b"AT+QMTSUB" not in peer.received
    finally:
        await modem.close()


async def test_after_open_a_reboot_makes_callers_wait_for_the_recovery(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)  # open() ran in this task: its start-up context must not leak
    try:
        peer.send(b"\r\nRDY\r\n")
        await wait_state(modem, State.RECOVERING)
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.serve_init(reconcile=False)
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 2,99\r\n\r\nOK\r\n")
        await task
        first_init = peer.received.index(b"AT+CMEE=2\r")
        assert peer.received.index(b"AT+CMEE=2\r", first_init + 1) < peer.received.index(b"AT+CSQ\r")
    finally:
        await modem.close()


async def test_recovery_survives_an_init_step_that_raises_anything(
    peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    async def step(modem: Modem) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("certificate file busy")

    modem = Modem(SerialTransport(peer.path), reconcile=False, reboot_grace=0.2)
    modem.add_init_step(step)
    opening = asyncio.create_task(modem.open())
    await peer.serve_init(reconcile=False)
    await opening
    try:
        peer.send(b"\r\nRDY\r\n")
        await peer.serve_init(reconcile=False)  # the step raises OSError
        await peer.serve_init(reconcile=False)  # retried after a pause: ready again
        await modem.wait_ready(5)
        assert len(calls) == 3 and "recovery failed" in caplog.text
    finally:
        await modem.close()


async def test_a_module_silent_during_recovery_is_reset(peer: ScriptedPeer) -> None:
    reset = asyncio.Event()

    async def reset_hook() -> None:
        reset.set()
        peer.send(b"\r\nRDY\r\n")

    modem = await open_modem(peer, reset_hook=reset_hook, reset_backoff=(0.0,), sync_attempts=1)
    try:
        peer.send(b"\r\nRDY\r\n")
        await peer.expect_command(b"AT", timeout=3)  # never answered: the recovery fails ...
        async with asyncio.timeout(10):
            await reset.wait()  # ... and the next attempt resets the module
        await wait_state(modem, State.RECOVERING)  # and recovers it after the reset
    finally:
        await modem.close()


async def test_ctrl_z_data_holding_ctrl_z_is_refused_before_anything_is_written(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        before = len(peer.received)
        with pytest.raises(LocalProtocolError, match="Ctrl-Z"):
            await modem.execute(C.QMTPUB_CTRLZ(0, 1, 1, 0, "t"), b"a\x1ab")
        probe = asyncio.create_task(modem.execute(C.AT()))  # what the driver writes next ...
        await peer.answer(b"AT", b"\r\nOK\r\n")
        await probe
        assert peer.received[before:] == b"AT\r"  # ... is all it wrote since
    finally:
        await modem.close()


async def test_a_cancelled_result_wait_does_not_steal_the_next_result(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        first = asyncio.create_task(modem.execute(C.QMTOPEN(0, "h", 1883)))
        await peer.answer(b'AT+QMTOPEN=0,"h",1883', b"\r\nOK\r\n")
        await settled(peer, modem)
        first.cancel()  # the caller gives up waiting for +QMTOPEN
        with pytest.raises(asyncio.CancelledError):
            await first
        retry = asyncio.create_task(modem.execute(C.QMTOPEN(0, "h", 1883)))
        await peer.answer(b'AT+QMTOPEN=0,"h",1883', b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n")
        reply = await retry
        assert reply.result is not None and reply.result.fields == (0, 0)
    finally:
        await modem.close()


async def test_close_fails_in_flight_commands_with_not_open(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    task = asyncio.create_task(modem.execute(C.CSQ()))
    queued = asyncio.create_task(modem.execute(C.QCSQ()))
    await peer.expect_command(b"AT+CSQ")
    await modem.close()
    for pending in (task, queued):
        with pytest.raises(NotOpen):
            await pending
    assert modem.state is State.CLOSED


async def test_an_explicit_timeout_also_bounds_the_wait_for_the_port(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        slow = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.expect_command(b"AT+CSQ")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CommandTimeout, match="its turn"):
            await modem.execute(C.QCSQ(), timeout=0.3)
        assert loop.time() - started < 1.0
        peer.send(b"\r\n+CSQ: 1,99\r\n\r\nOK\r\n")
        await slow
    finally:
        await modem.close()


async def test_recording_continues_across_a_port_reopen(peer: ScriptedPeer, tmp_path: object) -> None:
    path = f"{tmp_path}/rec.txt"
    modem = await open_modem(peer, record=path)
    try:
        peer.unplug()
        await wait_state(modem, State.PORT_LOST)
        peer.plug()
        await peer.serve_init(reconcile=False)
        await modem.wait_ready(5)
        task = asyncio.create_task(modem.execute(C.CSQ()))
        await peer.answer(b"AT+CSQ", b"\r\n+CSQ: 4,99\r\n\r\nOK\r\n")
        await task
    finally:
        await modem.close()
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    assert "# port reopened" in text and " AT+CSQ\\r" in text and "+CSQ: 4,99" in text


SECRET_CASES = [
    (  # the read-back line arrives in its own read, before OK
        '> AT+QMTCFG="aliauth",0\\r\n< \\r\\n+QMTCFG: "aliauth",0,"pk1","dev1","S3cretDeviceSecretValue"\\r\\n\n'
        "< \\r\\nOK\\r\\n\n",
        C.QMTCFG_READ["aliauth"](0),
        "S3cretDeviceSecretValue",
    ),
    (  # an HTTP body without a length hint: it ends only at +QHTTPREAD
        "> AT+QHTTPREAD=80\\r\n"
        '< \\r\\nCONNECT\\r\\n{"code":200,"data":{"deviceSecret":"TopSecretFromCloud99"}}\\r\\nOK\\r\\n\n'
        "< \\r\\n+QHTTPREAD: 0\\r\\n\n",
        C.QHTTPREAD(80),
        "TopSecretFromCloud99",
    ),
    (  # a registration reply over two lines and two reads
        "> AT\\r\n< \\r\\nOK\\r\\n\n"
        '< \\r\\n+QMTRECV: 0,1,"/ext/register",62,"{"deviceSecret":"AnotherCloudSecret77",\\r\\n\n'
        '<  "productKey":"pk1x"}"\\r\\n\n',
        C.AT(),
        "AnotherCloudSecret77",
    ),
]


def _learn_from(modem: Modem, data: bytes) -> None:
    for secret in registration_secrets(data):
        modem.redactor.add(secret)


@pytest.mark.parametrize(("records", "command", "secret"), SECRET_CASES)
async def test_recorder_writes_output_only_once_its_secrets_are_known(
    records: str, command: C.Command, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The secret is learned where a layer expects it (the table's read-back field; the
    HTTPS body handed to `inspect`; the registration topic seen by a listener) and still
    before the recorder writes those bytes."""
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    replay = ReplayTransport(Transcript.loads("# quecmqtt transcript 1\n" + records))
    async with Modem(RecorderTransport(replay, out), init_script=False, reconcile=False) as modem:
        modem.add_listener(
            lambda e: (
                _learn_from(modem, e.payload) if isinstance(e, MqttMessage) and e.topic == "/ext/register" else None
            )
        )
        await modem.execute(command, inspect=lambda done: _learn_from(modem, done.body or b""))
    assert secret not in out.getvalue()
    assert secret not in caplog.text
    assert "{{" in out.getvalue()


async def test_payloads_are_not_scanned_for_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """A payload with JSON keys such as "token" or "secret" is an ordinary payload: the
    runtime learns nothing from it (which over months would grow without bound)."""
    records = "".join(
        f'< \\r\\n+QMTRECV: 0,{i},"t",{len(body)},"{body}"\\r\\n\n'
        for i, body in enumerate(f'{{"token":"tok-{i:05d}","secret":"sec-{i:05d}"}}' for i in range(50))
    )
    transcript = Transcript.loads("# quecmqtt transcript 1\n> AT\\r\n< \\r\\nOK\\r\\n\n" + records)
    async with Modem(ReplayTransport(transcript), init_script=False, reconcile=False) as modem:
        with modem.subscribe(MqttMessage) as messages:
            await modem.execute(C.AT())
            for _ in range(50):
                await messages.get(timeout=5)
        assert len(modem.redactor) == 0 and modem.redactor.rebuilds == 0


async def test_short_secret_arguments_and_their_echo_are_redacted() -> None:
    out = io.StringIO()
    transcript = Transcript.loads('# quecmqtt transcript 1\n> AT+CPIN="123"\\r\n< AT+CPIN="123"\\r\\r\\nOK\\r\\n\n')
    async with Modem(RecorderTransport(ReplayTransport(transcript), out), init_script=False, reconcile=False) as modem:
        await modem.execute(C.CPIN(Secret("123")))
    written = out.getvalue()
    assert '"123"' not in written
    assert written.count("{{pin:3}}") == 2  # the command and the module's echo of it
