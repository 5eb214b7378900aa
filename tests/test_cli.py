"""The real `quecmqtt` command under a real pty (pexpect)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from tests.children import spawn_child
from tests.conftest import SEED
from tests.serialport import Port

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}


def run_cli(*args: str, timeout: float = 20, env: dict[str, str] | None = None) -> tuple[int, str]:
    child = spawn_child(
        sys.executable, ["-m", "quecmqtt", *args], encoding="utf-8", timeout=timeout, echo=False, env=env or ENV
    )
    output = child.read()
    child.close()
    assert child.exitstatus is not None, "the command did not exit by itself"
    return child.exitstatus, output.replace("\r\n", "\n")


@pytest.mark.parametrize("fixture", sorted(p.name for p in SEED.glob("*.txt")))
def test_decode_prints_the_documented_events_for_each_seed_fixture(fixture: str) -> None:
    status, output = run_cli("decode", str(SEED / fixture))
    assert status == 0, output
    events = [json.loads(line) for line in output.splitlines()]
    golden = [
        json.loads(line) for line in (SEED / "decoded" / fixture.replace(".txt", ".jsonl")).read_text().splitlines()
    ]
    assert events == golden
    allowed = {"command", "mqtt_message", "mqtt_status", "module_ready", "powered_down", "urc", "final", "garbage"}
    assert {e["event"] for e in events} <= allowed
    host_lines = [r for r in (SEED / fixture).read_text().splitlines() if r.startswith("> AT")]
    commands = [e for e in events if e["event"] == "command"]
    assert len(commands) == len(host_lines)
    assert all(set(c) >= {"command", "final", "lines"} and c["final"] == "OK" for c in commands)
    assert all("\\r" not in c["command"] and c["command"].startswith("AT") for c in commands)


def test_decode_raw_capture(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(
        b'\r\nRDY\r\n\r\n+QMTOPEN: 0,-1\r\n\r\nOK\r\n\r\n+QMTRECV: 1,2,"t",3,"\xff\x00\x01"\r\n\x00\x01xx\r\n'
    )
    status, output = run_cli("decode", "--raw", str(capture))
    assert status == 0
    assert [json.loads(line) for line in output.splitlines()] == [
        {"event": "module_ready", "banner": "RDY"},
        {"event": "urc", "prefix": "+QMTOPEN", "fields": [0, -1]},
        {"event": "final", "final": "OK"},
        {"event": "mqtt_message", "client": 1, "msg_id": 2, "topic": "t", "payload_hex": "ff0001"},
        {"event": "garbage", "hex": "00017878"},
    ]


def test_decode_errors_are_clear(tmp_path: Path) -> None:
    status, output = run_cli("decode", str(tmp_path / "missing.txt"))
    assert status == 2 and "no such file" in output
    bad = tmp_path / "bad.txt"
    bad.write_text("# quecmqtt transcript 1\n> AT\\r\n< \\q\n")
    status, output = run_cli("decode", str(bad))
    assert status == 2 and "bad.txt:3" in output and "unknown escape" in output


def test_help_teaches() -> None:
    status, output = run_cli("decode", "--help")
    assert status == 0
    assert "--raw" in output and "JSON" in output and "Example" in output
    status, output = run_cli()
    assert status == 2 and "decode" in output


def test_emulate_serves_a_port_and_takes_faults(tmp_path: Path) -> None:
    link = tmp_path / "ttyQUEC0"
    argv = ["-m", "quecmqtt", "emulate", "--model", "BG96", "--link", str(link), "--echo", "off"]
    emulator = spawn_child(sys.executable, argv, encoding="utf-8", timeout=10, echo=False, env=ENV)
    try:
        emulator.expect(r"device: (\S+)\r\n")
        assert emulator.match.group(1) == str(link)
        emulator.expect(r"control: (\S+)")
        control = emulator.match.group(1)
        port = Port(str(link))
        try:
            assert port.command("ATI") == b"\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n"
            status, output = run_cli("fault", "--control", control, "reboot")
            assert status == 0, output
            seen = port.read_until(b"+QIND: SMS DONE\r\n", timeout=5)
            assert seen.startswith(b"\r\nPOWERED DOWN\r\n") and b"\r\nRDY\r\n" in seen
            assert b"APP RDY" not in seen  # BG96 has no APP RDY
            status, output = run_cli("fault", "--control", control, "drop-link", "9")
            assert status == 2 and "CLIENT: want 0-5, got 9" in output
            status, output = run_cli("fault", "--control", control, "no-such-fault")
            assert status == 2 and "invalid choice" in output
            # a second emulator on the same link must not take over the first one's live pty
            status, output = run_cli("emulate", "--link", str(link))
            assert status == 2 and "live link" in output
            status, output = run_cli("emulate", "--link", str(tmp_path / "other"), "--control", control)
            assert status == 2 and "running emulator" in output
            assert not (tmp_path / "other").is_symlink()
            assert port.command("AT") == b"\r\nOK\r\n"  # the first one still answers on its link
        finally:
            port.close()
        emulator.sendintr()
        emulator.expect(pexpect.EOF)
    finally:
        emulator.close()
    assert emulator.exitstatus == 130  # Ctrl-C: interrupted (docs/cli.md)
    assert not link.exists()


def test_emulate_and_fault_help_explain_every_option() -> None:
    status, output = run_cli("emulate", "--help")
    assert status == 0
    for option in ("--model", "--hosts", "--link", "--echo", "--rtt", "--sim-pin", "--no-pdp", "--boot", "--control"):
        assert option in output
    assert "NAME:ORIGPORT=ADDR:PORT" in output.replace("\n", " ").replace("  ", " ")
    status, output = run_cli("fault", "--help")
    assert status == 0
    for fault in ("reboot", "drop-link", "unplug", "replug", "pdp-deactivate", "stall", "resume", "fragment",
                  "inject", "delay-urcs", "rtt", "burst"):  # fmt: skip
        assert fault in output


def test_demo_runs_every_step_and_exits_0(tmp_path: Path) -> None:
    status, output = run_cli("demo", timeout=60, env={**ENV, "TMPDIR": str(tmp_path)})
    assert status == 0, output
    steps = [line for line in output.splitlines() if line.startswith("[")]
    assert len(steps) == 10 and all(" ok (" in line for line in steps), output
    assert "post_reply" in output and "-> 200" in output
    assert "all 10 steps succeeded" in output
    # The DeviceSecret's temporary store goes with the demo.
    assert list(tmp_path.iterdir()) == []  # neither the secret store nor the emulator's pty link remain


def test_demo_exits_1_and_names_the_failed_step_when_a_step_fails() -> None:
    # Port 9 (discard) is closed on loopback: the twin cannot reach the broker, step 1 fails.
    status, output = run_cli("demo", "--broker", "127.0.0.1:9", timeout=60)
    assert status == 1, output
    assert "[ 1/10] start the cloud twin ... FAILED after" in output
    assert "ConnectionRefusedError" in output and "steps succeeded" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("decode", "/"), "cannot read /: Is a directory"),
        (("replay", "/"), "cannot read /: Is a directory"),
        (("mqtt", "pub", "--port", "/dev/null", "--broker", "h:1", "--topic", "t", "--file", "/no/x"), "cannot read"),
        (("mqtt", "pub", "--port", "/dev/null", "--broker", "h:1", "--topic", "t", "--count", "-3"), "want 1 or more"),
        (("demo", "--broker", "foo"), "want HOST:PORT"),
        (("info", "--port", "replay:/no/such/transcript"), "no such transcript"),
        (("aliyun", "sign", "--product-key", "pk", "--device-name", "dn", "--device-secret", ""), "empty"),
    ],
)
def test_a_command_line_that_cannot_work_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    status, output = run_cli(*args)
    assert status == 2, output
    assert message in output and "Traceback" not in output


def test_replay_leaves_a_file_named_as_its_link_alone_and_cleans_its_temporary_link(tmp_path: Path) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me")
    status, output = run_cli("replay", str(SEED / "4.1.3-topic.txt"), "--link", str(victim))
    assert status == 2 and "exists and is not a link" in output
    assert victim.read_text() == "keep me"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    child = spawn_child(
        sys.executable, ["-m", "quecmqtt", "replay", str(SEED / "4.1.3-topic.txt")],
        encoding="utf-8", timeout=10, env={**ENV, "TMPDIR": str(scratch)},
    )  # fmt: skip
    child.expect("device: ")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert list(scratch.iterdir()) == []
