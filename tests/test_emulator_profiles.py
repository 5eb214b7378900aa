"""The model profiles differ where the module families differ (plain pyserial). The
expectations are the manuals' facts written out here, not read from the profiles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker, Cloud
from tests.serialport import Port
from tests.test_emulator import open_and_connect

pytestmark = pytest.mark.broker


@pytest.fixture(params=["EC200U", "EC25", "BG96", "BG95"])
def model(request: pytest.FixtureRequest, broker: Broker) -> Iterator[tuple[str, Port]]:
    with EmulatorThread(model=request.param, hosts=broker.hosts()) as emu:
        port = Port(emu.path)
        port.command("ATE0", until=b"OK\r\n")
        yield request.param, port
        port.close()


# BG96: only the Ctrl-Z form (MQTT AN V1.0 3.2.8); BG95: QMTPUB with a length and QMTPUBEX
# inline (Quectel's SDK ql_mqtt.c, LooUQ ltemc-mqtt.c)
FORMS = {"EC200U": {"pubex"}, "EC25": {"pubex", "fixed", "ctrlz"}, "BG96": {"ctrlz"}, "BG95": {"fixed", "inline"}}


def test_publish_forms_per_model(model: tuple[str, Port], cloud: Cloud) -> None:
    name, port = model
    open_and_connect(port)
    cloud.subscribe("forms/t")
    forms = FORMS[name]
    # QMTPUBEX with a length
    reply = port.command('AT+QMTPUBEX=0,1,1,0,"forms/t",3', until=b"> " if "pubex" in forms else b"ERROR\r\n")
    if "pubex" in forms:
        port.write(b"abc")
        assert port.read_until(b"+QMTPUBEX: 0,1,0\r\n").endswith(b"\r\n+QMTPUBEX: 0,1,0\r\n")
        assert cloud.messages.get(timeout=5).payload == b"abc"
    else:
        assert reply == b"\r\nERROR\r\n"
    # QMTPUB fixed length
    reply = port.command('AT+QMTPUB=0,2,1,0,"forms/t",4', until=b"> " if "fixed" in forms else b"ERROR\r\n")
    if "fixed" in forms:
        port.write(b"a\x1ab\x1b")  # binary-safe by count
        assert port.read_until(b"+QMTPUB: 0,2,0\r\n").endswith(b"\r\n+QMTPUB: 0,2,0\r\n")
        assert cloud.messages.get(timeout=5).payload == b"a\x1ab\x1b"
    else:
        assert reply == b"\r\nERROR\r\n"
    # QMTPUB with Ctrl-Z, and ESC cancelling one
    reply = port.command('AT+QMTPUB=0,3,1,0,"forms/t"', until=b"> " if "ctrlz" in forms else b"ERROR\r\n")
    if "ctrlz" in forms:
        port.write(b"zed\x1a")
        assert port.read_until(b"+QMTPUB: 0,3,0\r\n").endswith(b"\r\n+QMTPUB: 0,3,0\r\n")
        assert cloud.messages.get(timeout=5).payload == b"zed"
        port.command('AT+QMTPUB=0,4,1,0,"forms/t"', until=b"> ")
        port.write(b"never\x1b")
        assert port.read_until(b"OK\r\n") == b"\r\nOK\r\n"  # [R] cancelled: nothing published
        assert port.quiet(0.3) == b""
        assert cloud.messages.empty()
    else:
        assert reply == b"\r\nERROR\r\n"
    # QMTPUBEX with the message inline
    reply = port.command('AT+QMTPUBEX=0,5,1,0,"forms/t","in,line"', until=b"\r\n", timeout=2) + port.read_until(b"\r\n")
    if "inline" in forms:
        assert reply == b"\r\nOK\r\n"
        assert port.read_until(b"+QMTPUBEX: 0,5,0\r\n").endswith(b"+QMTPUBEX: 0,5,0\r\n")
        assert cloud.messages.get(timeout=5).payload == b"in,line"
        too_long = '"' + "x" * 561 + '"'
        assert port.command(f'AT+QMTPUBEX=0,6,1,0,"forms/t",{too_long}', until=b"ERROR\r\n") == b"\r\nERROR\r\n"
    else:
        assert reply == b"\r\nERROR\r\n"


def test_qmtcfg_test_form_and_ranges_per_model(model: tuple[str, Port]) -> None:
    name, port = model
    listing = port.command("AT+QMTCFG=?")
    keys = listing.count(b"+QMTCFG: ")
    assert keys == {"EC200U": 19, "EC25": 10, "BG96": 8, "BG95": 9}[name]  # BG96: MQTT AN V1.0 3.2.1
    assert (b'"edit/timeout"' in listing) == (name == "EC200U")
    assert (b'"recv/mode"' in listing) == (name != "BG96")
    assert (b'"qmtping"' in listing) == (name in ("EC200U", "EC25"))
    too_long = port.command('AT+QMTCFG="timeout",0,100,3,0', until=b"\r\n", timeout=2) + port.read_until(b"\r\n")
    assert too_long == (b"\r\nOK\r\n" if name == "EC200U" else b"\r\nERROR\r\n")  # 1-1200 vs 1-60


def test_identity_per_model(model: tuple[str, Port]) -> None:
    name, port = model
    assert port.command("ATI").split(b"\r\n")[2].startswith(name.encode())
    assert port.command("AT+CGMR").startswith(b"\r\n" + name.encode())
