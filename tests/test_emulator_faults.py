"""Every fault the emulator can inject, and what a host sees on the pty (plain pyserial)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker
from tests.serialport import Port
from tests.test_emulator import Cloud, open_and_connect

pytestmark = pytest.mark.broker


@pytest.fixture
def emulator(broker: Broker) -> Iterator[EmulatorThread]:
    with EmulatorThread(model="EC200U", hosts=broker.hosts(), boot_time=0.2) as emu:
        yield emu


@pytest.fixture
def port(emulator: EmulatorThread) -> Iterator[Port]:
    p = Port(emulator.path)
    p.command("ATE0", until=b"OK\r\n")
    yield p
    p.close()


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7])
def test_drop_link_reports_the_chosen_code(port: Port, emulator: EmulatorThread, code: int) -> None:
    open_and_connect(port)
    emulator.drop_link(0, code)
    assert port.read_until(b"\r\n") + port.read_until(b"\r\n") == f"\r\n+QMTSTAT: 0,{code}\r\n".encode()
    assert port.command("AT+QMTCONN?") == b"\r\nOK\r\n"  # the client is closed


def test_broker_side_close_is_qmtstat_1(port: Port, broker: Broker, cloud: Cloud) -> None:
    open_and_connect(port)
    # a second connection with the same client id takes the first one over
    cloud.client.disconnect()
    import paho.mqtt.client as mqtt

    thief = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="emu-0")
    thief.connect("127.0.0.1", broker.port)
    thief.loop_start()
    try:
        assert port.read_until(b"+QMTSTAT: 0,1\r\n", timeout=5).endswith(b"\r\n+QMTSTAT: 0,1\r\n")
    finally:
        thief.loop_stop()
        thief.disconnect()


def test_reboot_powered_down_silence_rdy_and_state_lost(port: Port, emulator: EmulatorThread) -> None:
    port.command('AT+QMTCFG="version",0,3')
    open_and_connect(port)
    emulator.reboot()
    seen = port.read_until(b"+QIND: PB DONE\r\n", timeout=5)
    assert seen.startswith(b"\r\nPOWERED DOWN\r\n")
    assert b"\r\nRDY\r\n\r\nAPP RDY\r\n" in seen  # EC200U
    assert port.command("AT", until=b"OK\r\n") == b"AT\r\r\nOK\r\n"  # echo is back on
    port.command("ATE0", until=b"OK\r\n")
    assert port.command('AT+QMTCFG="version",0') == b'\r\n+QMTCFG: "version",4\r\n\r\nOK\r\n'
    assert port.command("AT+QMTOPEN?") == b"\r\nOK\r\n"


def test_commands_during_the_reboot_are_lost(port: Port, emulator: EmulatorThread) -> None:
    emulator.stall(True)  # stand-in for the silent part of a boot: nothing is answered
    port.write(b"AT\r")
    assert port.quiet(0.3) == b""
    emulator.stall(False)
    assert port.command("AT") == b"\r\nOK\r\n"


def test_unplug_and_replug(port: Port, emulator: EmulatorThread) -> None:
    emulator.unplug()
    with pytest.raises(serial.SerialException):
        port.ser.read(1)  # "device reports readiness to read but returned no data"
    port.close()
    with pytest.raises(serial.SerialException):
        Port(emulator.path)  # the link dangles, like a vanished /dev/ttyUSB2
    emulator.replug()
    again = Port(emulator.path)
    try:
        assert again.command("AT") == b"\r\nOK\r\n"  # the module kept running: echo still off
    finally:
        again.close()


def test_pdp_deactivation(port: Port, emulator: EmulatorThread) -> None:
    open_and_connect(port)
    emulator.deactivate_pdp(1)
    got = port.read_until(b"+QMTSTAT: 0,1\r\n")
    assert got == b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QMTSTAT: 0,1\r\n'
    assert port.command("AT+QIACT?") == b"\r\nOK\r\n"
    assert port.command("AT+QIACT=1") == b"\r\nOK\r\n"
    assert port.command("AT+QIACT?") == b'\r\n+QIACT: 1,1,1,"10.64.1.2"\r\n\r\nOK\r\n'


def test_stall_then_resume(port: Port, emulator: EmulatorThread) -> None:
    emulator.stall(True)
    port.write(b"AT+CSQ\r")
    assert port.quiet(0.5) == b""
    emulator.stall(False)
    assert port.command("AT+CSQ") == b"\r\n+CSQ: 24,99\r\n\r\nOK\r\n"


def test_fragmented_output_arrives_in_pieces(port: Port, emulator: EmulatorThread) -> None:
    emulator.fragment(3)
    port.write(b"ATI\r")
    expected = b"\r\nQuectel\r\nEC200U\r\nRevision: EC200UCNAAR02A09M08\r\n\r\nOK\r\n"
    pieces = []
    deadline = time.monotonic() + 5
    while sum(map(len, pieces)) < len(expected) and time.monotonic() < deadline:
        chunk = port.ser.read(1)
        if chunk:
            pieces.append(chunk + port.ser.read(port.ser.in_waiting))
    assert b"".join(pieces) == expected
    assert len(pieces) > 3
    emulator.fragment(None)


def test_injected_garbage(port: Port, emulator: EmulatorThread) -> None:
    emulator.inject(b"\x00\xff\x1bgarbage\r\n")
    assert port.read_until(b"garbage\r\n") == b"\x00\xff\x1bgarbage\r\n"
    assert port.command("AT") == b"\r\nOK\r\n"


def test_delayed_urcs(port: Port, emulator: EmulatorThread) -> None:
    emulator.delay_urcs(0.5)
    started = time.monotonic()
    got = port.command('AT+QMTOPEN=0,"broker.test",1883', until=b"\r\nOK\r\n")
    assert got == b"\r\nOK\r\n" and time.monotonic() - started < 0.4  # the answer is not delayed
    assert port.read_until(b"+QMTOPEN: 0,0\r\n").endswith(b"+QMTOPEN: 0,0\r\n")
    assert time.monotonic() - started >= 0.5


def test_network_round_trip_time(port: Port, emulator: EmulatorThread) -> None:
    open_and_connect(port)
    emulator.set_rtt(0.3)
    started = time.monotonic()
    port.two_phase('AT+QMTSUB=0,1,"rtt/t",1', "+QMTSUB: 0,1,")
    assert time.monotonic() - started >= 0.3


def test_burst_of_messages(port: Port, emulator: EmulatorThread) -> None:
    port.command('AT+QMTCFG="recv/mode",0,0,1')
    open_and_connect(port)
    emulator.burst(0, "burst/t", 50)
    got = port.read_until(b'"n":49}"\r\n')
    assert got.count(b"+QMTRECV: 0,") == 50
    assert b'\r\n+QMTRECV: 0,1,"burst/t",7,"{"n":0}"\r\n' in got


def test_cfun_1_1_reboots_the_module(port: Port) -> None:
    got = port.command("AT+CFUN=1,1", until=b"+QIND: PB DONE\r\n", timeout=5)
    assert got.startswith(b"\r\nOK\r\n\r\nPOWERED DOWN\r\n") and b"\r\nRDY\r\n" in got
