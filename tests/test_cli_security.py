"""Secure defaults of the command line (issue 13), under a real pty with pexpect, against the
emulator, the cloud twin and a real Mosquitto whose log shows what reached it."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker, Cloud
from tests.serialport import Port
from tests.test_cli import run_cli
from tests.test_cli_module import DS2, ENDPOINT, PK, TWIN_ENV, spawn

pytestmark = pytest.mark.broker


def connections(broker: Broker) -> list[str]:
    """The broker's "New client connected ... as <id> (..., u'<user>')" lines."""
    return [line for line in broker.log.read_text(errors="replace").splitlines() if "New client connected" in line]


def test_an_aliyun_login_the_module_signed_never_reaches_another_broker(broker: Broker, tmp_path: object) -> None:
    """`aliyun connect --module-signs` sets the module's aliauth; a later `mqtt pub` with no user
    name to another broker must not be signed with it (client id "|securemode=...|", user
    name dn&pk, an HMAC password: the device's login, replayable)."""
    cloud = spawn("cloud", "--product", f"{PK}:$TWIN_PS", "--device", f"{PK}:dev2:$TWIN_DS2", env=TWIN_ENV)
    try:
        cloud.expect(r"ca: (\S+)")
        ca = cloud.match.group(1)
        cloud.expect(r"--hosts ([^\r\n]+)\r\n")
        hosts = {**broker.hosts(), **dict(item.split("=", 1) for item in cloud.match.group(1).split())}
        with EmulatorThread(hosts=hosts) as emu:
            status, output = run_cli(
                "aliyun", "connect", "--port", emu.path, "--product-key", PK, "--endpoint", ENDPOINT, "--ca", ca,
                "--device-name", "dev2", "--device-secret", DS2, "--module-signs",
            )  # fmt: skip
            assert status == 0, output
            port = Port(emu.path)  # the Aliyun command cleared what it set
            assert port.command('AT+QMTCFG="aliauth",0').startswith(b'\r\n+QMTCFG: "aliauth",,,')
            port.close()
            status, output = run_cli(
                "mqtt", "pub", "--port", emu.path, "--broker", "broker.test:1883", "--client-id", "innocent",
                "--topic", "t/innocent", "--message", "hi",
            )  # fmt: skip
            assert status == 0, output
    finally:
        cloud.sendintr()
        cloud.expect(pexpect.EOF)
    seen = [line for line in connections(broker) if " as innocent" in line]
    assert seen, connections(broker)
    assert all("securemode" not in line and "u'" not in line for line in seen), seen
    assert not any(re.search(rf"dev2&{PK}", line) for line in connections(broker))


def test_tls_without_ca_verifies_against_the_shipped_roots(broker: Broker, tmp_path: object) -> None:
    """`mqtt pub --tls` without `--ca` used to connect with seclevel 0 (no check at all). Now the
    broker's certificate is checked against the shipped public roots: a broker with a private
    CA is refused with a message that names the certificate, and nothing reaches it.
    `--insecure` is the explicit opt-out, with a warning."""
    with EmulatorThread(hosts=broker.hosts()) as emu:
        base = ["mqtt", "pub", "--port", emu.path, "--broker", "broker.test:8883", "--topic", "t/tls", "-m", "x"]
        status, output = run_cli(*base, "--tls", "--client-id", "cli-tls-checked")
        assert status == 1, output
        assert "certificate" in output and "Traceback" not in output, output
        assert not any(" as cli-tls-checked " in line for line in connections(broker))
        status, output = run_cli(*base, "--insecure", "--client-id", "cli-tls-insecure")
        assert status == 0, output
        assert "--insecure: the broker's certificate is not checked" in output
        assert any(" as cli-tls-insecure " in line for line in connections(broker))


def test_info_changes_nothing_on_the_module(broker: Broker) -> None:
    """`info` says "Nothing is changed": another program's client stays connected and the
    module's echo and error format stay as they were."""
    with EmulatorThread(hosts=broker.hosts()) as emu:
        port = Port(emu.path)
        port.command("ATE1")  # echo on, as another program left it
        port.command("AT+CMEE=0")
        port.command('AT+QMTOPEN=1,"broker.test",1883', until=b"+QMTOPEN: 1,0\r\n")
        port.command('AT+QMTCONN=1,"someone-else"', until=b"+QMTCONN: 1,0,0\r\n")
        status, output = run_cli("info", "--port", emu.path)
        assert status == 0 and "IMEI" in output, output
        assert port.command("AT+QMTCONN?") == b"AT+QMTCONN?\r\r\n+QMTCONN: 1,3\r\n\r\nOK\r\n"  # echoed, connected
        assert port.command("AT+CMEE?").endswith(b"+CMEE: 0\r\n\r\nOK\r\n")
        port.close()


def test_version() -> None:
    from quecmqtt import __version__

    status, output = run_cli("--version")
    assert status == 0 and output.strip() == f"quecmqtt {__version__}" and __version__[0].isdigit()


def test_a_reader_that_goes_away_ends_mqtt_sub_quietly(broker: Broker, cloud: Cloud) -> None:
    """`quecmqtt mqtt sub ... | head -1`: no BrokenPipeError, exit 0."""
    import subprocess
    import sys
    import time

    with EmulatorThread(hosts=broker.hosts()) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "quecmqtt", "mqtt", "sub", "--port", emu.path, "--broker", "broker.test:1883",
             "--client-id", "cli-pipe", "--topic", "pipe/#"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None and proc.stdout is not None
        err = b""
        while b"subscribed to" not in err:
            line = proc.stderr.readline()
            assert line, err
            err += line
        cloud.publish("pipe/a", b"first")
        assert proc.stdout.readline() != b""
        proc.stdout.close()  # what `head -1` does after its line
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            cloud.publish("pipe/a", b"more")  # the next write finds the pipe closed
            time.sleep(0.2)
        assert proc.wait(timeout=5) == 0
        rest = proc.stderr.read()
        assert b"BrokenPipe" not in err + rest and b"Traceback" not in rest, rest


def test_the_default_client_id_is_random(broker: Broker) -> None:
    """Two devices run with the defaults must not take each other's session on the broker."""
    with EmulatorThread(hosts=broker.hosts()) as emu:
        for _ in range(2):
            status, output = run_cli(
                "mqtt", "pub", "--port", emu.path, "--broker", "broker.test:1883", "--topic", "t/id", "-m", "x"
            )
            assert status == 0, output
    ids = [m.group(1) for line in connections(broker) if (m := re.search(r" as (quecmqtt-[0-9a-f]{8}) ", line))]
    assert len(ids) >= 2 and len(set(ids[-2:])) == 2, ids


KEY_PEM = (
    b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7quecmqtttestkey\n"
    b"-----END PRIVATE KEY-----\n"
)
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUquecmqttpubliccert\n-----END CERTIFICATE-----\n"


def test_record_keeps_an_uploaded_private_key_out_of_the_transcript(tmp_path: Path) -> None:
    """A program that uploads a client key through `quecmqtt record` (AT+QFUPL, then the raw
    bytes): the transcript holds a placeholder for the key, the certificate in clear; and a
    password typed with V.250's blanks (`AT + QMTCONN = ...`) is found as well."""
    import asyncio

    from quecmqtt.modem import Modem
    from quecmqtt.secret import Secret
    from quecmqtt.services.tls import Files
    from quecmqtt.transport.serial import SerialTransport

    async def flow(path: str) -> None:
        async with Modem(SerialTransport(path)) as modem:
            files = Files(modem)
            await files.upload("client.pem", CERT_PEM)
            await files.upload("client.key", Secret(KEY_PEM, "client_key"))
            await modem.write_raw(b'AT + QMTCFG = "aliauth",0,"pk1","dev1","blank-spaced-secret"\r')

    transcript, link = tmp_path / "session.txt", tmp_path / "ttyREC0"
    with EmulatorThread() as emu:
        child = spawn("record", "--port", emu.path, "--link", str(link), "--output", str(transcript))
        child.expect("Ctrl-C stops")
        asyncio.run(flow(str(link)))
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
    text = transcript.read_text()
    assert "QUECMQTTTESTKEY".lower() not in text.lower() and "PRIVATE KEY" not in text, text  # on b32764a: in clear
    assert f"{{{{private_key:{len(KEY_PEM)}}}}}" in text or f"{{{{client_key:{len(KEY_PEM)}}}}}" in text, text
    assert "quecmqttpubliccert" in text  # public: stays readable
    assert "blank-spaced-secret" not in text


def test_the_console_history_keeps_no_secret_in_any_form(tmp_path: Path) -> None:
    history = tmp_path / "history"
    with EmulatorThread() as emu:
        child = spawn("at", "--port", emu.path, "--history", str(history), timeout=10)
        for line in (
            'AT + QMTCFG = "aliauth",0,"pk1","dev1","spaced-secret-1"',
            'AT+VENDORSECRET="vendor-secret-2"',
            'AT+CSQ;+VENDORTHING="vendor-secret-3"',
            "AT+CSQ",
        ):
            child.expect_exact("AT> ")
            child.sendline(line)
        child.expect_exact("AT> ")
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
    saved = history.read_text()
    assert "AT+CSQ" in saved and "AT+VENDORSECRET=***" in saved, saved
    assert not re.search("spaced-secret|vendor-secret", saved), saved


def test_record_hides_a_key_upload_cut_short(tmp_path: Path) -> None:
    """An upload of a key that never completes (the recording stops in the middle of the
    data): what came of it is hidden all the same (a review found it recorded in clear)."""
    import time

    from tests.serialport import Port as SerialPort

    transcript, link = tmp_path / "session.txt", tmp_path / "ttyREC0"
    with EmulatorThread() as emu:
        child = spawn("record", "--port", emu.path, "--link", str(link), "--output", str(transcript))
        child.expect("Ctrl-C stops")
        port = SerialPort(str(link))
        try:
            port.write(b'AT+QFUPL="UFS:part.pem",2000,60\r')
            assert b"CONNECT" in port.read_until(b"CONNECT", timeout=5)
            port.write(KEY_PEM)  # 2000 announced: the module still waits for the rest
            module = emu.emulator.module
            deadline = time.monotonic() + 5  # until the key went through the proxy to the module
            while not (module._entry is not None and len(module._entry.buffer) >= len(KEY_PEM)):
                assert time.monotonic() < deadline, "the upload did not reach the module"
                time.sleep(0.01)
        finally:
            port.close()
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
    text = transcript.read_text()
    assert "quecmqtttestkey" not in text.lower() and "PRIVATE KEY" not in text, text
    assert f"{{{{private_key:{len(KEY_PEM)}}}}}" in text, text
