"""The emulator over its pty with plain pyserial (not the driver), against a real
Mosquitto: byte-exact shapes of what a Quectel module sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker, Cloud
from tests.serialport import Port

pytestmark = pytest.mark.broker


@pytest.fixture
def emulator(broker: Broker) -> Iterator[EmulatorThread]:
    with EmulatorThread(model="EC200U", hosts=broker.hosts()) as emu:
        yield emu


@pytest.fixture
def port(emulator: EmulatorThread) -> Iterator[Port]:
    p = Port(emulator.path)
    yield p
    p.close()


def open_and_connect(port: Port, client: int = 0, host: str = "broker.test", port_no: int = 1883) -> None:
    got = port.two_phase(f'AT+QMTOPEN={client},"{host}",{port_no}', f"+QMTOPEN: {client},")
    assert got.endswith(f"\r\n+QMTOPEN: {client},0\r\n".encode()), got
    got = port.two_phase(f'AT+QMTCONN={client},"emu-{client}"', f"+QMTCONN: {client},")
    assert got.endswith(f"\r\n+QMTCONN: {client},0,0\r\n".encode()), got


def test_echo_ati_and_cme_formats(port: Port) -> None:
    assert port.command("AT") == b"AT\r\r\nOK\r\n"
    assert port.command("ATI") == b"ATI\r\r\nQuectel\r\nEC200U\r\nRevision: EC200UCNAAR02A09M08\r\n\r\nOK\r\n"
    assert port.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert port.command("AT+CMEE=2") == b"\r\nOK\r\n"
    assert port.command('AT+QFDEL="nope"', until=b"found\r\n") == b"\r\n+CME ERROR: file not found\r\n"
    port.command("AT+CMEE=1")
    assert port.command('AT+QFDEL="nope"', until=b"405\r\n") == b"\r\n+CME ERROR: 405\r\n"
    assert port.command("AT+NOSUCH", until=b"\r\nERROR\r\n") == b"\r\nERROR\r\n"


def test_publish_prompt_and_results(port: Port, cloud: Cloud) -> None:
    port.command("ATE0", until=b"OK\r\n")
    port.command('AT+QMTCFG="recv/mode",0,0,1')
    open_and_connect(port)
    cloud.subscribe("emu/up")
    assert port.command('AT+QMTPUBEX=0,1,1,0,"emu/up",5', until=b"> ") == b"\r\n> "
    port.write(b"hello")
    assert port.read_until(b"+QMTPUBEX: 0,1,0\r\n") == b"\r\nOK\r\n\r\n+QMTPUBEX: 0,1,0\r\n"
    assert cloud.messages.get(timeout=5).payload == b"hello"


@pytest.mark.parametrize("mode", [(0, 0), (0, 1)])
def test_qmtrecv_formats_per_recv_mode(port: Port, cloud: Cloud, mode: tuple[int, int]) -> None:
    port.command("ATE0", until=b"OK\r\n")
    port.command(f'AT+QMTCFG="recv/mode",0,{mode[0]},{mode[1]}')
    open_and_connect(port)
    assert port.command('AT+QMTSUB=0,1,"emu/down",1', until=b"+QMTSUB: 0,1,") + port.read_until(b"\r\n") == (
        b"\r\nOK\r\n\r\n+QMTSUB: 0,1,0,1\r\n"
    )
    payload = b'{"a":"b, c"}'
    cloud.publish("emu/down", payload)
    line = port.read_until(b'"\r\n')
    if mode == (0, 0):
        assert line == b'\r\n+QMTRECV: 0,1,"emu/down","' + payload + b'"\r\n'
    else:
        assert line == b'\r\n+QMTRECV: 0,1,"emu/down",12,"' + payload + b'"\r\n'


def test_buffer_mode_read(port: Port, cloud: Cloud) -> None:
    port.command("ATE0", until=b"OK\r\n")
    port.command('AT+QMTCFG="recv/mode",0,1,1')
    open_and_connect(port)
    port.command('AT+QMTSUB=0,2,"emu/buf",0', until=b"+QMTSUB: 0,2,0,0\r\n")
    cloud.publish("emu/buf", b"x,y", qos=0)
    assert port.read_until(b"+QMTRECV: 0,0\r\n") == b"\r\n+QMTRECV: 0,0\r\n"
    assert port.command("AT+QMTRECV?") == b"\r\n+QMTRECV: 0,1,0,0,0,0\r\n\r\nOK\r\n"
    assert port.command("AT+QMTRECV=0") == b'\r\n+QMTRECV: 0,0,"emu/buf",3,"x,y"\r\n\r\nOK\r\n'
    assert port.command("AT+QMTRECV?") == b"\r\n+QMTRECV: 0,0,0,0,0,0\r\n\r\nOK\r\n"


HOSTILE = [b'quote " comma , end', b"line1\r\nOK\r\nline2", bytes(range(256)), b'"\r\n+QMTSTAT: 0,1\r\n"']


@pytest.mark.parametrize("payload", HOSTILE, ids=["quotes", "crlf", "binary", "fake-urc"])
def test_payloads_are_byte_identical_both_ways(port: Port, cloud: Cloud, payload: bytes) -> None:
    port.command("ATE0", until=b"OK\r\n")
    port.command('AT+QMTCFG="recv/mode",0,0,1')
    open_and_connect(port)
    cloud.subscribe("emu/up")
    port.command(f'AT+QMTPUBEX=0,3,1,0,"emu/up",{len(payload)}', until=b"> ")
    port.write(payload)
    port.read_until(b"+QMTPUBEX: 0,3,0\r\n")
    assert cloud.messages.get(timeout=5).payload == payload
    port.command('AT+QMTSUB=0,4,"emu/down",1', until=b"+QMTSUB: 0,4,0,1\r\n")
    cloud.publish("emu/down", payload)
    head = b'\r\n+QMTRECV: 0,1,"emu/down",%d,"' % len(payload)
    port.read_until(head)
    body = port.read_until(b'"\r\n', timeout=5)
    while len(body) < len(payload) + 3:
        body += port.read_until(b'"\r\n', timeout=5)
    assert body == payload + b'"\r\n'


def test_subscribe_granted_qos_list(port: Port) -> None:
    port.command("ATE0", until=b"OK\r\n")
    open_and_connect(port)
    got = port.command('AT+QMTSUB=0,5,"a/1",0,"a/2",1,"a/3",2', until=b"+QMTSUB: 0,5,") + port.read_until(b"\r\n")
    assert got == b"\r\nOK\r\n\r\n+QMTSUB: 0,5,0,0,1,2\r\n"


def test_disconnect_then_close(port: Port) -> None:
    port.command("ATE0", until=b"OK\r\n")
    open_and_connect(port)
    assert port.command("AT+QMTDISC=0", until=b"+QMTDISC: 0,0\r\n") == b"\r\nOK\r\n\r\n+QMTDISC: 0,0\r\n"
    assert port.read_until(b"\r\n+QMTSTAT: 0,5\r\n")  # [R] the server closes after our DISCONNECT
    assert port.command("AT+QMTCLOSE=0", until=b"+QMTCLOSE: 0,") + port.read_until(b"\r\n") in (
        b"\r\nOK\r\n\r\n+QMTCLOSE: 0,-1\r\n",
        b"\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n",
    )


def test_open_failures_have_their_result_codes(port: Port, emulator: EmulatorThread) -> None:
    port.command("ATE0", until=b"OK\r\n")
    assert port.two_phase('AT+QMTOPEN=0,"unknown.invalid",1883', "+QMTOPEN: 0,").endswith(b"+QMTOPEN: 0,4\r\n")
    assert port.two_phase('AT+QMTOPEN=1,"127.0.0.1",1', "+QMTOPEN: 1,").endswith(b"+QMTOPEN: 1,-1\r\n")
    port.command("AT+QIDEACT=1")
    assert port.two_phase('AT+QMTOPEN=2,"broker.test",1883', "+QMTOPEN: 2,").endswith(b"+QMTOPEN: 2,3\r\n")


def _upload(port: Port, name: str, data: bytes) -> bytes:
    port.command(f'AT+QFUPL="{name}",{len(data)},10', until=b"CONNECT\r\n")
    port.write(data)
    return port.read_until(b"OK\r\n")


@pytest.mark.parametrize(("which", "result"), [("right", 0), ("wrong", -1)])
def test_tls_verifies_the_server_with_the_uploaded_ca(port: Port, broker: Broker, which: str, result: int) -> None:
    port.command("ATE0", until=b"OK\r\n")
    ca = broker.ca_pem if which == "right" else broker.wrong_ca_pem
    got = _upload(port, "UFS:ca.pem", ca)
    assert got.startswith(b"\r\n+QFUPL: %d," % len(ca)) and got.endswith(b"\r\n\r\nOK\r\n")
    port.command('AT+QSSLCFG="cacert",2,"UFS:ca.pem"')
    port.command('AT+QSSLCFG="seclevel",2,1')
    port.command('AT+QSSLCFG="sni",2,1')
    port.command('AT+QMTCFG="ssl",0,1,2')
    got = port.command('AT+QMTOPEN=0,"broker.test",8883', until=b"+QMTOPEN: 0,") + port.read_until(b"\r\n")
    assert got == b"\r\nOK\r\n\r\n+QMTOPEN: 0,%d\r\n" % result


def test_qfupl_checksum_matches_the_reference_rule(port: Port) -> None:
    port.command("ATE0", until=b"OK\r\n")
    assert _upload(port, "odd.bin", b"\x12\x34\x56") == b"\r\n+QFUPL: 3,4434\r\n\r\nOK\r\n"  # 0x1234 ^ 0x5600
    assert port.command('AT+QFLST="*"') == b'\r\n+QFLST: "UFS:odd.bin",3\r\n\r\nOK\r\n'
    port.command('AT+QFUPL="odd.bin",3', until=b"407\r\n")
