"""Defaults from the environment and the config file, and shell completion (issue 13)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker, Cloud
from tests.test_cli import ENV, run_cli

pytestmark = pytest.mark.broker


@pytest.fixture
def emulator(broker: Broker) -> Iterator[EmulatorThread]:
    with EmulatorThread(hosts=broker.hosts()) as emu:
        yield emu


def test_options_from_the_environment(emulator: EmulatorThread, cloud: Cloud) -> None:
    cloud.subscribe("defaults/env")
    env = {**ENV, "QUECMQTT_PORT": emulator.path, "QUECMQTT_BROKER": "broker.test:1883", "QUECMQTT_JSON": "1"}
    status, output = run_cli("mqtt", "pub", "-t", "defaults/env", "-m", "from env", env=env)
    assert status == 0, output
    assert json.loads(output.splitlines()[-1])["topic"] == "defaults/env"  # QUECMQTT_JSON=1: --json
    assert cloud.messages.get(timeout=5).payload == b"from env"


def test_options_from_the_config_file_the_command_line_winning(
    emulator: EmulatorThread, cloud: Cloud, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'port = "{emulator.path}"\nbroker = "nowhere.invalid:1883"\n'
        '[mqtt.pub]\nbroker = "broker.test:1883"\ntopic = "defaults/file"\nqos = 0\n'
    )
    cloud.subscribe("defaults/#")
    env = {**ENV, "QUECMQTT_CONFIG": str(config)}
    status, output = run_cli("mqtt", "pub", "-m", "from the file", env=env)  # [mqtt.pub] beats the top level
    assert status == 0 and "(QoS 0)" in output, output
    assert cloud.messages.get(timeout=5).topic == "defaults/file"
    status, output = run_cli("mqtt", "pub", "-t", "defaults/line", "-m", "x", env=env)  # the line beats the file
    assert status == 0, output
    assert cloud.messages.get(timeout=5).topic == "defaults/line"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[mqtt.pub]\npassword = "hunter2"\n', "--password is a secret and cannot come from the config file"),
        ("port = [", "is not TOML"),
        ("[mqtt.pub]\nqos = 7\n", "--qos from the config file: want one of 0, 1, 2"),
        ('[mqtt.pub]\nretain = "maybe"\n', "--retain from the config file: want true or false"),
    ],
)
def test_a_config_file_that_cannot_be_used_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    status, output = run_cli(
        "mqtt", "pub", "--port", "/dev/null", "--broker", "h:1", "-t", "t", "-m", "m",
        env={**ENV, "QUECMQTT_CONFIG": str(config)},
    )  # fmt: skip
    assert status == 2 and message in output and len(output.strip().splitlines()) == 1, output
    assert "hunter2" not in output


def test_a_secret_in_the_environment_is_refused_too() -> None:
    status, output = run_cli("aliyun", "sign", "--product-key", "pk", "--device-name", "dn",
                             env={**ENV, "QUECMQTT_DEVICE_SECRET": "s3cret"})  # fmt: skip
    assert status == 2 and "--device-secret is a secret and cannot come from QUECMQTT_DEVICE_SECRET" in output
    assert "s3cret" not in output


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["mq"], ["mqtt"]),
        (["mqtt", ""], ["pub", "sub"]),
        (["mqtt", "pub", "--qo"], ["--qos"]),
        (["mqtt", "pub", "--qos", ""], ["0", "1", "2"]),
        (["emulate", "--model", "BG9"], ["BG95", "BG96"]),
        (["aliyun", "s"], ["sign"]),
    ],
)
def test_bash_completion(words: list[str], expected: list[str]) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "quecmqtt", "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    words_text = " ".join(f"'{w}'" for w in ["quecmqtt", *words])
    probe = (
        f'{script}\nCOMP_WORDS=({words_text}); COMP_CWORD={len(words)}; _quecmqtt; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == expected
