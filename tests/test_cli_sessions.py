"""The interactive `at` console, `record` around an emulator (its transcript then replays
green), and `replay` serving a transcript: the real `quecmqtt` command under a real pty."""

from __future__ import annotations

import asyncio
import os
import select
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from quecmqtt.at import commands as C
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.secret import Secret
from quecmqtt.transcripts.replay import ReplayTransport
from quecmqtt.transport.serial import SerialTransport
from tests.broker import Broker
from tests.children import spawn_child
from tests.test_cli import ENV

SECRET = "topsecret-c4fa40df9c80"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emu:
        yield emu


def spawn(*args: str, timeout: float = 20) -> pexpect.spawn:
    return spawn_child(sys.executable, ["-m", "quecmqtt", *args], encoding="utf-8", env=ENV, timeout=timeout)


def test_at_console(emulator: EmulatorThread, tmp_path: Path) -> None:
    history = tmp_path / "history"
    child = spawn("at", "--port", emulator.path, "--history", str(history))
    child.expect("connected to")
    child.expect_exact("AT> ")
    child.sendline("ATI")
    child.expect("EC200U")
    child.expect_exact("OK")
    child.expect_exact("AT> ")
    child.sendline(f'AT+QMTCFG="aliauth",0,"pk1","dev1","{SECRET}"')
    child.expect_exact("OK")
    child.expect_exact("AT> ")
    child.sendline('AT+QMTCFG="aliauth",0')
    child.expect_exact('+QMTCFG: "aliauth","pk1","dev1","***"')  # the read-back, redacted
    child.expect_exact("AT> ")
    child.sendline('AT+QMTCFG="aliauth",0,"pk1","dev1","another-secret"')
    child.expect_exact("OK")
    child.expect_exact("AT> ")
    child.send("\x1b[A" * 3 + "\r")  # Up-arrow three times: the first aliauth line, as typed
    child.expect_exact("OK")
    child.expect_exact("AT> ")
    assert emulator.emulator.module.clients[0].cfg["aliauth"] == ("pk1", "dev1", SECRET)
    child.sendline('AT+QMTCFG="aliauth",0,"pk1","dev1","***"')  # as a history file shows it
    child.expect_exact("stands where a secret goes")
    child.expect_exact("AT> ")
    assert emulator.emulator.module.clients[0].cfg["aliauth"] == ("pk1", "dev1", SECRET)
    child.sendline("AT+CPIN=4711")  # an unquoted PIN is a secret too (the SIM is ready: an error)
    child.expect("CommandError")
    child.expect_exact("AT> ")
    child.sendline(' AT+QMTCFG="aliauth",1,"pk1","dev1","lead-blank-secret"')  # however it is typed
    child.expect_exact("OK")
    child.expect_exact("AT> ")
    child.sendline('AT+CSQ ; +QMTCFG="aliauth",2,"pk1","dev1","joined-secret-1"')
    child.expect_exact("AT> ")
    emulator.inject(b'\r\n+QIND: "csq",24,99\r\n')  # a URC while the console waits for input
    child.expect_exact('[URC] +QIND: "csq",24,99')
    child.sendline('AT+QMTOPEN=0,"no-such-host.test",1883')  # two-phase: waits for its result URC
    child.expect_exact("OK")
    child.expect(r"\+QMTOPEN: 0,\d")
    child.expect_exact("AT> ")
    child.sendline('AT+QFUPL="note.txt",5')  # a command with a data phase asks for the data
    child.expect_exact("data (5 bytes)> ")
    child.sendline("hello")
    child.expect(r"\+QFUPL: 5,")
    child.expect_exact("AT> ")
    child.sendline("AT+NOSUCHTHING")
    child.expect("CommandError")
    child.expect_exact("AT> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = history.read_text()
    assert "ATI" in saved and '"pk1","dev1","***"' in saved
    assert SECRET not in saved and "hello" not in saved
    assert "another-secret" not in saved and "4711" not in saved and 'AT+CPIN="***"' in saved
    assert "lead-blank-secret" not in saved and "joined-secret-1" not in saved
    assert oct(history.stat().st_mode & 0o777) == "0o600"


def test_at_console_stops_on_ctrl_c_at_its_prompt(emulator: EmulatorThread, tmp_path: Path) -> None:
    history = tmp_path / "history"
    child = spawn("at", "--port", emulator.path, "--history", str(history), timeout=5)
    child.expect_exact("AT> ")
    child.sendline(f'AT+QMTCFG="aliauth",0,"pk1","dev1","{SECRET}"')
    child.expect_exact("OK")
    child.expect_exact("AT> ")
    child.sendintr()
    child.expect(pexpect.EOF)  # without waiting for Enter
    child.close()
    assert child.exitstatus == 130
    saved = history.read_text()
    assert '"pk1","dev1","***"' in saved and SECRET not in saved


def test_at_console_without_a_port() -> None:
    child = spawn("at", "--port", "/dev/does-not-exist")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert "no such device" in (child.before or "")


async def flow(path: str) -> None:
    """What a program does through the proxy: a secret goes in, a read-back comes out."""
    async with Modem(SerialTransport(path)) as modem:
        await modem.execute(C.ATI())
        await modem.execute(C.QMTCFG["aliauth"](0, "pk1", "dev1", Secret(SECRET)))
        reply = await modem.execute(C.QMTCFG_READ["aliauth"](0))
        assert len(reply.fields("+QMTCFG")) == 1
        await modem.execute(C.QMTCFG["keepalive"](0, 60))


def test_record_around_the_emulator_then_replay_green(emulator: EmulatorThread, tmp_path: Path) -> None:
    transcript = tmp_path / "session.txt"
    link = tmp_path / "ttyREC0"
    child = spawn("record", "--port", emulator.path, "--link", str(link), "--output", str(transcript))
    child.expect("device: ")
    child.expect("Ctrl-C stops")
    asyncio.run(flow(str(link)))
    child.sendintr()
    child.expect(r"recorded (\d+) bytes from the host, (\d+) from the module")
    assert int(child.match.group(1)) > 0 and int(child.match.group(2)) > 0
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130  # Ctrl-C: interrupted; what was recorded is kept
    text = transcript.read_text()
    assert "QMTCFG" in text and SECRET not in text and "{{" in text

    async def replay_in_process() -> None:
        replay = ReplayTransport(str(transcript), chunking="random", seed=3)
        async with Modem(replay) as modem:
            await modem.execute(C.ATI())
            await modem.execute(C.QMTCFG["aliauth"](0, "pk1", "dev1", Secret(SECRET)))
            await modem.execute(C.QMTCFG_READ["aliauth"](0))
            await modem.execute(C.QMTCFG["keepalive"](0, 60))
        replay.assert_complete()

    asyncio.run(replay_in_process())

    # and served on a pty by `quecmqtt replay`, to the same program in another process
    served = tmp_path / "ttyREPLAY0"
    child = spawn("replay", str(transcript), "--link", str(served))
    child.expect("device: ")
    asyncio.run(flow(str(served)))
    child.expect("transcript complete")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_record_keeps_secrets_out_when_a_terminal_program_types_them(emulator: EmulatorThread, tmp_path: Path) -> None:
    """A terminal program writes each keystroke: the proxy must not record a line until its CR
    (when its secret is known), while data after CONNECT or `> ` is recorded as it goes."""
    transcript = tmp_path / "typed.txt"
    link = tmp_path / "ttyREC1"
    child = spawn("record", "--port", emulator.path, "--link", str(link), "--output", str(transcript))
    child.expect("Ctrl-C stops")
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)

    def until(marker: bytes) -> bytes:
        got = b""
        deadline = time.monotonic() + 10
        while marker not in got:
            assert time.monotonic() < deadline, got
            if select.select([fd], [], [], 0.2)[0]:
                got += os.read(fd, 4096)
        return got

    def aliauth(index: int, secret: str) -> bytes:
        return f'AT+QMTCFG="aliauth",{index},"pk1","dev1","{secret}"'.encode()

    try:
        for byte in aliauth(0, "keystroke-secret-0001") + b"\r":  # one write per key
            os.write(fd, bytes([byte]))
            time.sleep(0.002)
        until(b"OK\r\n")
        os.write(fd, aliauth(1, "split-secret-000002"))  # the line, then its CR later
        time.sleep(0.2)
        os.write(fd, b"\r")
        until(b"OK\r\n")
        os.write(fd, b'AT+QFUPL="UFS:note.txt",5\r')  # data after CONNECT, no CR of its own
        until(b"CONNECT\r\n")
        os.write(fd, b"hello")
        until(b"OK\r\n")
        for byte in aliauth(2, "after-data-secret-3") + b"\r":
            os.write(fd, bytes([byte]))
        until(b"OK\r\n")
    finally:
        os.close(fd)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    text = transcript.read_text()
    for secret in ("keystroke-secret-0001", "split-secret-000002", "after-data-secret-3", "secret-0", "t-3"):
        assert secret not in text, text
    assert text.count("{{device_secret:") >= 3 and "hello" in text


def test_replay_reports_a_mismatch_with_the_line(tmp_path: Path) -> None:
    seed = Path(__file__).parent.parent / "fixtures" / "seed" / "4.1.3-topic.txt"
    served = tmp_path / "ttyREPLAY0"
    child = spawn("replay", str(seed), "--link", str(served))
    child.expect("device: ")

    async def wrong() -> None:
        transport = SerialTransport(str(served))
        await transport.open()
        await transport.write(b'AT+QMTCFG="version",0,3\r')
        await asyncio.to_thread(child.expect, "mismatch")  # the port stays open until it has read it
        await transport.close()

    asyncio.run(wrong())
    child.expect(r"4\.1\.3-topic\.txt:\d+")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_record_when_the_module_port_vanishes_keeps_its_summary_and_exits_1(tmp_path: Path) -> None:
    with EmulatorThread() as emu:
        link, output = tmp_path / "ttyREC2", tmp_path / "session.txt"
        child = spawn("record", "--port", emu.path, "--link", str(link), "--output", str(output))
        child.expect("Ctrl-C stops")
        emu.unplug()
        child.expect(r"recorded \d+ bytes from the host")
        child.expect(f"quecmqtt record: {emu.path}")  # one line naming the port, no traceback
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 1
    assert "Traceback" not in (child.before or "")
    assert not link.is_symlink()  # its own link is gone
    assert output.read_text().startswith("# quecmqtt transcript")  # what was recorded is kept


def test_record_a_publish_then_replay_it_with_the_same_command(broker: Broker, tmp_path: Path) -> None:
    """A data prompt is recorded before the data it asks for, so a session with a publish
    replays; the MQTT password typed through the proxy stays out of the transcript."""
    transcript, link = tmp_path / "pub.txt", tmp_path / "ttyREC3"
    pub = [
        "mqtt", "pub", "--broker", "broker.test:1883", "--client-id", "rec-pub", "--username", "user",
        "--password-env", "MQTT_PW", "--topic", "rec/a", "--message", 'a "payload",\r\nOK', "--qos", "1",
    ]  # fmt: skip
    env = {**ENV, "MQTT_PW": "mqtt-password-0042"}
    with EmulatorThread(hosts=broker.hosts()) as emu:
        recorder = spawn("record", "--port", emu.path, "--link", str(link), "--output", str(transcript))
        recorder.expect("Ctrl-C stops")
        child = spawn_child(sys.executable, ["-m", "quecmqtt", *pub, "--port", str(link)], env=env, timeout=20)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        recorder.sendintr()
        recorder.expect(pexpect.EOF)
        recorder.close()
    text = transcript.read_text()
    assert "mqtt-password-0042" not in text and "{{password:18}}" in text
    records = text.splitlines()
    prompt = next(i for i, r in enumerate(records) if r.startswith("<") and r.endswith(r"\r\n>\x20"))
    payload = next(i for i, r in enumerate(records) if r.startswith(">") and "payload" in r)
    assert prompt < payload  # the prompt, then the data it asked for
    replayed = spawn_child(
        sys.executable, ["-m", "quecmqtt", *pub, "--port", f"replay:{transcript}"], env=env, timeout=20
    )
    replayed.expect(pexpect.EOF)
    replayed.close()
    assert replayed.exitstatus == 0, replayed.before
