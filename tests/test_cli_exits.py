"""Clean exits at a secret prompt (issue 13), under a real pty: the first Ctrl-C ends the
command with 130, Ctrl-D says no secret was given (2); never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
import pytest

from quecmqtt.emulator import EmulatorThread


def prompt(argv: list[str]) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "quecmqtt", *argv], encoding="utf-8", timeout=15)
    child.expect("secret: ")
    return child


def ended(child: pexpect.spawn) -> tuple[int | None, str]:
    child.expect(pexpect.EOF, timeout=5)  # at once: the first Ctrl-C counts
    child.close()
    return child.exitstatus, child.before


@pytest.mark.parametrize(("key", "status"), [("intr", 130), ("eof", 2)])
def test_a_prompt_in_a_plain_command(key: str, status: int) -> None:
    child = prompt(["aliyun", "sign", "--product-key", "pk", "--device-name", "dn"])
    child.sendintr() if key == "intr" else child.sendeof()
    code, output = ended(child)
    assert code == status and "Traceback" not in output and "Error" not in output, output
    if key == "eof":
        assert "no device secret given (end of input)" in output


@pytest.mark.parametrize(("key", "status"), [("intr", 130), ("eof", 2)])
def test_a_prompt_inside_a_command_that_talks_to_the_module(key: str, status: int, tmp_path: Path) -> None:
    with EmulatorThread() as emu:
        child = prompt(
            ["aliyun", "connect", "--port", emu.path, "--product-key", "pk", "--device-name", "nobody",
             "--endpoint", "x.test", "--store", str(tmp_path)]
        )  # fmt: skip
        child.sendintr() if key == "intr" else child.sendeof()
        code, output = ended(child)
    assert code == status and "Traceback" not in output, output


def test_ctrl_c_while_mqtt_pub_reads_its_message_from_the_terminal() -> None:
    """It aborted (Fatal Python error: _enter_buffered_busy, SIGABRT) three times in three."""
    with EmulatorThread() as emu:
        for _ in range(3):
            child = pexpect.spawn(
                sys.executable,
                ["-m", "quecmqtt", "mqtt", "pub", "--port", emu.path, "--broker", "b.test:1883", "--topic", "t"],
                encoding="utf-8",
                timeout=15,
            )
            child.expect("end it with Ctrl-D")
            child.sendintr()
            code, output = ended(child)
            assert code == 130 and child.signalstatus is None, output
            assert "Fatal Python error" not in output and "Traceback" not in output, output


def test_a_message_typed_at_the_terminal_is_read_to_ctrl_d() -> None:
    with EmulatorThread() as emu:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "quecmqtt", "mqtt", "pub", "--port", emu.path, "--broker", "nowhere.test:1883", "--topic", "t"],
            encoding="utf-8",
            timeout=15,
        )
        child.expect("end it with Ctrl-D")
        child.sendline("hello")
        child.sendeof()
        child.expect("connecting to nowhere.test:1883")  # the message was read; on to the broker
        code, output = ended(child)
        assert code == 1 and "Traceback" not in output, output


@pytest.mark.parametrize("command", ["emulate", "cloud", "replay", "record"])
def test_ctrl_c_on_a_serving_command_is_130_and_sigterm_is_0(command: str, tmp_path: Path) -> None:
    """The commands that serve until stopped: Ctrl-C is an interruption (130, as docs/cli.md
    says), SIGTERM a stop that was asked for (0); on b32764a Ctrl-C gave 0, replay's 1."""
    import signal

    root = Path(__file__).resolve().parent.parent
    with EmulatorThread() as emu:
        argv = {
            "emulate": ["emulate", "--link", str(tmp_path / "tty")],
            "cloud": ["cloud"],
            "replay": ["replay", str(root / "fixtures/seed/4.1.1-aliauth.txt"), "--link", str(tmp_path / "tty")],
            "record": ["record", "--port", emu.path, "--link", str(tmp_path / "tty"), "-o", str(tmp_path / "t.txt")],
        }[command]
        # replay's 1 after SIGTERM: its status says whether the transcript was completed
        for stop, status in (("intr", 130), ("term", 1 if command == "replay" else 0)):
            child = pexpect.spawn(sys.executable, ["-m", "quecmqtt", *argv], encoding="utf-8", timeout=15)
            child.expect("Ctrl-C")
            child.sendintr() if stop == "intr" else child.kill(signal.SIGTERM)
            code, output = ended(child)
            assert code == status and "Traceback" not in output, (stop, code, output)
            assert not (tmp_path / "tty").exists()  # the link went with it
