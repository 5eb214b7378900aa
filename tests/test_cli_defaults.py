"""Defaults from the environment and the config file, and shell completion (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker, Cloud
from tests.test_cli import ENV, run_cli
from tests.test_cli_module import finish, spawn

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
        (
            '[mqtt.pub]\npassword = "hunter2"\n',
            "[mqtt] [pub] password is a secret and cannot be kept there",
        ),
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


def test_a_secret_is_never_a_default_from_the_environment(tmp_path: Path) -> None:
    """QUECMQTT_DEVICE_SECRET is not a default for --device-secret (secrets come from the
    variable --device-secret-env names), so it may well be that variable."""
    env = {**ENV, "QUECMQTT_DEVICE_SECRET": "s3cret-from-env"}
    done = subprocess.run(
        [sys.executable, "-m", "quecmqtt", "aliyun", "sign", "--product-key", "pk", "--device-name", "dn"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "s3cret" not in done.stdout + done.stderr, done.stderr  # not taken
    status, output = run_cli("aliyun", "sign", "--product-key", "pk", "--device-name", "dn",
                             "--device-secret-env", "QUECMQTT_DEVICE_SECRET", env=env)  # fmt: skip
    assert status == 0 and "password" in output, output


def test_a_secret_anywhere_in_the_file_is_refused_and_help_still_works(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[aliyun.post]\ndevice-secret = "hunter2"\n')
    env = {**ENV, "QUECMQTT_CONFIG": str(config)}
    status, output = run_cli("mqtt", "pub", "--port", "/dev/null", "--broker", "h:1", "-t", "t", "-m", "m", env=env)
    assert status == 2 and "[aliyun] [post] device-secret is a secret" in output and "hunter2" not in output, output
    status, output = run_cli("--help", env=env)
    assert status == 0 and "usage: quecmqtt" in output


def test_the_command_line_replaces_a_configured_list_and_tables_are_not_values(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """`-t b` replaces `topic = ["a/x"]` (argparse would add to it); a `[record]` table (for
    `quecmqtt record`) is not the value of the other commands' --record; --ca and --cafile
    are one option, the environment winning over the file for either name."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'port = "{emulator.path}"\nbroker = "broker.test:1883"\ncafile = "/nonexistent/from-file.pem"\n'
        '[record]\noutput = "session.txt"\n[mqtt.sub]\ntopic = ["defaults/configured"]\n'
    )
    env = {**ENV, "QUECMQTT_CONFIG": str(config)}
    child = spawn("mqtt", "sub", "-t", "defaults/given", "-C", "1", "-W", "0.5", "--ca", "", env=env)
    status, output = finish(child)
    assert "subscribed to defaults/given" in output and "defaults/configured" not in output, output
    status, output = run_cli("mqtt", "pub", "-t", "t", "-m", "m", env={**env, "QUECMQTT_CA": "/nonexistent/env.pem"})
    assert status == 2 and "/nonexistent/env.pem" in output, output
    status, output = run_cli("mqtt", "sub", "-W", "0.3", env={**env, "QUECMQTT_CA": ""})
    assert "/nonexistent/from-file.pem" in output and status == 2, output  # the file's, by its alias


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
