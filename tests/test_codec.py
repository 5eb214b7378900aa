"""The AT codec, case by case. Every script is fed whole, byte by byte and in random
chunks, and must give the same events each way."""

from __future__ import annotations

import pytest

from quecmqtt.at import commands as C
from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import CommandComplete, Garbage, MqttMessage, Response, ResponseOverflow
from quecmqtt.errors import LocalProtocolError
from quecmqtt.secret import Secret
from tests.codec_script import Data, Recv, Send, run_all_ways, simple


def events_of(*steps: Send | Data | Recv, **options: int) -> list[tuple[object, ...]]:
    return [simple(e) for e in run_all_ways(steps, **options)]


def test_urc_between_echo_and_response() -> None:
    cmd = C.CSQ()
    got = events_of(Send(cmd), Recv(b"AT+CSQ\r\r\n+QMTSTAT: 0,1\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n"))
    assert got == [("stat", 0, 1), ("cmd", "AT+CSQ", "OK", ("+CSQ: 20,99",), None)]


def test_urc_between_response_lines_and_ok() -> None:
    cmd = C.QMTOPEN_READ()
    got = events_of(
        Send(cmd),
        Recv(
            b'\r\n+QMTOPEN: 0,"a.example",1883\r\n\r\n+QMTRECV: 0,1,"t",2,"hi"\r\n'
            b'+QMTOPEN: 1,"b.example",8883\r\n\r\nOK\r\n'
        ),
    )
    assert got == [
        ("msg", 0, 1, "t", b"hi", False),
        ("cmd", "AT+QMTOPEN?", "OK", ('+QMTOPEN: 0,"a.example",1883', '+QMTOPEN: 1,"b.example",8883'), None),
    ]


def test_urc_in_the_same_read_as_ok_and_two_phase_result_after_ok() -> None:
    cmd = C.QMTOPEN(0, "h.example", 1883)
    got = events_of(Send(cmd), Recv(b'\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n\r\n+QIURC: "pdpdeact",1\r\n'))
    assert got == [
        ("cmd", 'AT+QMTOPEN=0,"h.example",1883', "OK", (), None),
        ("urc", "+QMTOPEN", (0, 0)),
        ("urc", "+QIURC", ("pdpdeact", 1)),
    ]


def test_result_line_instead_of_ok_is_kept_on_the_completion() -> None:
    cmd = C.QMTOPEN(0, "h.example", 1883)
    events = run_all_ways([Send(cmd), Recv(b"\r\n+QMTOPEN: 0,-1\r\n\r\nERROR\r\n")])
    complete = events[-1]
    assert isinstance(complete, CommandComplete) and complete.final.kind == "ERROR"
    assert [r.fields for r in complete.results] == [(0, -1)]


def test_qmtconn_read_form_versus_the_connect_result_urc() -> None:
    cmd = C.QMTCONN_READ()
    got = events_of(Send(cmd), Recv(b"\r\n+QMTCONN: 0,0,0\r\n\r\n+QMTCONN: 0,3\r\n\r\n+QMTCONN: 1,0,0\r\n\r\nOK\r\n"))
    assert got == [
        ("urc", "+QMTCONN", (0, 0, 0)),
        ("urc", "+QMTCONN", (1, 0, 0)),
        ("cmd", "AT+QMTCONN?", "OK", ("+QMTCONN: 0,3",), None),
    ]


def test_prompt_then_data_with_quotes_and_crlf() -> None:
    payload = b'{"a":"x,\r\nOK\r\n"}\x1a'
    cmd = C.QMTPUBEX(0, 1, 1, 0, "t/1", len(payload))
    got = events_of(Send(cmd), Recv(b"\r\n> "), Data(payload), Recv(b"\r\nOK\r\n\r\n+QMTPUBEX: 0,1,0\r\n"))
    assert got == [("prompt", ">"), ("cmd", cmd.line.decode(), "OK", (), None), ("urc", "+QMTPUBEX", (0, 1, 0))]


def test_prompt_only_while_the_command_expects_one() -> None:
    got = events_of(Send(C.CSQ()), Recv(b"\r\n> \r\n+CSQ: 1,2\r\n\r\nOK\r\n"))
    assert got == [("cmd", "AT+CSQ", "OK", (">", "+CSQ: 1,2"), None)]


def test_echo_on_with_an_echoed_data_phase() -> None:
    payload = b'{"id":"1"}'
    cmd = C.QMTPUBEX(0, 0, 0, 0, "t", len(payload))
    got = events_of(
        Send(cmd),
        Recv(cmd.line + b"\r\r\n> "),
        Data(payload),
        Recv(payload + b"\r\nOK\r\n\r\n+QMTPUBEX: 0,0,0\r\n"),
    )
    assert got == [("prompt", ">"), ("cmd", cmd.line.decode(), "OK", (), None), ("urc", "+QMTPUBEX", (0, 0, 0))]


def test_a_module_that_does_not_echo_data_is_parsed_normally_and_learned() -> None:
    payload = b'{"t":1}'
    cmd = C.QMTPUBEX(0, 2, 1, 0, "t", len(payload))
    again = C.QMTPUBEX(0, 3, 1, 0, "t", 6)
    got = events_of(
        Send(cmd),
        Recv(cmd.line + b"\r\r\n> "),
        Data(payload),
        Recv(b"\r\nOK\r\n\r\n+QMTPUBEX: 0,2,0\r\n"),
        # learned: the next data phase expects no echo, so a payload that starts like the
        # module's answer cannot swallow the answer
        Send(again),
        Recv(again.line + b"\r\r\n> "),
        Data(b"\r\nOK\r\n"),
        Recv(b"\r\nOK\r\n\r\n+QMTPUBEX: 0,3,0\r\n"),
    )
    assert got == [
        ("prompt", ">"),
        ("cmd", cmd.line.decode(), "OK", (), None),
        ("urc", "+QMTPUBEX", (0, 2, 0)),
        ("prompt", ">"),
        ("cmd", again.line.decode(), "OK", (), None),
        ("urc", "+QMTPUBEX", (0, 3, 0)),
    ]


def test_an_echoed_payload_that_looks_like_the_answer_is_echo() -> None:
    payload = b"\r\nOK\r\nxy"
    cmd = C.QMTPUBEX(0, 2, 1, 0, "t", len(payload))
    got = events_of(
        Send(cmd), Recv(cmd.line + b"\r\r\n> "), Data(payload), Recv(payload + b"\r\nOK\r\n\r\n+QMTPUBEX: 0,2,0\r\n")
    )
    assert got == [("prompt", ">"), ("cmd", cmd.line.decode(), "OK", (), None), ("urc", "+QMTPUBEX", (0, 2, 0))]


HOSTILE = b'{"a":"\r\n+QMTSTAT: 0,1\r\n+QMTRECV: 0,9,"evil",4,"fake"\r\nOK\r\n"}'


@pytest.mark.parametrize("payload", [HOSTILE, b"\r\n+QMTSTAT: 0,1\r\n" + HOSTILE, b"x\r\n+QMTSTAT: 0,1\r\nyy"])
@pytest.mark.parametrize("urc", [b'\r\n+QMTRECV: 0,5,"real",2,"ok"\r\n', b"\r\n+QMTSTAT: 0,1\r\n", b"\r\nRDY\r\n"])
def test_a_urc_anywhere_in_the_data_echo_never_lets_the_payload_be_parsed(payload: bytes, urc: bytes) -> None:
    """The module prints a URC between the prompt and the echo of the data, or between any
    two bytes of the echo: the URC is reported once, the payload never."""
    cmd = C.QMTPUBEX(0, 2, 1, 0, "t", len(payload))
    expected_urc = [e for e in events_of(Recv(urc))]
    for at in range(len(payload) + 1):
        output = payload[:at] + urc + payload[at:] + b"\r\nOK\r\n\r\n+QMTPUBEX: 0,2,0\r\n"
        got = events_of(Send(cmd), Recv(cmd.line + b"\r\r\n> "), Data(payload), Recv(output))
        assert got == [
            ("prompt", ">"),
            *expected_urc,
            ("cmd", cmd.line.decode(), "OK", (), None),
            ("urc", "+QMTPUBEX", (0, 2, 0)),
        ], f"URC at byte {at}"


def test_lines_kept_for_a_pending_command_are_capped() -> None:
    codec = AtCodec(max_pending_lines=100, max_pending_bytes=10_000)
    codec.send(C.CSQ())
    codec.receive(b"x\r\n" * 5000)
    events = list(codec.events())
    overflow = [e for e in events if isinstance(e, ResponseOverflow)]
    assert len(overflow) == 1 and overflow[0].kept == 100
    codec.receive(b"\r\n+CSQ: 1,2\r\n" * 5000 + b"\r\nOK\r\n")
    complete = [e for e in codec.events() if isinstance(e, CommandComplete)]
    assert len(complete) == 1 and complete[0].overflowed and len(complete[0].responses) == 100
    # the next command starts with empty lists
    codec.send(C.CSQ())
    codec.receive(b"\r\n+CSQ: 3,4\r\n\r\nOK\r\n")
    (done,) = [e for e in codec.events() if isinstance(e, CommandComplete)]
    assert not done.overflowed and done.lines == ("+CSQ: 3,4",)


def test_reset_and_end_of_stream() -> None:
    codec = AtCodec()
    codec.send(C.CSQ())
    codec.receive(b"\r\n+CSQ: 1,")
    codec.receive_eof()
    (cut,) = list(codec.events())
    assert isinstance(cut, Garbage) and "cut off" in cut.reason and codec.pending is None
    codec.receive(b'\r\n+QMTRECV: 0,1,"t",10,"abc')
    codec.receive_eof()
    (cut,) = list(codec.events())
    assert isinstance(cut, Garbage) and "+QMTRECV" in cut.reason
    codec.send(C.CSQ())
    codec.receive(b"\r\n+CS")
    codec.reset()
    assert codec.pending is None and codec.buffered == 0 and list(codec.events()) == []
    codec.receive(b"\r\nRDY\r\n")
    assert [type(e).__name__ for e in codec.events()] == ["ModuleReady"]


def test_connect_download_body_containing_ok_framed_by_length() -> None:
    body = b"line1\r\nOK\r\n+QHTTPREAD: 0\r\nend"
    cmd = C.QHTTPREAD(80)
    got = events_of(
        Recv(b"\r\n+QHTTPGET: 0,200,%d\r\n" % len(body)),
        Send(cmd),
        Recv(b"\r\nCONNECT\r\n" + body + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"),
    )
    assert got == [
        ("urc", "+QHTTPGET", (0, 200, len(body))),
        ("cmd", "AT+QHTTPREAD=80", "OK", (), body),
        ("urc", "+QHTTPREAD", (0,)),
    ]


def test_connect_download_body_without_length_ends_at_ok_then_qhttpread() -> None:
    body = b"a\r\nOK\r\nb\r\nOK\r\n\r\nc"  # OK not followed by +QHTTPREAD: is body
    cmd = C.QHTTPREAD()
    got = events_of(Send(cmd), Recv(b"\r\nCONNECT\r\n" + body + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"))
    assert got == [("cmd", "AT+QHTTPREAD", "OK", (), body), ("urc", "+QHTTPREAD", (0,))]


def test_connect_upload_for_the_url() -> None:
    url = b"https://iot-auth.cn-shanghai.aliyuncs.com/auth/register/device"
    cmd = C.QHTTPURL(len(url), 80)
    got = events_of(Send(cmd), Recv(b"\r\nCONNECT\r\n"), Data(url), Recv(b"\r\nOK\r\n"))
    assert got == [("prompt", "CONNECT"), ("cmd", "AT+QHTTPURL=62,80", "OK", (), None)]


HOSTILE = b'a"b,c\r\nOK\r\n+QMTSTAT: 0,1\r\n\x1a"\r\n\x00\xff'


@pytest.mark.parametrize("mode", ["urc", "buffered"])
def test_qmtrecv_with_length_and_a_hostile_payload(mode: str) -> None:
    line = b'+QMTRECV: 0,7,"dev/down",%d,"%s"\r\n' % (len(HOSTILE), HOSTILE)
    if mode == "urc":
        got = events_of(Recv(b"\r\n" + line + b"\r\n+QMTSTAT: 0,2\r\n"))
        assert got == [("msg", 0, 7, "dev/down", HOSTILE, False), ("stat", 0, 2)]
    else:
        got = events_of(Send(C.QMTRECV(0)), Recv(b"\r\n" + line + line + b"\r\nOK\r\n"))
        assert got == [("msg", 0, 7, "dev/down", HOSTILE, True)] * 2 + [("cmd", "AT+QMTRECV=0", "OK", (), None)]


def test_qmtrecv_without_length_with_raw_quotes_as_in_seed_4_1_3() -> None:
    payload = (
        b'{"code":200,"data":{},"id":"1681363292898","message":"success",'
        b'"method":"thing.event.property.post","version":"1.0"}'
    )
    topic = b"/sys/i2uqc2dloOl/device001/thing/event/property/post_reply"
    got = events_of(Recv(b'\r\n+QMTRECV: 0,0,"' + topic + b'","' + payload + b'"\r\n\r\n+QMTSTAT: 0,1\r\n'))
    assert got == [("msg", 0, 0, topic.decode(), payload, False), ("stat", 0, 1)]


def test_qmtrecv_without_length_continues_over_line_ends() -> None:
    got = events_of(Recv(b'\r\n+QMTRECV: 0,0,"t","{\r\n  "a": 1,\r\n  "b": "x"}"\r\n'))
    assert got == [("msg", 0, 0, "t", b'{\r\n  "a": 1,\r\n  "b": "x"}', False)]


def test_qmtrecv_header_with_payload_on_the_next_line() -> None:  # EC200U report [R]
    got = events_of(Send(C.QMTRECV(0, 1)), Recv(b'\r\n+QMTRECV: 0,3,"t",5\r\nab,"c\r\n\r\nOK\r\n'))
    assert got == [("msg", 0, 3, "t", b'ab,"c', True), ("cmd", "AT+QMTRECV=0,1", "OK", (), None)]


def test_qmtrecv_unquoted_payload_runs_to_the_end_of_the_line() -> None:  # BG96 MQTT AN p.22
    got = events_of(
        Recv(b'\r\n+QMTRECV: 0,0,"topic/example",This is the payload, with commas\r\n'),
        Recv(b'\r\n+QMTRECV: 1,7,"t",42\r\n\r\n+QMTRECV: 0,2,"t",5,hello\r\n\r\n+QMTSTAT: 0,1\r\n'),
    )
    assert got == [
        ("msg", 0, 0, "topic/example", b"This is the payload, with commas", False),
        ("msg", 1, 7, "t", b"42", False),  # unsolicited: digits are a payload, not a length
        ("msg", 0, 2, "t", b"hello", False),  # <len>,<payload> when the length matches
        ("stat", 0, 1),
    ]


def test_echo_without_the_leading_blank_the_host_sent() -> None:
    command = C.QMTRECV_READ()
    blank = type(command).raw(command.spec, b" AT+QMTRECV?", {}, " AT+QMTRECV?")
    got = events_of(Send(blank), Recv(b"AT+QMTRECV?\r\r\n+QMTRECV: 0,0,0,0,0,0\r\n\r\nOK\r\n"))
    assert got == [("cmd", " AT+QMTRECV?", "OK", ("+QMTRECV: 0,0,0,0,0,0",), None)]


def test_buffer_mode_notification_and_slot_status() -> None:
    got = events_of(
        Recv(b"\r\n+QMTRECV: 0,2\r\n"), Send(C.QMTRECV_READ()), Recv(b"\r\n+QMTRECV: 0,1,0,1,0,0\r\n\r\nOK\r\n")
    )
    assert got == [("urc", "+QMTRECV", (0, 2)), ("cmd", "AT+QMTRECV?", "OK", ("+QMTRECV: 0,1,0,1,0,0",), None)]


def test_payload_length_that_lies_is_reported_not_swallowed() -> None:
    got = events_of(Recv(b'\r\n+QMTRECV: 0,1,"t",3,"abcdef"\r\n\r\n+QMTSTAT: 0,1\r\n'))
    assert got[0][0] == "garbage"
    assert ("stat", 0, 1) in got


def test_multi_line_ati() -> None:
    got = events_of(Send(C.ATI()), Recv(b"\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n"))
    assert got == [("cmd", "ATI", "OK", ("Quectel", "BG96", "Revision: BG96MAR02A07M1G"), None)]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"+CME ERROR: 10", 10),
        (b"+CME ERROR: SIM not inserted", 10),
        (b"+CME ERROR: 716", 716),
        (b"+CMS ERROR: 500", 500),
    ],
)
def test_cme_errors_numeric_and_verbose(line: bytes, code: int) -> None:
    events = run_all_ways([Send(C.CPIN_READ()), Recv(b"\r\n" + line + b"\r\n")])
    assert isinstance(events[0], CommandComplete)
    assert events[0].final.cme == code and not events[0].final.ok


def test_non_utf8_bytes() -> None:
    got = events_of(
        Recv(b"\r\n\xff\xfe\xfdgarbled\r\n\r\n+QMTSTAT: 1,7\r\n"),
        Send(C.COPS_READ()),
        Recv(b'\r\n+COPS: 0,0,"\xb2\xe2\xca\xd4",7\r\n\r\nOK\r\n'),
    )
    assert got[0][0] == "garbage"
    assert got[1] == ("stat", 1, 7)
    assert got[2][:3] == ("cmd", "AT+COPS?", "OK")  # an operator name in GBK does not lose the line


def test_garbage_glued_before_a_banner_or_urc_is_split_off() -> None:
    got = events_of(Recv(b"\x00\x00\xff\x1b[0mRDY\r\n\r\nAPP RDY\r\n\xfe\xff+QMTSTAT: 0,1\r\n"))
    assert got == [
        ("garbage", "control bytes in a text line"),
        ("ready", "RDY"),
        ("ready", "APP RDY"),
        ("garbage", "not UTF-8 text"),
        ("stat", 0, 1),
    ]


def test_noise_ending_in_ok_never_completes_a_command() -> None:
    got = events_of(Send(C.CSQ()), Recv(b"\r\n\x00\x01OK\r\n\r\n+CSQ: 1,1\r\n\r\nOK\r\n"))
    assert got == [("garbage", "control bytes in a text line"), ("cmd", "AT+CSQ", "OK", ("+CSQ: 1,1",), None)]


def test_over_long_line_is_reported_once_and_skipped() -> None:
    got = events_of(Recv(b"\r\n" + b"x" * 300 + b"\r\n+QMTSTAT: 0,1\r\n"), max_line=100)
    assert got == [("garbage", "line longer than 100 bytes"), ("stat", 0, 1)]


def test_flood_without_line_break_keeps_memory_bounded() -> None:
    codec = AtCodec(max_line=4096)
    for _ in range(1000):
        codec.receive(b"A" * 1000)
        assert codec.buffered <= 4096 + 1000
    events = list(codec.events())
    assert len(events) == 1 and isinstance(events[0], Garbage) and events[0].length > 4096
    codec.receive(b"\r\n+QMTSTAT: 0,1\r\n")
    assert [type(e).__name__ for e in codec.events()] == ["MqttStatus"]


def test_echo_switching_off_mid_stream() -> None:
    got = events_of(
        Send(C.CSQ()),
        Recv(b"AT+CSQ\r\r\n+CSQ: 9,99\r\n\r\nOK\r\n"),
        Send(C.ATE0()),
        Recv(b"ATE0\r\r\nOK\r\n"),
        Send(C.CSQ()),
        Recv(b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n"),
    )
    assert got == [
        ("cmd", "AT+CSQ", "OK", ("+CSQ: 9,99",), None),
        ("cmd", "ATE0", "OK", (), None),
        ("cmd", "AT+CSQ", "OK", ("+CSQ: 10,99",), None),
    ]


def test_bare_cr_lf_only_and_blank_lines() -> None:
    got = events_of(Send(C.CSQ()), Recv(b"\r\r\r\n+CSQ: 9,99\r\n\n\n\rOK\r"), Recv(b"\n+QMTSTAT: 0,1\n"))
    assert got == [("cmd", "AT+CSQ", "OK", ("+CSQ: 9,99",), None), ("stat", 0, 1)]


def test_unprefixed_urcs_during_a_command() -> None:
    got = events_of(
        Send(C.CGSN()), Recv(b"\r\nRDY\r\n\r\n864430010001091\r\n\r\nPSM POWER DOWN\r\n\r\nPOWERED DOWN\r\n\r\nOK\r\n")
    )
    assert got == [
        ("ready", "RDY"),
        ("psm", "PSM POWER DOWN"),
        ("down", "POWERED DOWN"),
        ("cmd", "AT+CGSN", "OK", ("864430010001091",), None),
    ]


def test_sim_reports_are_typed_and_a_pending_cpin_keeps_its_answer() -> None:
    got = events_of(
        Recv(b"\r\n+QSIMSTAT: 1,0\r\n\r\n+CPIN: NOT READY\r\n"),
        Send(C.CPIN_READ()),
        Recv(b"\r\n+CPIN: READY\r\n\r\nOK\r\n\r\n+QSIMSTAT: 1,1\r\n\r\n+CPIN: SIM PIN\r\n"),
    )
    assert got == [
        ("sim", False, False),
        ("sim", False, False),
        ("cmd", "AT+CPIN?", "OK", ("+CPIN: READY",), None),
        ("sim", True, False),
        ("sim", True, False),
    ]


def test_unsolicited_final_and_unknown_line_with_nothing_pending() -> None:
    assert events_of(Recv(b"\r\nOK\r\n\r\nhello\r\n")) == [
        ("final", "OK"),
        ("garbage", "unsolicited line that is no known URC"),
    ]


def test_secret_read_back_is_wrapped_and_redacted() -> None:
    events = run_all_ways(
        [Send(C.QMTCFG_READ["aliauth"](0)), Recv(b'\r\n+QMTCFG: "aliauth","pk","dn","s3cr3t-value"\r\n\r\nOK\r\n')]
    )
    complete = events[0]
    assert isinstance(complete, CommandComplete)
    response = complete.responses[0]
    assert isinstance(response, Response) and isinstance(response.fields[-1], Secret)
    assert "s3cr3t-value" not in response.text and "s3cr3t-value" not in repr(complete)


def test_one_command_at_a_time_and_data_only_after_a_prompt() -> None:
    codec = AtCodec()
    codec.send(C.CSQ())
    with pytest.raises(LocalProtocolError):
        codec.send(C.CSQ())
    with pytest.raises(LocalProtocolError):
        codec.send_data(b"x")
    codec.receive(b"\r\nOK\r\n")
    cmd = C.QMTPUBEX(0, 1, 1, 0, "t", 3)
    codec.send(cmd)
    codec.receive(b"\r\n> ")
    list(codec.events())
    with pytest.raises(LocalProtocolError, match="announced 3 bytes"):
        codec.send_data(b"toolong")
    assert codec.send_data(b"abc") == b"abc"


def test_ctrl_z_entry_appends_ctrl_z_and_can_be_aborted() -> None:
    codec = AtCodec()
    codec.send(C.QMTPUB_CTRLZ(0, 1, 1, 0, "t"))
    codec.receive(b"\r\n> ")
    with pytest.raises(LocalProtocolError, match="Ctrl-Z"):
        codec.send_data(b"a\x1ab")
    assert codec.send_data(b"hello") == b"hello\x1a"
    codec.receive(b"\r\nOK\r\n")
    codec.send(C.QMTPUB_CTRLZ(0, 2, 1, 0, "t"))
    codec.receive(b"\r\n> ")
    assert codec.abort_data() == b"\x1b"


def test_abandoned_command_turns_a_late_final_into_an_unsolicited_one() -> None:
    codec = AtCodec()
    codec.send(C.CSQ())
    assert codec.abandon() is not None
    codec.receive(b"\r\n+CSQ: 1,1\r\n\r\nOK\r\n")
    kinds = [type(e).__name__ for e in codec.events()]
    assert kinds == ["Urc", "UnsolicitedFinal"]


def test_over_limit_payload_is_counted_through_not_stored() -> None:
    events = run_all_ways([Recv(b'\r\n+QMTRECV: 0,1,"t",50,"' + b"p" * 50 + b'"\r\n+QMTSTAT: 0,1\r\n')], max_payload=10)
    assert isinstance(events[0], Garbage) and "over 10 bytes" in events[0].reason
    assert not any(isinstance(e, MqttMessage) for e in events)


def test_data_echo_after_a_late_lf() -> None:
    """CONNECT's LF may arrive after the host already sent its data (echo on)."""
    data = b"http://x/y"
    cmd = C.QHTTPURL(len(data))
    got = events_of(Send(cmd), Recv(cmd.line + b"\r\r\nCONNECT\r"), Data(data), Recv(b"\n" + data + b"\r\nOK\r\n"))
    assert got == [("prompt", "CONNECT"), ("cmd", cmd.line.decode(), "OK", (), None)]


def test_a_prompt_is_a_greater_than_and_a_space_however_cut() -> None:
    cmd = C.QMTPUBEX(0, 1, 1, 0, "t", 5)
    assert events_of(Send(cmd), Recv(b"\r\n>x\r\nERROR\r\n")) == [("cmd", cmd.line.decode(), "ERROR", (">x",), None)]
    assert events_of(Send(cmd), Recv(b"\r\n>\r\n")) == [("prompt", ">")]
    assert events_of(Send(cmd), Recv(b"\r\n> x\r\n")) == [("prompt", ">")]  # "x" is a line of the open prompt


def test_ctrl_z_entry_echo_without_the_ctrl_z() -> None:
    cmd = C.QMTPUB_CTRLZ(0, 1, 1, 0, "t")
    got = events_of(Send(cmd), Recv(cmd.line + b"\r\r\n> "), Data(b"hello"), Recv(b"hello\r\nOK\r\n"))
    assert got == [("prompt", ">"), ("cmd", cmd.line.decode(), "OK", (), None)]


def test_over_limit_quoted_payload_is_counted_through_to_its_end() -> None:
    got = events_of(
        Send(C.AT()), Recv(b'\r\n+QMTRECV: 0,1,"t","' + b"a" * 100 + b'"\r\nOK\r\n\r\n+QMTSTAT: 0,1\r\n'), max_line=50
    )
    assert got == [
        ("garbage", "+QMTRECV payload without length over 50 bytes"),
        ("cmd", "AT", "OK", (), None),
        ("stat", 0, 1),
    ]


def test_over_limit_body_is_counted_through_never_parsed() -> None:
    body = b"y" * 120 + b"\r\n+QMTSTAT: 0,1\r\nOK\r\nmore"
    got = events_of(
        Send(C.QHTTPREAD(80)), Recv(b"\r\nCONNECT\r\n" + body + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"), max_body=100
    )
    assert got == [
        ("garbage", "HTTP body over 100 bytes"),
        ("cmd", "AT+QHTTPREAD=80", "OK", (), None),
        ("urc", "+QHTTPREAD", (0,)),
    ]


def test_a_message_without_length_after_an_over_limit_one() -> None:
    got = events_of(
        Recv(b'\r\n+QMTRECV: 0,1,"t",20,"' + b"x" * 20 + b'"\r\n\r\n+QMTRECV: 0,2,"t","hi"\r\n'), max_payload=10
    )
    assert got == [("garbage", "+QMTRECV payload over 10 bytes"), ("msg", 0, 2, "t", b"hi", False)]


def test_a_small_line_cap_does_not_cut_a_message_header() -> None:
    got = events_of(Recv(b'\r\n+QMTRECV: 0,1,"some/long/topic/name",5,"hello"\r\n'), max_line=20)
    assert got == [("msg", 0, 1, "some/long/topic/name", b"hello", False)]


def test_a_pushed_message_during_a_slot_query_is_not_buffered() -> None:
    got = events_of(
        Send(C.QMTRECV_READ()), Recv(b'\r\n+QMTRECV: 0,1,"t",1,"x"\r\n\r\n+QMTRECV: 0,0,0,0,0,0\r\n\r\nOK\r\n')
    )
    assert got[0] == ("msg", 0, 1, "t", b"x", False)


@pytest.mark.parametrize("value", [b"--5", "²".encode(), b"1" * 5000, b"-1"])
def test_odd_cme_values_never_raise(value: bytes) -> None:
    events = run_all_ways([Send(C.CSQ()), Recv(b"\r\n+CME ERROR: " + value + b"\r\n")])
    assert isinstance(events[0], CommandComplete) and events[0].final.kind == "+CME ERROR"
    assert events[0].final.cme is None


def test_secret_read_back_is_available_before_the_final_result() -> None:
    codec = AtCodec()
    codec.send(C.QMTCFG_READ["aliauth"](0))
    codec.receive(b'\r\n+QMTCFG: "aliauth","pk","dn","0123456789abcdef"\r\n')
    assert [s.reveal() for s in codec.take_secrets()] == ["0123456789abcdef"]
    assert codec.take_secrets() == []


@pytest.mark.parametrize(
    ("payload", "output", "urcs"),
    [
        # a URC that begins like the data's last segment ("+"): not eaten as echo
        (b"x\r\n+", b"x\r\n+QMTSTAT: 0,1\r\n\r\n+", [("stat", 0, 1)]),
        # URCs on both sides of an echoed CR: the echoed "RDY" is no banner
        (b"\r\r\nRDY", b"\r\n+QMTPING: 2,1\r\n\r\r\n+QMTPING: 2,1\r\n\r\nRDY", [("urc", "+QMTPING", (2, 1))] * 2),
        # a URC right before the echo of a segment that starts like it
        (b"+\r", b"\r\n+QMTPING: 2,1\r\n+\r", [("urc", "+QMTPING", (2, 1))]),
    ],
)
def test_urcs_that_look_like_the_data_echo(payload: bytes, output: bytes, urcs: list[tuple[object, ...]]) -> None:
    cmd = C.QMTPUBEX(0, 7, 1, 0, "t", len(payload))
    got = events_of(Send(cmd), Recv(cmd.line + b"\r\r\n> "), Data(payload), Recv(output + b"\r\nOK\r\n"))
    assert got == [("prompt", ">"), *urcs, ("cmd", cmd.line.decode(), "OK", (), None)]


def test_data_echo_is_learned_per_command() -> None:
    """An upload the module does not echo says nothing of a publish whose data it does."""
    upload = C.QFUPL("UFS:ca.pem", 4)
    publish = C.QMTPUBEX(0, 1, 1, 0, "t", 7)
    payload = b"x\r\nRDY\r"
    got = events_of(
        Send(upload),
        Recv(upload.line + b"\r\r\nCONNECT\r\n"),
        Data(b"abcd"),
        Recv(b"\r\n+QFUPL: 4,2a\r\n\r\nOK\r\n"),
        Send(publish),
        Recv(publish.line + b"\r\r\n> "),
        Data(payload),
        Recv(payload + b"\r\nOK\r\n"),
    )
    assert got[-2:] == [("prompt", ">"), ("cmd", publish.line.decode(), "OK", (), None)]
