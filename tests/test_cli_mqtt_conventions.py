"""`mqtt pub` and `mqtt sub` as mosquitto users expect them (issue 13), under a real pty against
the emulator and Mosquitto: short flags, output formats, -C/-W, and no module client left
connected however the command ends (Ctrl-C, a publish the module refuses)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import paho.mqtt.publish
import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker
from tests.test_cli import ENV, run_cli
from tests.test_cli_module import finish, spawn

pytestmark = pytest.mark.broker


@pytest.fixture
def emulator(broker: Broker) -> Iterator[EmulatorThread]:
    with EmulatorThread(hosts=broker.hosts()) as emu:
        yield emu


def module_client_connected(emu: EmulatorThread) -> bool:
    return any(client.connected for client in emu.emulator.module.clients)


def publish(broker: Broker, topic: str, payload: bytes, *, retain: bool = False) -> None:
    paho.mqtt.publish.single(topic, payload, qos=1, retain=retain, hostname="127.0.0.1", port=broker.port)


def test_ctrl_c_on_sub_disconnects_the_module_client(emulator: EmulatorThread) -> None:
    child = spawn("mqtt", "sub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/#")
    child.expect("subscribed to conv/#")
    assert module_client_connected(emulator)
    child.sendintr()
    status, output = finish(child)
    assert status == 130 and "Traceback" not in output, output
    assert not module_client_connected(emulator)  # on b32764a: still connected


def test_a_publish_refused_after_connecting_disconnects(emulator: EmulatorThread) -> None:
    status, output = run_cli(
        "mqtt", "pub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/big", "-m", "x" * 20000
    )
    assert status == 2 and "the payload is 20000 bytes; this module publishes at most 10240" in output, output
    assert "QMTPUBEX" not in output and "length=" not in output  # the user's terms
    assert not module_client_connected(emulator)


def test_the_short_flags_publish_as_mosquitto_pub_would(emulator: EmulatorThread, broker: Broker) -> None:
    status, output = run_cli(
        "mqtt", "pub", "--port", emulator.path, "--broker", "broker.test:1883",
        "-t", "conv/short", "-m", "hello", "-q", "1", "-r", "-i", "conv-pub", "-k", "30", "-u", "someone",
    )  # fmt: skip
    assert status == 0, output
    sub = spawn("mqtt", "sub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/short", "-C", "1")
    status, output = finish(sub)  # the retained message
    assert status == 0 and output.splitlines()[-1] == "hello", output
    publish(broker, "conv/short", b"", retain=True)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], "payload\n"),  # mosquitto_sub's default: the payload alone
        (["-v"], "conv/fmt payload\n"),
        (["--json"], None),
    ],
)
def test_sub_output_formats(emulator: EmulatorThread, broker: Broker, flags: list[str], expected: str | None) -> None:
    child = spawn("mqtt", "sub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/fmt", "-C", "1",
                  *flags)  # fmt: skip
    child.expect("subscribed to conv/fmt")
    publish(broker, "conv/fmt", b"payload")
    status, output = finish(child)
    assert status == 0, output
    if expected is not None:
        assert output.endswith(expected), output
    else:
        message = json.loads(output.splitlines()[-1])
        assert message["topic"] == "conv/fmt" and message["payload"] == "payload"
        assert message["qos"] is None and message["retain"] is None and message["msg_id"] > 0  # the module says neither


def test_sub_wait_ends_quietly_or_fails_short_of_count(emulator: EmulatorThread) -> None:
    base = ["mqtt", "sub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/none"]
    status, output = finish(spawn(*base, "-W", "0.5"))
    assert status == 0 and "Traceback" not in output, output
    status, output = finish(spawn(*base, "-W", "0.5", "-C", "2"))
    assert status == 1 and "0 of 2 messages within 0.5 s" in output, output
    assert not module_client_connected(emulator)


def test_verbose_is_a_live_at_trace_with_the_secrets_redacted(emulator: EmulatorThread) -> None:
    status, output = run_cli(
        "-v", "mqtt", "pub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/v", "-m", "hi",
        "-u", "someone", "-P", "sekrit-password",
    )  # fmt: skip
    assert status == 0, output
    assert re.search(r'>@[\d.]+ AT\+QMTOPEN=0,"broker.test",1883\\r', output), output  # timed, as it happened
    assert re.search(r'AT\+QMTCONN=0,"quecmqtt-[0-9a-f]{8}","someone","\{\{password:15\}\}"', output), output
    assert "sekrit-password" not in output
    assert "quecmqtt: INFO: module ready" in output  # the library's log, through logging


def test_quiet_says_nothing_but_errors(emulator: EmulatorThread) -> None:
    status, output = run_cli(
        "-q", "mqtt", "pub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/q", "-m", "hi"
    )
    assert status == 0 and "connecting to" not in output and "published 1 x 2 bytes" in output, output
    status, output = run_cli("-q", "mqtt", "pub", "--port", emulator.path, "--broker", "nohost.invalid:1883",
                             "-t", "conv/q", "-m", "hi")  # fmt: skip
    assert status == 1 and output.strip().startswith("quecmqtt mqtt pub: MqttOpenError"), output


def test_a_long_wait_counts_its_seconds_on_a_terminal(broker: Broker) -> None:
    with EmulatorThread(hosts=broker.hosts(), rtt=0.8) as emu:  # open and connect: two round trips
        child = spawn("mqtt", "pub", "--port", emu.path, "--broker", "broker.test:1883", "-t", "conv/slow", "-m", "x")
        child.expect_exact("connecting to broker.test:1883 ... 1 s")
        status, output = finish(child)
    assert status == 0 and "published 1 x 1 bytes" in output, output


def test_a_post_the_platform_never_answers_leaves_no_client_connected(broker: Broker) -> None:
    """`aliyun post` whose post_reply never comes: status 1, and the module's client is
    disconnected and closed (on b32764a it stayed connected with the device's login)."""
    from quecmqtt.cloud import DEFAULT_ENDPOINT
    from tests.broker import TwinThread

    # a twin with no responder: nobody answers posts
    twins = TwinThread(
        broker, respond=False, products=[("pkSilent0001", "not-used")],
        devices=[("pkSilent0001", "dev1", "silent-device-secret")],
    )  # fmt: skip
    try:
        with EmulatorThread(hosts=twins.twin.hosts()) as emu:
            status, output = run_cli(
                "aliyun", "post", "--port", emu.path, "--product-key", "pkSilent0001", "--device-name", "dev1",
                "--device-secret", "silent-device-secret", "--endpoint", DEFAULT_ENDPOINT, "--params", '{"a": 1}',
                "--timeout", "1", "--module-signs",
            )  # fmt: skip
            assert status == 1 and "no post_reply within 1 s" in output, output
            assert not module_client_connected(emu)
            assert emu.emulator.module.clients[0].cfg["aliauth"] is None
    finally:
        twins.close()


def test_the_librarys_log_lines_carry_the_prefix(emulator: EmulatorThread) -> None:
    """A module that reboots under `mqtt sub`: the library's report is a `quecmqtt: WARNING:`
    line, not Python's bare last-resort output (on b32764a: a raw `module reported ...`)."""
    child = spawn("mqtt", "sub", "--port", emulator.path, "--broker", "broker.test:1883", "-t", "conv/reboot")
    child.expect("subscribed to conv/reboot")
    emulator.reboot()
    status, output = finish(child)
    assert status == 1 and "connection to broker.test:1883 was lost" in output, output
    lines = [line for line in output.splitlines() if line.startswith("module reported")]
    assert not lines and "quecmqtt: WARNING: module reported POWERED DOWN" in output, output


def test_a_secret_variable_that_is_not_text_is_one_line() -> None:
    env = {**ENV, "DS_BYTES": os.fsdecode(b"ab\xffcd")}
    status, output = run_cli("aliyun", "sign", "--product-key", "pk", "--device-name", "dn",
                             "--device-secret-env", "DS_BYTES", env=env)  # fmt: skip
    assert status == 2 and "not valid text: an unpaired surrogate at position 2" in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1
