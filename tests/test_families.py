"""The thirteen findings of issue 12, one test each (or more), against the emulator's strict
family profiles through a real pty and a real Mosquitto. Each asserts the fact the family has
(as its manual or a real capture says, written out here) and what the driver does about it.
Finding 12 (emulator robustness) is in tests/test_emulator_robustness.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from quecmqtt.at import commands as C
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError, InvalidArgument
from quecmqtt.mqtt.client import FORM_CTRLZ, FORM_FIXED, MqttClient
from quecmqtt.mqtt.config import MqttConfig
from quecmqtt.runtime import Modem
from quecmqtt.services.tls import Tls
from tests.broker import TLS_NAMES, Broker, Cloud
from tests.mqtt_rig import BROKER_HOST, received, rig
from tests.peer import until
from tests.serialport import Port

pytestmark = pytest.mark.broker


def sent_lines(modem: Modem) -> list[bytes]:
    """Every command line the driver writes from now on."""
    lines: list[bytes] = []

    def observe(command: Command, what: str) -> None:
        if what == "sent":
            lines.append(command.line)

    modem.observe_commands(observe)
    return lines


async def raw(modem: Modem, line: str) -> tuple[str, ...]:
    """A command as a console would send it, and its response lines."""
    spec = C.QMTRECV_READ().spec
    command = Command.raw(spec, line.encode(), {}, line)
    reply = await modem.execute(command)
    return reply.lines


# -- 1. BG95/BG77 publishing ------------------------------------------------------------------


async def test_01_bg95_publishes_with_a_form_it_has(broker: Broker, cloud: Cloud) -> None:
    """BG95's AT+QMTPUBEX takes the message inline (Quectel SDK ql_mqtt.c:492-505): a
    length-prompt QMTPUBEX is refused; the driver reads the =? answer and uses QMTPUB."""
    cloud.subscribe("bg95/#")
    async with rig(broker, model="BG95") as r:
        answer = (await r.modem.execute(C.QMTPUBEX_TEST())).lines
        assert answer[0].endswith('"topic","msg"')  # the last field: an inline message
        client = MqttClient(r.modem, 0)
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-bg95")
        with pytest.raises(CommandError):
            await r.modem.execute(C.QMTPUBEX(0, 1, 1, 0, "bg95/t", 3), b"abc")  # what main sent
        await client.publish("bg95/t", b"\x00binary, \r\n ok", qos=1)
        assert client.publish_form == FORM_FIXED
        assert [m.payload for m in await received(cloud, 1)] == [b"\x00binary, \r\n ok"]
        await client.close()


# -- 2. TLS set-up on BG96 ---------------------------------------------------------------------


@pytest.mark.parametrize(("model", "sni_line"), [("BG96", None), ("EC25", b'"sni",1,1'), ("EG800K", b'"sni",1,"')])
async def test_02_tls_sends_only_the_ssl_keys_the_module_lists(
    broker: Broker, cloud: Cloud, model: str, sni_line: bytes | None
) -> None:
    """BG96's SSL manual has no sni/checkhost/session: AT+QSSLCFG="sni" is ERROR there, and
    the set-up (and with it MQTT over TLS) must still work. EC25 takes sni as a flag, EG800K
    [R] as a name."""
    cloud.subscribe("tls/#")
    async with rig(broker, model=model) as r:
        if model == "BG96":
            with pytest.raises(CommandError):
                await r.modem.execute(C.QSSLCFG["sni"](1, 1))
        lines = sent_lines(r.modem)
        await Tls(r.modem).setup(1, ca=broker.ca_pem, clock=None, server_name=TLS_NAMES[0])
        sni = [line for line in lines if b'"sni"' in line]
        if sni_line is None:
            assert sni == []
        else:
            assert len(sni) == 1 and sni_line in sni[0]
        client = MqttClient(r.modem, 0, MqttConfig(ssl_context=1))
        await client.open(TLS_NAMES[0], 8883)
        await client.connect(f"dev-tls-{model}")
        await client.publish("tls/t", b"over tls", qos=1)
        assert [m.payload for m in await received(cloud, 1)] == [b"over tls"]
        await client.close()


# -- 3. BG96 publishing --------------------------------------------------------------------------


async def test_03_bg96_ctrlz_only_1548_bytes_and_5_in_flight(broker: Broker, cloud: Cloud) -> None:
    """BG96 (MQTT AN V1.0 3.2.8): only the Ctrl-Z form; input past 1548 bytes is dropped;
    at most 5 publishes in flight."""
    cloud.subscribe("bg96/#")
    async with rig(broker, model="BG96", rtt=0.3) as r:
        client = MqttClient(r.modem, 0)
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-bg96")
        await client.publish("bg96/t", b"first", qos=1)
        assert client.publish_form == FORM_CTRLZ
        assert client.form is not None and client.form.max_length == 1548
        with pytest.raises(InvalidArgument, match="at most 1548"):
            await client.publish("bg96/t", b"x" * 1549, qos=1)  # refused here, not truncated there
        await client.publish("bg96/t", b"y" * 1548, qos=1)
        # the module keeps 5 in flight and refuses the 6th (rtt 0.3 s: no ack is back yet)
        handles = [await client.publish_nowait("bg96/t", b"%d" % i, qos=1) for i in range(5)]
        with pytest.raises(CommandError):
            await client.publish_nowait("bg96/t", b"sixth", qos=1)
        await asyncio.gather(*(h.result() for h in handles))
        got = await received(cloud, 7)
        assert [len(m.payload) for m in got[:2]] == [5, 1548]
        await client.close()


async def test_03_a_first_payload_no_bg96_form_can_carry_is_refused_not_retried(broker: Broker, cloud: Cloud) -> None:
    """Before the form is learned, a payload with Ctrl-Z bytes meets BG96's refusal of the
    length form: a clear InvalidArgument (a session dead-letters it), not a reconnect loop."""
    cloud.subscribe("first/#")
    async with rig(broker, model="BG96") as r:
        client = MqttClient(r.modem, 0)
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-first")
        with pytest.raises(InvalidArgument, match="0x1A or 0x1B"):
            await client.publish("first/t", b"a\x1ab", qos=1)
        await client.publish("first/t", b"plain", qos=1)
        assert client.publish_form == FORM_CTRLZ
        assert [m.payload for m in await received(cloud, 1)] == [b"plain"]
        await client.close()


async def test_03_a_session_learns_the_in_flight_window_the_module_has(broker: Broker, cloud: Cloud) -> None:
    """Asked for 8 in flight on a BG96 (5): the 6th is refused with ERROR; the session keeps
    5 from then on, without a reconnect or a dead letter."""
    from quecmqtt.mqtt.session import Session

    cloud.subscribe("win/#")
    async with rig(broker, model="BG96", rtt=0.3) as r:
        session = Session(r.modem, BROKER_HOST, 1883, "dev-window", window=8)
        await session.start(timeout=20)
        for i in range(12):
            await session.publish("win/t", b"%02d" % i, qos=1)
        await session.flush(30)
        got = await received(cloud, 12)
        assert sorted(m.payload for m in got) == [b"%02d" % i for i in range(12)]
        assert session.window == 5
        assert session.reconnects == 0 and session.dead_letters() == []
        await session.stop()


def test_03_bg96_emulator_drops_input_past_1548(broker: Broker, cloud: Cloud) -> None:
    from quecmqtt.emulator import EmulatorThread

    cloud.subscribe("drop/t")
    with EmulatorThread(model="BG96", hosts=broker.hosts()) as emu:
        port = Port(emu.path)
        port.command("ATE0")
        port.command('AT+QMTOPEN=0,"broker.test",1883', until=b"+QMTOPEN: 0,0\r\n")
        port.command('AT+QMTCONN=0,"dev-drop"', until=b"+QMTCONN: 0,0,0\r\n")
        port.command('AT+QMTPUB=0,1,1,0,"drop/t"', until=b"> ")
        port.write(b"a" * 1548 + b"b" * 100 + b"\x1a")
        port.read_until(b"+QMTPUB: 0,1,0\r\n")
        assert cloud.messages.get(timeout=5).payload == b"a" * 1548
        port.close()


# -- 4. BGx silent on AT+QMTOPEN? ------------------------------------------------------------------


async def test_04_reconciliation_survives_a_module_silent_on_qmtopen_read(broker: Broker) -> None:
    async with rig(broker, model="BG95") as r:
        with pytest.raises(Exception, match="timed out"):
            await r.modem.execute(C.QMTOPEN_READ(), timeout=1.0)
        client = MqttClient(r.modem, 1)  # reconciles before its first open
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-silent")
        assert client.connected
        await client.close()


# -- 5. the URC port ------------------------------------------------------------------------------------


async def test_05_urcs_on_another_port_are_warned_about_and_can_be_moved(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """AT+QURCCFG="urcport" (BG96 AT manual 2.25) sends URCs to one port only: a host on the
    UART of a module set to "usbat" sees none, so every MQTT open times out."""
    from quecmqtt.emulator import EmulatorThread
    from quecmqtt.runtime.urcport import guess_port_kind
    from quecmqtt.transport.serial import SerialTransport

    assert [guess_port_kind(p) for p in ("/dev/ttyS0", "/dev/ttyAMA0", "/dev/ttyUSB99", "/tmp/e/ttyQUEC0")] == [
        "uart1",
        "uart1",
        None,  # a USB tty whose vendor sysfs does not tell: not known, nothing is asked
        None,
    ]
    emulator = await asyncio.to_thread(EmulatorThread, model="BG96", hosts=broker.hosts(), host_port="uart1")
    try:
        caplog.set_level(logging.INFO, "quecmqtt.runtime")
        modem = Modem(SerialTransport(emulator.path), port_kind="uart1")
        await modem.open()
        try:
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any("URCs to 'usbat'" in w and "urc_port='uart1'" in w for w in warnings), warnings
            client = MqttClient(modem, 0)
            with pytest.raises(TimeoutError):  # +QMTOPEN: 0,0 went to the USB port
                await asyncio.wait_for(client.open(BROKER_HOST, 1883), 3.0)
        finally:
            await modem.close()
        modem = Modem(SerialTransport(emulator.path), port_kind="uart1", urc_port="uart1")
        await modem.open()
        try:
            client = MqttClient(modem, 0)
            await client.open(BROKER_HOST, 1883)
            await client.connect("dev-urcport")
            assert client.connected
            await client.close()
        finally:
            await modem.close()
    finally:
        await asyncio.to_thread(emulator.close)


# -- 6. power and SIM events ------------------------------------------------------------------------


async def test_06_sim_removal_and_psm_pause_the_session_and_their_end_resumes_it(broker: Broker, cloud: Cloud) -> None:
    """+CPIN: NOT READY / +QSIMSTAT (BG96 AT manual 5.9-5.10) and PSM POWER DOWN are typed
    events; the session pauses (no attempts that cannot work) and resumes on +CPIN: READY
    and on the RDY after PSM, with what was published meanwhile."""
    from quecmqtt.at.events import PsmEntered, SimStatus
    from quecmqtt.mqtt.session import Backoff, Session, SessionState

    cloud.subscribe("sim/#")
    async with rig(broker, model="BG96") as r:
        seen: list[object] = []
        r.modem.add_listener(lambda e: seen.append(e) if isinstance(e, SimStatus | PsmEntered) else None)
        await r.modem.execute(C.QSIMSTAT(1))
        session = Session(r.modem, BROKER_HOST, 1883, "dev-sim", backoff=Backoff(initial=0.1, maximum=0.5))
        states: list[SessionState] = []
        session.on_state(states.append)
        await session.start(timeout=20)
        await asyncio.to_thread(r.emulator.remove_sim)
        await until(lambda: session.state is SessionState.PAUSED, 10)
        assert [type(e).__name__ for e in seen][:2] == ["SimStatus", "SimStatus"]
        assert all(isinstance(e, SimStatus) and e.inserted is False for e in seen[:2])
        await session.publish("sim/t", b"while the SIM was out", qos=1)
        await asyncio.to_thread(r.emulator.insert_sim)
        await session.wait_connected(20)
        await session.flush(10)
        assert [m.payload for m in await received(cloud, 1)] == [b"while the SIM was out"]

        await asyncio.to_thread(r.emulator.enter_psm)
        await until(lambda: session.state is SessionState.PAUSED, 10)
        assert any(isinstance(e, PsmEntered) for e in seen)
        await session.publish("sim/t", b"while asleep", qos=1)
        await asyncio.to_thread(r.emulator.wake)
        await session.wait_connected(20)
        await session.flush(10)
        assert [m.payload for m in await received(cloud, 1)] == [b"while asleep"]
        await session.stop()
        assert SessionState.PAUSED in states


# -- 7. HTTP limits and error paths -------------------------------------------------------------------


@pytest.mark.parametrize(("model", "immediate"), [("BG96", True), ("EC25", False), ("EC200U", True)])
async def test_07_http_limits_and_the_dns_error_paths(broker: Broker, model: str, immediate: bool) -> None:
    """BG96 HTTP(S) manual: URL at most 700 bytes (AT+QHTTPURL=?), content types 0-3, a DNS
    failure answered at once with +CME ERROR: 714; EC25 answers OK and then +QHTTPGET: 714
    [R]; the EC200 family at once with 716 (EG800K report). The driver refuses what the
    module cannot take before sending, and reports either DNS path as HttpError."""
    from quecmqtt.errors import HttpError
    from quecmqtt.services.http import CONTENT_JSON, Http, HttpConfig

    async with rig(broker, model=model) as r:
        lines = sent_lines(r.modem)
        http = Http(r.modem, HttpConfig())
        long_url = "http://example.test/" + "a" * 700
        if model in ("BG96", "EC25"):
            with pytest.raises(InvalidArgument, match="at most 700"):
                await http.get(long_url)
            assert not any(line.startswith(b"AT+QHTTPURL=") and line != b"AT+QHTTPURL=?" for line in lines)
        if model == "BG96":
            with pytest.raises(InvalidArgument, match="content type 4"):
                await http.post("http://example.test/", b"{}", content_type=CONTENT_JSON)
        with pytest.raises(HttpError) as caught:
            await http.get("http://nowhere.invalid/")
        assert caught.value.code == (716 if model == "EC200U" else 714)
        stops = [line for line in lines if line == b"AT+QHTTPSTOP"]
        assert (stops == []) == (model == "BG96")  # BG96 has no AT+QHTTPSTOP (its =? probe said so)
        http.close()


# -- 8. smaller differences -----------------------------------------------------------------------


async def test_08_qmtconn_read_shows_state_1_for_open_but_not_connected(broker: Broker) -> None:
    async with rig(broker, model="BG96") as r:
        client = MqttClient(r.modem, 2)
        await client.open(BROKER_HOST, 1883)
        reply = await r.modem.execute(C.QMTCONN_READ())
        assert reply.fields("+QMTCONN") == [(2, 1)]  # MQTT AN 3.2.4: 1 = initializing
        await client.close()


@pytest.mark.parametrize(("model", "report"), [("EC200U", "+QMTPING: 0,1"), ("BG96", "+QMTSTAT: 0,2")])
async def test_08_keepalive_failure_is_reported_as_the_family_does(broker: Broker, model: str, report: str) -> None:
    from quecmqtt.errors import LinkLost

    async with rig(broker, model=model) as r:
        # the module gives the PINGRESP up after 1 s x (1 retry + 1) = 2 s, at 4 s; the broker
        # would close a silent client only at 1.5 x keepalive after the PINGREQ, at 5 s
        client = MqttClient(r.modem, 0, MqttConfig(keepalive=2, packet_timeout=1, retries=1))
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-ping")
        await asyncio.to_thread(r.emulator.fail_pings, 0)
        with pytest.raises(LinkLost) as caught:
            _ = [message async for message in client.messages]  # none was sent: only the loss
        assert (caught.value.report, caught.value.code) == (report.split(":")[0], int(report[-1]))
        assert not client.connected
        await client.close()


def test_08_bg96_reboot_prints_pdpdeact_between_powered_down_and_rdy() -> None:
    from quecmqtt.emulator import EmulatorThread

    with EmulatorThread(model="BG96", boot_time=0.2) as emu:
        port = Port(emu.path)
        port.command("ATE0")
        port.write(b"AT+CFUN=1,1\r")
        out = port.read_until(b"RDY\r\n", timeout=5)
        assert b'POWERED DOWN\r\n\r\n+QIURC: "pdpdeact",1\r\n' in out
        port.close()


def test_08_qfupl_ack_mode_sends_an_a_per_kilobyte() -> None:
    """BG96 FILE manual 2.4: with <ackmode> 1 the module answers "A" after each 1 KB."""
    from quecmqtt.emulator import EmulatorThread

    with EmulatorThread(model="BG96") as emu:
        port = Port(emu.path)
        port.command("ATE0")
        port.command('AT+QFUPL="ack.bin",2500,10,1', until=b"CONNECT\r\n")
        port.write(b"x" * 1024)
        assert port.read_until(b"A", timeout=3) == b"A"
        port.write(b"x" * 1024)
        assert port.read_until(b"A", timeout=3) == b"A"
        port.write(b"x" * 452)
        assert port.read_until(b"OK\r\n").startswith(b"\r\n+QFUPL: 2500,")
        port.close()


def test_08_file_errors_are_named() -> None:
    from quecmqtt.at.cme import cme_description

    names = {407: "file already existed", 421: "time out", 402: "read zero byte", 426: "file already opened"}
    for code, name in names.items():
        assert (cme_description(code) or "").lower() == name, code  # BG96 FILE manual ch.4 table 1


# -- 9. unquoted +QMTRECV payloads ---------------------------------------------------------------


def test_09_bg96_pushes_the_payload_unquoted(broker: Broker, cloud: Cloud) -> None:
    """The BG96 MQTT AN's examples (6.1, 6.2) show +QMTRECV with the payload unquoted."""
    from quecmqtt.emulator import EmulatorThread

    with EmulatorThread(model="BG96", hosts=broker.hosts()) as emu:
        port = Port(emu.path)
        port.command("ATE0")
        port.command('AT+QMTOPEN=0,"broker.test",1883', until=b"+QMTOPEN: 0,0\r\n")
        port.command('AT+QMTCONN=0,"dev-raw"', until=b"+QMTCONN: 0,0,0\r\n")
        port.command('AT+QMTSUB=0,1,"raw/#",1', until=b"+QMTSUB: 0,1,0,1\r\n")
        cloud.publish("raw/a", b"hello, world")
        assert port.read_until(b"world\r\n").endswith(b'+QMTRECV: 0,1,"raw/a",hello, world\r\n')
        port.close()


async def test_09_unquoted_qmtrecv_payload_is_read_to_the_end_of_the_line(broker: Broker, cloud: Cloud) -> None:
    async with rig(broker, model="BG96") as r:
        client = MqttClient(r.modem, 0)
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-recv")
        await client.subscribe([("down/#", 1)])
        await asyncio.to_thread(cloud.publish, "down/a", b"This is test data, hello MQTT.")
        message = await client.next_message(timeout=5)
        assert message is not None and message.payload == b"This is test data, hello MQTT."
        await client.close()


# -- 10. general 3GPP commands and IMEIs ------------------------------------------------------------

MODELS = ["EC200U", "EC600S", "EG800K", "EC25", "BG96", "BG95"]
# what the manuals show (BG96 AT Commands Manual V2.2; EC2x AT manual): (command, expected answer)
GENERAL: list[tuple[str, Callable[[bytes], bool]]] = [
    ("ATZ", lambda a: a == b"\r\nOK\r\n"),
    ("ATE0", lambda a: a == b"ATE0\r\r\nOK\r\n"),  # echoed: ATZ restored E1 (V.250)
    ("AT&F", lambda a: a == b"\r\nOK\r\n"),
    ("ATE0", lambda a: a == b"ATE0\r\r\nOK\r\n"),
    ("AT&F0", lambda a: a == b"\r\nOK\r\n"),
    ("ATE0", lambda a: a == b"ATE0\r\r\nOK\r\n"),
    ("AT&V", lambda a: a.startswith(b"\r\n&C: 1\r\n&D: 2\r\n&F: 0\r\n") and b"\r\nS10: 15\r\nOK\r\n" in a),
    ("AT&W", lambda a: a == b"\r\nOK\r\n"),
    ("AT+CGMI", lambda a: a == b"\r\nQuectel\r\n\r\nOK\r\n"),
    ("AT+CGMI=?", lambda a: a == b"\r\nOK\r\n"),
    ("AT+GMI", lambda a: a == b"\r\nQuectel\r\n\r\nOK\r\n"),
    ("AT+CIMI", lambda a: a == b"\r\n460023210226023\r\n\r\nOK\r\n"),
    ("AT+CLAC", lambda a: b"\r\n&C\r\n" in a and b"\r\n+CGMI\r\n" in a and a.endswith(b"\r\nOK\r\n")),
    ("AT+CMGF?", lambda a: a == b"\r\n+CMGF: 0\r\n\r\nOK\r\n"),
    ("AT+CMGF=1", lambda a: a == b"\r\nOK\r\n"),
    ("AT+CMGF?", lambda a: a == b"\r\n+CMGF: 1\r\n\r\nOK\r\n"),
    ("AT+CSCA?", lambda a: a == b'\r\n+CSCA: "+8613800210500",145\r\n\r\nOK\r\n'),
    ("AT+CNMI=2,1,0,0,0", lambda a: a == b"\r\nOK\r\n"),
    ("AT+CNMI?", lambda a: a == b"\r\n+CNMI: 2,1,0,0,0\r\n\r\nOK\r\n"),
    ("AT+CPMS?", lambda a: a == b'\r\n+CPMS: "ME",0,23,"ME",0,23,"ME",0,23\r\n\r\nOK\r\n'),
    ('AT+CPMS="SM","SM","SM"', lambda a: a == b"\r\n+CPMS: 0,50,0,50,0,50\r\n\r\nOK\r\n"),
    ("AT+CSCS?", lambda a: a == b'\r\n+CSCS: "GSM"\r\n\r\nOK\r\n'),
    ("AT+CSQ", lambda a: a.startswith(b"\r\n+CSQ: ")),
    ("AT+CREG?", lambda a: a.startswith(b"\r\n+CREG: 0,")),
    ("AT+QSIMSTAT?", lambda a: a == b"\r\n+QSIMSTAT: 0,1\r\n\r\nOK\r\n"),
    ("ATZ", lambda a: a == b"\r\nOK\r\n"),  # back to the defaults
    ("AT+CMGF?", lambda a: a == b"AT+CMGF?\r\r\n+CMGF: 0\r\n\r\nOK\r\n"),
]


def ask(port: Port, line: str) -> bytes:
    """Send a line; everything up to and including its final result."""
    port.write(line.encode() + b"\r")
    out = b""
    while True:
        out += port.read_until(b"\r\n", timeout=3)
        last = out.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if last in (b"OK", b"ERROR") or last.startswith((b"+CME ERROR", b"+CMS ERROR")):
            return out


def luhn(imei: bytes) -> bool:
    digits = [int(c) for c in imei.decode()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return len(digits) == 15 and total % 10 == 0


@pytest.mark.parametrize("model", MODELS)
def test_10_general_commands_answered_as_the_manuals_say(model: str) -> None:
    from quecmqtt.emulator import EmulatorThread

    with EmulatorThread(model=model) as emu:
        port = Port(emu.path)
        port.command("ATE0", until=b"OK\r\n")
        for line, check in GENERAL:
            answer = ask(port, line)
            assert check(answer), f"{model} {line}: {answer!r}"
        imei = port.command("AT+CGSN").split(b"\r\n")[1]
        assert luhn(imei), f"{model}: IMEI {imei!r} fails its check digit"
        port.close()


# -- 11. over-long command lines -----------------------------------------------------------------


def test_11_an_overlong_line_is_refused_whole_never_run_in_part() -> None:
    """A line over the module's limit is ERROR ([ATM] 2.15 table 3: "command line maximum
    length exceeded"); a command hidden past the limit never runs."""
    from quecmqtt.emulator import EmulatorThread

    with EmulatorThread(model="EC200U") as emu:
        port = Port(emu.path)
        port.command("ATE0", until=b"OK\r\n")
        # where the old emulator cut its 4096-byte buffer, the rest ran as a new command
        head = b'AT+QMTSUB=0,1,"'
        line = head + b"t" * (4097 - len(head)) + b"AT+CFUN=1,1\r"
        port.write(line)
        assert port.read_until(b"\r\n", timeout=3) + port.read_until(b"\r\n") == b"\r\nERROR\r\n"
        assert port.command("AT") == b"\r\nOK\r\n"
        assert port.quiet(0.5) == b""  # no POWERED DOWN, no RDY: nothing ran
        port.close()


async def test_11_driver_refuses_a_command_line_over_the_limit(broker: Broker) -> None:
    async with rig(broker) as r:
        client = MqttClient(r.modem, 0)
        await client.open(BROKER_HOST, 1883)
        await client.connect("dev-long")
        topics = [("t/" + "x" * 1000 + f"/{i}", 1) for i in range(5)]
        lines = sent_lines(r.modem)
        with pytest.raises(InvalidArgument, match="command line"):
            await client.subscribe(topics)
        assert not any(b"QMTSUB" in line for line in lines)
        await client.subscribe(topics[:3])  # what fits is fine
        await client.close()


# -- 13. an echo without the host's leading blank ---------------------------------------------------


def test_13_emulator_echoes_from_at_on() -> None:
    from quecmqtt.emulator import EmulatorThread

    with EmulatorThread(model="EC25") as emu:
        port = Port(emu.path)
        assert port.command(" AT") == b"AT\r\r\nOK\r\n"  # the blank the host sent is not echoed
        port.close()


async def test_13_echo_without_the_leading_blank_is_not_a_reply_line(broker: Broker) -> None:
    async with rig(broker, echo=True) as r:
        await r.modem.execute(C.ATE1())
        lines = await raw(r.modem, " AT+QMTRECV?")
        assert lines == ()  # the echo "AT+QMTRECV?" is not taken for an answer
        await r.modem.execute(C.ATE0())


def test_06_decode_keeps_its_contract_for_the_typed_power_and_sim_events() -> None:
    """decode prints PSM POWER DOWN and SIM reports as the "urc" events docs/decode.md lists."""
    from quecmqtt.at.events import PsmEntered, SimStatus
    from quecmqtt.transcripts.decode import describe

    assert describe(PsmEntered("PSM POWER DOWN")) == {"event": "urc", "prefix": "PSM POWER DOWN", "fields": []}
    assert describe(SimStatus(False, False, "+QSIMSTAT: 1,0")) == {
        "event": "urc",
        "prefix": "+QSIMSTAT",
        "fields": [1, 0],
    }
