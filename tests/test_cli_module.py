"""The subcommands that drive a module, run for real under a pty against the emulator:
info, attach, mqtt pub/sub (with Mosquitto), aliyun register/connect/post (with the cloud
twin as its own `quecmqtt cloud` process), ports."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from quecmqtt.cli.ports import holders
from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker
from tests.children import spawn_child
from tests.test_cli import ENV, run_cli

PK, PS, DS2 = "pkCli0000001", "cli-product-secret", "cli-device-secret-2"
ENDPOINT = "iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com"
TWIN_ENV = {**ENV, "TWIN_PS": PS, "TWIN_DS2": DS2}  # the twin takes secrets from variables, never argv


def spawn(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> pexpect.spawn:
    return spawn_child(sys.executable, ["-m", "quecmqtt", *args], encoding="utf-8", env=env or ENV, timeout=timeout)


def finish(child: pexpect.spawn) -> tuple[int, str]:
    output = child.read()
    child.close()
    assert child.exitstatus is not None
    return child.exitstatus, output.replace("\r\n", "\n")


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emu:
        yield emu


def test_info_text_and_json(emulator: EmulatorThread) -> None:
    status, output = run_cli("info", "--port", emulator.path)
    assert status == 0, output
    assert "Quectel EC200U" in output and "IMEI:         864430010001091" in output and "dBm" in output
    status, output = run_cli("info", "--port", emulator.path, "--json")
    data = json.loads(output)
    assert data["identity"]["model"] == "EC200U" and data["sim"] == "READY" and data["registration"]["registered"]


def test_attach_and_its_failure_naming_the_step(tmp_path: Path) -> None:
    with EmulatorThread(pdp_active=False) as emu:
        status, output = run_cli("attach", "--port", emu.path, "--apn", "internet", "--timeout", "20")
        assert status == 0, output
        assert "attaching" in output and re.search(r"attached in [\d.]+ s: .* context 1 has 10\.64\.", output)
    with EmulatorThread(sim_pin="1234") as emu:
        status, output = run_cli("attach", "--port", emu.path, "--timeout", "5", "--json")
        assert status == 1
        result = json.loads(output)
        assert result["ok"] is False and result["step"] == "sim"
        pin = tmp_path / "pin"
        pin.write_text("1234\n")
        status, output = run_cli("attach", "--port", emu.path, "--pin-file", str(pin), "--timeout", "20", "--json")
        assert status == 0 and json.loads(output)["ok"] is True


@pytest.mark.broker
def test_mqtt_pub_and_sub(broker: Broker) -> None:
    with EmulatorThread(hosts=broker.hosts()) as emu_sub, EmulatorThread(hosts=broker.hosts()) as emu_pub:
        sub = spawn(
            "mqtt", "sub", "--port", emu_sub.path, "--broker", "broker.test:1883", "--client-id", "cli-sub",
            "--topic", "cli/+", "--count", "2", "--json",
        )  # fmt: skip
        sub.expect("subscribed to cli/\\+: QoS 1")
        status, output = run_cli(
            "mqtt", "pub", "--port", emu_pub.path, "--broker", "broker.test:1883", "--client-id", "cli-pub",
            "--topic", "cli/a", "--message", 'with "quotes",\r\nOK\r\n', "--count", "2",
        )  # fmt: skip
        assert status == 0, output
        assert "published 2 x 20 bytes to cli/a (QoS 1)" in output
        status, output = finish(sub)
        assert status == 0, output
        messages = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert [m["payload"] for m in messages] == ['with "quotes",\r\nOK\r\n'] * 2
        # The link dropped, then the port unplugged: sub says so and fails instead of waiting forever.
        for cut, reason in ((lambda: emu_sub.drop_link(0, 1), "+QMTSTAT: 0,1"), (emu_sub.unplug, "port lost")):
            sub = spawn(
                "mqtt", "sub", "--port", emu_sub.path, "--broker", "broker.test:1883", "--client-id", "cli-sub",
                "--topic", "cli/#", timeout=15,
            )  # fmt: skip
            sub.expect("subscribed to")
            cut()
            status, output = finish(sub)
            assert status == 1, output
            assert f"was lost (module reset: {reason})" in output or f"was lost ({reason})" in output, output
    status, output = run_cli("mqtt", "pub", "--port", "/dev/nope", "--broker", "x:1", "--topic", "t", "-m", "x")
    assert status == 2 and "no such device" in output


def test_aliyun_register_connect_post_through_the_cli(tmp_path: Path) -> None:
    cloud = spawn(
        "cloud", "--product", f"{PK}:$TWIN_PS", "--device", f"{PK}:dev1", "--device", f"{PK}:dev2:$TWIN_DS2",
        "--device", f"{PK}:dev3", env=TWIN_ENV,
    )  # fmt: skip
    try:
        cloud.expect(r"ca: (\S+)")
        ca = cloud.match.group(1)
        cloud.expect(r"--hosts ([^\r\n]+)\r\n")
        hosts = dict(item.split("=", 1) for item in cloud.match.group(1).split())
        store = tmp_path / "store"
        env = {**ENV, "MY_PS": PS}
        with EmulatorThread(hosts=hosts) as emu:
            common = ["--port", emu.path, "--product-key", PK, "--endpoint", ENDPOINT, "--ca", ca]
            child = spawn(
                "aliyun", "register", *common, "--device-name", "dev1", "--product-secret-env", "MY_PS",
                "--store", str(store), "--json", env=env,
            )  # fmt: skip
            status, output = finish(child)
            assert status == 0, output
            result = json.loads(output.splitlines()[-1])
            saved = Path(result["stored"])
            assert stat.S_IMODE(saved.stat().st_mode) == 0o600
            secret = json.loads(saved.read_text())["deviceSecret"]
            assert secret not in output  # never printed

            # again: the stored result is used, and says so; the port (one that does not exist) is not opened
            again = spawn(
                "aliyun", "register", *common[2:], "--port", "/nonexistent/tty", "--device-name", "dev1",
                "--product-secret-env", "MY_PS", "--store", str(store), env=env,
            )  # fmt: skip
            status, output = finish(again)
            assert status == 0 and "already registered: the result stored in" in output, output
            assert "registering" not in output

            status, output = run_cli("aliyun", "connect", *common, "--device-name", "dev1", "--store", str(store))
            assert status == 0 and "logged in" in output, output
            params = tmp_path / "params.json"
            params.write_text('{"Temp": 22.5}')
            status, output = run_cli(
                "aliyun", "post", *common, "--device-name", "dev1", "--store", str(store), "--params", f"@{params}"
            )
            assert status == 0 and "post_reply code 200" in output, output
            child = spawn(
                "aliyun", "post", *common, "--device-name", "dev1", "--store", str(store), "--params", "-"
            )  # fmt: skip
            child.sendline('{"Temp": 23.5}')
            child.sendeof()
            status, output = finish(child)
            assert status == 0 and "post_reply code 200" in output, output
            status, output = run_cli(
                "aliyun", "post", *common, "--device-name", "dev1", "--store", str(store), "--params", '{"Temp": 21.5}'
            )
            assert status == 0 and "post_reply code 200" in output, output
            ds_file = tmp_path / "ds2"
            ds_file.write_text(DS2)
            status, output = run_cli(
                "aliyun", "connect", *common, "--device-name", "dev2", "--device-secret-file", str(ds_file),
                "--module-signs",
            )  # fmt: skip
            assert status == 0, output
            status, output = run_cli(
                "aliyun", "connect", *common, "--device-name", "dev2", "--device-secret", "wrong-secret"
            )
            assert status == 1 and "BadCredentials" in output and "wrong-secret" not in output
            # Nothing given, nothing stored: on a terminal it asks; an empty answer is no secret.
            child = spawn("aliyun", "connect", *common, "--device-name", "nobody", "--store", str(store))
            child.expect_exact("device secret: ")
            child.sendline("")
            status, output = finish(child)
            assert status == 2 and "no device secret" in output
            # A store that cannot be written (a file where its parent should be): the result,
            # shown once by the cloud, is rescued under $HOME instead of lost, and still not printed.
            blocker = tmp_path / "blocker"
            blocker.write_text("")
            home = tmp_path / "home"
            child = spawn(
                "aliyun", "register", *common, "--device-name", "dev3", "--product-secret-env", "MY_PS",
                "--store", str(blocker / "store"), env={**env, "HOME": str(home)},
            )  # fmt: skip
            status, output = finish(child)
            assert status == 1, output
            rescued = home / ".local/share/quecmqtt/rescue" / f"{PK}.dev3.json"
            assert f"could not store the registration of {PK}/dev3" in output and f"kept in {rescued}" in output
            assert stat.S_IMODE(rescued.stat().st_mode) == 0o600
            assert json.loads(rescued.read_text())["deviceSecret"] not in output
            status, output = run_cli("aliyun", "register", "--help")
            assert all(o in output for o in ("--https", "--auth-type", "--product-secret-file", "--force"))
    finally:
        cloud.sendintr()
        cloud.expect(pexpect.EOF)


def test_ports_lists_and_names_holders() -> None:
    status, output = run_cli("ports", "--json")
    assert status == 0 and isinstance(json.loads(output), list)
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        assert any(h.endswith(f"({os.getpid()})") for h in holders(name))
    finally:
        os.close(master)
        os.close(slave)


def test_mqtt_sub_fails_when_the_link_drops_right_after_its_subscribe(broker: Broker, tmp_path: Path) -> None:
    """A broker may close the link in answer to a SUBSCRIBE: the +QMTSTAT then arrives with
    the +QMTSUB. Recorded for real, then the transcript is cut there and the URC added."""
    import paho.mqtt.publish

    transcript, link = tmp_path / "sub.txt", tmp_path / "ttyREC4"
    sub = ["mqtt", "sub", "--broker", "broker.test:1883", "--client-id", "race-sub", "--topic", "race/#"]
    with EmulatorThread(hosts=broker.hosts()) as emu:
        recorder = spawn("record", "--port", emu.path, "--link", str(link), "--output", str(transcript))
        recorder.expect("Ctrl-C stops")
        child = spawn(*sub, "--count", "1", "--port", str(link))
        child.expect("subscribed to race/#")
        paho.mqtt.publish.single("race/a", b"x", qos=1, hostname="127.0.0.1", port=broker.port)
        status, output = finish(child)
        assert status == 0, output
        recorder.sendintr()
        recorder.expect(pexpect.EOF)
        recorder.close()
    records = transcript.read_text().splitlines()
    at = next(i for i, r in enumerate(records) if r.startswith("<") and "+QMTSUB: " in r)
    records[at] += r"\r\n+QMTSTAT: 0,1\r\n"
    cut = tmp_path / "cut.txt"
    cut.write_text("\n".join(records[: at + 1]) + "\n")
    status, output = finish(spawn(*sub, "--port", f"replay:{cut}", timeout=20))
    assert status == 1, output
    assert "was lost (+QMTSTAT: 0,1) after 0 messages" in output
