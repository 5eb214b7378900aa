"""Grammar-based properties of the codec (Hypothesis).

Streams are built from the module's grammar (command exchanges with echo on or off,
URCs interleaved anywhere a module puts them, data phases, length-framed and quoted
payloads, download bodies), with the events they must produce. Random bytes alone do not
reach the deep states; these do. Each stream is fed whole, byte by byte and in random
chunks."""

from __future__ import annotations

import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quecmqtt.at import commands as C
from quecmqtt.at.codec import AtCodec
from quecmqtt.transcripts.decode import decode_transcript
from quecmqtt.transcripts.format import Transcript
from tests.codec_script import Data, Recv, Send, Step, run, run_all_ways, simple
from tests.conftest import SEED

Expected = list[tuple[object, ...]]
Piece = tuple[bytes, Expected]

TOPIC = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/_-+#.$ ", min_size=1, max_size=40)
CLIENT = st.integers(0, 5)
MSG_ID = st.integers(0, 65535)


def _quoted_payload_ok(payload: bytes) -> bool:
    # without a length field a payload cannot hold '"' followed by CR or LF (it would end it)
    return b'"\r' not in payload and b'"\n' not in payload


def _unquoted_payload_ok(text: str) -> bool:
    # what the unquoted form cannot carry (docs/codec.md): a leading quote (the quoted form),
    # a leading "<n>," (a length field), digits alone (a split header during a buffered read)
    return not (text.startswith(('"', ' "')) or re.match(r"\d+ ?,", text) or text.isdigit() or text != text.strip())


@st.composite
def urc(draw: st.DrawFn) -> Piece:
    kinds = ["stat", "pubex", "qiurc", "ready", "recv_len", "recv_quoted", "recv_unquoted", "garbage", "open"]
    kind = draw(st.sampled_from(kinds))
    if kind == "stat":
        c, code = draw(CLIENT), draw(st.integers(1, 8))
        return b"\r\n+QMTSTAT: %d,%d\r\n" % (c, code), [("stat", c, code)]
    if kind == "pubex":
        c, m, r = draw(CLIENT), draw(MSG_ID), draw(st.integers(0, 2))
        return b"\r\n+QMTPUBEX: %d,%d,%d\r\n" % (c, m, r), [("urc", "+QMTPUBEX", (c, m, r))]
    if kind == "open":
        c, r = draw(CLIENT), draw(st.integers(-1, 5))
        return b"\r\n+QMTOPEN: %d,%d\r\n" % (c, r), [("urc", "+QMTOPEN", (c, r))]
    if kind == "qiurc":
        cid = draw(st.integers(1, 16))
        return b'\r\n+QIURC: "pdpdeact",%d\r\n' % cid, [("urc", "+QIURC", ("pdpdeact", cid))]
    if kind == "ready":
        banner = draw(st.sampled_from(["RDY", "APP RDY"]))
        return b"\r\n" + banner.encode() + b"\r\n", [("ready", banner)]
    if kind == "garbage":
        noise = draw(
            st.binary(min_size=1, max_size=8).map(
                lambda b: (
                    bytes(x % 0x20 for x in b).replace(b"\r", b"\x00").replace(b"\n", b"\x00").replace(b"\t", b"\x00")
                )
            )
        )
        word = draw(st.text(alphabet="abcdefghij", min_size=1, max_size=10)).encode()
        return b"\r\n" + noise + word + b"\r\n", [("garbage", "control bytes in a text line")]
    c, m, topic = draw(CLIENT), draw(MSG_ID), draw(TOPIC)
    if kind == "recv_len":
        payload = draw(st.binary(max_size=300))
        header = b'+QMTRECV: %d,%d,"%s",%d,"' % (c, m, topic.encode(), len(payload))
        return b"\r\n" + header + payload + b'"\r\n', [("msg", c, m, topic, payload, False)]
    if kind == "recv_unquoted":  # BG96: the payload to the end of the line, JSON and all
        text = draw(st.text(alphabet='ab,{}:" []0123\\', min_size=1, max_size=120).filter(_unquoted_payload_ok))
        line = b'+QMTRECV: %d,%d,"%s",%s' % (c, m, topic.encode(), text.encode())
        return b"\r\n" + line + b"\r\n", [("msg", c, m, topic, text.encode(), False)]
    payload = draw(st.binary(max_size=200).filter(_quoted_payload_ok))
    header = b'+QMTRECV: %d,%d,"%s","' % (c, m, topic.encode())
    return b"\r\n" + header + payload + b'"\r\n', [("msg", c, m, topic, payload, False)]


def _urcs(draw: st.DrawFn, max_size: int = 2) -> Piece:
    pieces = draw(st.lists(urc(), max_size=max_size))
    return b"".join(p for p, _ in pieces), [e for _, es in pieces for e in es]


@st.composite
def exchange(draw: st.DrawFn) -> tuple[list[Step], Expected]:
    """One command with its answer, URCs interleaved where a module puts them."""
    kind = draw(st.sampled_from(["csq", "ati", "conn_read", "cpin_error", "open", "pubex", "read_body", "atd"]))
    echo = draw(st.booleans())
    pre, pre_ev = _urcs(draw)
    mid, mid_ev = _urcs(draw)
    post, post_ev = _urcs(draw)
    after, after_ev = _urcs(draw)

    def echoed(command: object) -> bytes:
        return command.line + b"\r" if echo else b""  # type: ignore[attr-defined]

    if kind in ("csq", "ati", "conn_read", "cpin_error", "open", "atd"):
        if kind == "csq":
            cmd = C.CSQ()
            a, b = draw(st.integers(0, 99)), draw(st.integers(0, 99))
            lines = [b"+CSQ: %d,%d" % (a, b)]
            final = b"OK"
        elif kind == "ati":
            cmd = C.ATI()
            lines = [b"Quectel", draw(st.sampled_from([b"EC200U", b"BG96", b"EC25"])), b"Revision: X1"]
            final = b"OK"
        elif kind == "conn_read":
            cmd = C.QMTCONN_READ()
            states = draw(st.lists(st.tuples(CLIENT, st.integers(1, 4)), max_size=3))
            lines = [b"+QMTCONN: %d,%d" % s for s in states]
            final = b"OK"
            c = draw(CLIENT)
            mid += b"\r\n+QMTCONN: %d,0,0\r\n" % c  # the connect result URC is not a read answer
            mid_ev = [*mid_ev, ("urc", "+QMTCONN", (c, 0, 0))]
        elif kind == "cpin_error":
            cmd = C.CPIN_READ()
            lines = []
            final = draw(st.sampled_from([b"+CME ERROR: 14", b"+CME ERROR: SIM busy", b"ERROR"]))
        elif kind == "atd":
            cmd = C.CGSN()
            lines = [b"864430010001091"]
            final = b"OK"
        else:
            cmd = C.QMTOPEN(0, "h.example", 1883)
            lines = []
            final = b"OK"
            after = b"\r\n+QMTOPEN: 0,0\r\n" + after
            after_ev = [("urc", "+QMTOPEN", (0, 0)), *after_ev]
        body = b"".join(b"\r\n" + line for line in lines) + (b"\r\n" if lines else b"")
        module = pre + echoed(cmd) + mid + body + post + b"\r\n" + final + b"\r\n" + after
        text_lines = tuple(line.decode() for line in lines)
        expected = [*pre_ev, *mid_ev, *post_ev, ("cmd", cmd.line.decode(), final.decode(), text_lines, None), *after_ev]
        return [Send(cmd), Recv(module)], expected
    if kind == "pubex":
        payload = draw(st.binary(min_size=1, max_size=300))
        cmd = C.QMTPUBEX(draw(CLIENT), draw(st.integers(1, 65535)), 1, 0, draw(TOPIC), len(payload))
        steps: list[Step] = [Send(cmd), Recv(pre + echoed(cmd) + mid + b"\r\n> "), Data(payload)]
        steps.append(Recv((payload if echo else b"") + b"\r\nOK\r\n" + after))
        return steps, [*pre_ev, *mid_ev, ("prompt", ">"), ("cmd", cmd.line.decode(), "OK", (), None), *after_ev]
    # a CONNECT download, with or without the content length announced before
    hinted = draw(st.booleans())
    if hinted:
        body = draw(st.binary(max_size=400))
    else:
        body = draw(st.binary(max_size=400).filter(lambda b: b"\r\nOK\r\n" not in b and b"+QHTTPREAD:" not in b))
    cmd = C.QHTTPREAD()
    hint = b"\r\n+QHTTPGET: 0,200,%d\r\n" % len(body) if hinted else b""
    hint_ev = [("urc", "+QHTTPGET", (0, 200, len(body)))] if hinted else []
    module = echoed(cmd) + b"\r\nCONNECT\r\n" + body + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n" + after
    expected = [*hint_ev, ("cmd", "AT+QHTTPREAD", "OK", (), body), ("urc", "+QHTTPREAD", (0,)), *after_ev]
    return [Recv(hint), Send(cmd), Recv(module)], expected


@st.composite
def session(draw: st.DrawFn) -> tuple[list[Step], Expected]:
    steps: list[Step] = []
    expected: Expected = []
    for item in draw(
        st.lists(st.one_of(exchange(), urc().map(lambda p: ([Recv(p[0])], p[1]))), min_size=1, max_size=6)
    ):
        steps.extend(item[0])
        expected.extend(item[1])
    return steps, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session())
def test_generated_sessions_give_the_expected_events_however_cut(case: tuple[list[Step], Expected]) -> None:
    steps, expected = case
    events = run_all_ways(steps)
    assert [simple(e) for e in events] == expected


@settings(max_examples=200, deadline=None)
@given(session(), st.data())
def test_damaged_streams_never_raise_and_do_not_depend_on_cuts(
    case: tuple[list[Step], Expected], data: st.DataObject
) -> None:
    """Cut a valid stream anywhere and splice noise in: events, never exceptions."""
    steps, _ = case
    damaged: list[Step] = []
    for step in steps:
        if isinstance(step, Recv) and step.data:
            cut = data.draw(st.integers(0, len(step.data)))
            noise = data.draw(st.binary(max_size=20))
            damaged.append(Recv(step.data[:cut] + noise + step.data[cut:]))
        elif isinstance(step, Data):
            continue  # the prompt may not come any more; only module output here
        elif isinstance(step, Send):
            damaged.append(Recv(b"\r\nOK\r\n"))  # keep nothing pending across the splice
        else:
            damaged.append(step)
    run_all_ways(damaged, max_line=512)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["none", "prompt", "download", "buffered"]))
def test_arbitrary_bytes_never_raise(data: bytes, pending: str) -> None:
    steps: list[Step] = []
    if pending == "prompt":
        steps.append(Send(C.QMTPUB_CTRLZ(0, 1, 1, 0, "t")))
    elif pending == "download":
        steps.append(Send(C.QHTTPREAD()))
    elif pending == "buffered":
        steps.append(Send(C.QMTRECV(0)))
    steps.append(Recv(data))
    run_all_ways(steps, max_line=256, max_body=1024, max_payload=512)


def test_every_fixture_decodes_the_same_however_cut() -> None:
    fixtures = sorted(SEED.glob("*.txt"))
    assert len(fixtures) >= 7
    for path in fixtures:
        transcript = Transcript.load(path)
        reference = list(decode_transcript(transcript))
        assert not [e for e in reference if e["event"] == "garbage"], path
        assert list(decode_transcript(transcript, "bytes")) == reference, path
        for seed in range(5):
            assert list(decode_transcript(transcript, "random", seed)) == reference, (path, seed)


def test_random_chunking_of_a_long_session_matches_whole() -> None:
    """One long deterministic session (a regression guard beside the properties)."""
    rng = random.Random(7)
    stream = bytearray()
    for i in range(300):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        stream += b'\r\n+QMTRECV: 0,%d,"t/%d",%d,"' % (i, i, len(payload)) + payload + b'"\r\n'
        stream += b"\r\n+QMTPUBEX: 0,%d,0\r\n" % i
    whole = run([Recv(bytes(stream))])
    codec = AtCodec()
    pieces = []
    i = 0
    while i < len(stream):
        n = rng.randrange(1, 97)
        codec.receive(bytes(stream[i : i + n]))
        pieces.extend(codec.events())
        i += n
    assert pieces == whole
    assert len(whole) == 600
