"""Commands built from the table: validation (nothing can inject a second command),
redaction, parsing back from the wire, and the generated documentation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quecmqtt.at import commands as C
from quecmqtt.at.docs import render
from quecmqtt.at.fields import compile_shape, tokenize
from quecmqtt.at.parse import parse_command
from quecmqtt.errors import InvalidArgument
from quecmqtt.secret import Secret

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "topic",
    ['a"b', 'dev/1",1\r\nAT+QPOWD', "line\nbreak", "cr\rhere", "nul\x00", "esc\x1b", "del\x7f", "ctrl-z\x1a"],
)
def test_a_topic_can_never_carry_a_second_command(topic: str) -> None:
    with pytest.raises(InvalidArgument):
        C.QMTSUB(0, 1, topic, 1)


def test_valid_strings_pass_unchanged() -> None:
    cmd = C.QMTSUB(0, 1, "/sys/pk/dn/thing/#;+ é", 1)
    assert cmd.wire == 'AT+QMTSUB=0,1,"/sys/pk/dn/thing/#;+ é",1\r'.encode()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: C.QMTOPEN(6, "h", 1883), "above 5"),
        (lambda: C.QMTOPEN(0, "h", 0), "below 1"),
        (lambda: C.QMTOPEN(0, "h", True), "must be an int"),
        (lambda: C.QMTOPEN(0, "h" * 101, 1), "limit is 100"),
        (lambda: C.QMTOPEN(0, 5, 1), "must be a string"),
        (lambda: C.QMTOPEN(0, "h"), "missing argument 'port'"),
        (lambda: C.QMTOPEN(0, "h", 1, 2), "at most 3"),
        (lambda: C.QMTCONN(0, "c", password="p"), "earlier optional argument is missing"),
        (lambda: C.QMTSUB(0, 1, "a", 0, "b"), "go together"),
        (lambda: C.QSSLCFG["ciphersuite"](0, '"0xFFFF"'), "0xFFFF"),
        (lambda: C.QMTCFG["version"](0, 5), "above 4"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(build: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build()  # type: ignore[operator]


def test_secret_arguments_are_redacted_in_repr_str_and_errors() -> None:
    cmd = C.QMTCONN(0, "cid", "user", "hunter2-password")
    assert cmd.wire == b'AT+QMTCONN=0,"cid","user","hunter2-password"\r'
    assert "hunter2" not in repr(cmd) and "hunter2" not in str(cmd)
    assert cmd.redacted == 'AT+QMTCONN=0,"cid","user","***"'
    assert [s.reveal() for s in cmd.secrets] == ["hunter2-password"]
    assert cmd.secrets[0].name == "password"
    with pytest.raises(InvalidArgument) as info:
        C.QMTCONN(0, "cid", "user", 'bad"secret')
    assert "bad" not in str(info.value) and "secret" not in str(info.value).split(":")[-1]


def test_secret_wrapper_never_prints() -> None:
    secret = Secret("s3cr3t", "token")
    assert str(secret) == "***" and f"{secret}" == "***" and "s3cr3t" not in repr(secret)
    assert secret == Secret("s3cr3t") and secret.reveal() == "s3cr3t"
    cmd = C.QMTCFG["hwauth"](0, "dev", secret)
    assert cmd.secrets == (secret,) and "s3cr3t" not in repr(cmd)


def test_exec_form_when_every_argument_is_optional() -> None:
    assert C.QHTTPGET().wire == b"AT+QHTTPGET\r"
    assert C.QHTTPGET(80).wire == b"AT+QHTTPGET=80\r"
    assert C.QSSLCFG["ciphersuite"](1, "0xFFFF").wire == b'AT+QSSLCFG="ciphersuite",1,0xFFFF\r'


@pytest.mark.parametrize("spec", C.ALL, ids=lambda s: s.id)
def test_every_spec_parses_back_from_its_own_wire_form(spec: C.CommandSpec) -> None:
    args: list[object] = []
    for p in spec.params:
        if p.const is not None or p.optional:
            continue
        if p.kind is C.INT:
            args.append(p.minimum if p.minimum is not None else 1)
        elif p.kind is C.HEX:
            args.append("0xFFFF")
        else:
            args.append("x")
    cmd = spec(*args)
    parsed = parse_command(cmd.line)
    assert parsed.spec is spec or (parsed.spec.name, parsed.spec.form) == (spec.name, spec.form)
    assert parsed.redacted == cmd.redacted


def test_parse_unknown_and_lower_case_commands() -> None:
    assert parse_command(b"at+qmtopen?").spec is C.QMTOPEN_READ
    unknown = parse_command(b"AT+QFOO=1")
    assert unknown.spec.id.startswith("UNKNOWN") and unknown.spec.response_for("+QFOO", ("i",)) is not None


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ('"aliauth",,,', [("s", "aliauth"), ("e", ""), ("e", ""), ("e", "")]),
        ('"version",(0-5),(3,4)', [("s", "version"), ("b", "(0-5)"), ("b", "(3,4)")]),
        ("0, -1", [("i", 0), ("i", -1)]),
        ('"a"b",5', [("s", 'a"b'), ("i", 5)]),
        ('"unterminated', [("s", "unterminated")]),
        ("READY", [("b", "READY")]),
    ],
)
def test_field_tokenizer(text: str, fields: list[tuple[str, object]]) -> None:
    assert list(tokenize(text)) == fields


@given(st.text(max_size=80))
def test_tokenizer_never_raises(text: str) -> None:
    tokenize(text)


def test_shapes() -> None:
    assert compile_shape("i,i")(("i", "i")) and not compile_shape("i,i")(("i", "i", "i"))
    assert compile_shape("i,s,*")(("i", "s", "b", "e")) and not compile_shape("i,s,*")(("i",))
    assert compile_shape("i,i?")(("i",)) and compile_shape("x,*")(("e",))
    with pytest.raises(ValueError, match="unknown field kind"):
        compile_shape("q")
    with pytest.raises(ValueError, match="follows an optional"):
        compile_shape("i?,i")


def test_command_docs_are_generated_from_the_table() -> None:
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert page == render(), "docs/commands.md is stale: run `python -m quecmqtt.at.docs > docs/commands.md`"


@pytest.mark.parametrize(
    ("line", "secrets", "shown"),
    [
        (b'AT+CPIN="1234"', [b"1234"], 'AT+CPIN="***"'),
        (b"AT+CPIN=1234", [b"1234"], 'AT+CPIN="***"'),  # a module takes the PIN unquoted too
        (b"AT+CPIN=0042", [b"0042"], 'AT+CPIN="***"'),  # as written, leading zero and all
        (b'at+cpin="1234"', [b"1234"], 'at+cpin="***"'),
        (b'AT+CPIN= "1234" ', [b"1234"], 'AT+CPIN="***"'),
        (b'AT+QMTCONN=0,"c","u",pw9', [b"pw9"], 'AT+QMTCONN=0,"c","u","***"'),
        (b'AT+CSQ;+QMTCONN=0,"c","u","pw"', [b"pw"], 'AT+CSQ;+QMTCONN=0,"c","u","***"'),
        (b'AT+CPIN=0123;+QMTCFG="aliauth",0,"pk","dn","a;b"', [b"0123", b"a;b"], None),
        (b'AT+QMTCFG="aliauth",0,"pk","dn","s,e;c"', [b"s,e;c"], 'AT+QMTCFG="aliauth",0,"pk","dn","***"'),
        # blanks wherever a module tolerates them
        (b"AT+CSQ; +CPIN=1234", [b"1234"], 'AT+CSQ;+CPIN="***"'),
        (b'AT+CSQ ; +QMTCONN=0,"c","u","pw-blank"', [b"pw-blank"], None),
        (b"AT+CPIN =1234", [b"1234"], None),
        (b'AT +QMTCFG="aliauth",0,"p","d","sec-2"', [b"sec-2"], None),
        (b'AT+QMTCFG = "aliauth",0,"p","d","sec-5"', [b"sec-5"], None),
        (b' AT+QMTCONN=0,"c","u","pw12"', [b"pw12"], 'AT+QMTCONN=0,"c","u","***"'),
        # unquoted keys and values; basic commands in front; AT repeated after ';'
        (b"AT+QMTCFG=aliauth,0,pk,dn,SECRET3", [b"SECRET3"], None),
        (b"AT+QHTTPCFG=auth,user:pw44", [b"user:pw44"], None),
        (b"ATE0+CPIN=1234", [b"1234"], None),
        (b'AT&F+QMTCONN=0,"c","u","pw55"', [b"pw55"], None),
        (b'AT+CSQ;AT+QMTCFG="aliauth",0,"p","d","sec7"', [b"sec7"], None),
        # no form fits: every argument is taken as secret (the key excepted)
        (b'AT+QMTCONN=0,"c","u","pw66",', [b"0", b"c", b"u", b"pw66"], "AT+QMTCONN=***"),
        (b'AT+CPIN="87654321","11223344"', [b"87654321", b"11223344"], "AT+CPIN=***"),
        (b'AT+QMTCFG="aliauth","pk","dn","sec9"', [b"pk", b"dn", b"sec9"], 'AT+QMTCFG="aliauth",***'),
        (b'AT+QMTCONN=0,"c"id","user","pw88"', [b"0", b'c"id","user","pw88'], "AT+QMTCONN=***"),
        # ... but a line of a key that carries no secret is shown as it is, fitting or not
        (b'AT+QMTCFG="unknownkey",0,1', [], 'AT+QMTCFG="unknownkey",0,1'),
        (b'AT+QMTCFG="keepalive",0,60,9', [], 'AT+QMTCFG="keepalive",0,60,9'),
    ],
)
def test_a_typed_line_gives_its_secrets_however_it_is_written(
    line: bytes, secrets: list[bytes], shown: str | None
) -> None:
    command = parse_command(line)
    assert [line[s:e] for s, e, _ in command.secret_spans] == secrets
    assert [s.reveal().encode() for s in command.secrets] == secrets
    for secret in secrets:
        assert secret.decode() not in command.redacted and secret.decode() not in repr(command)
    if shown is not None:
        assert command.redacted == shown


def test_parse_command_never_raises_and_its_spans_lie_in_the_line() -> None:
    import random

    rng = random.Random(7)
    alphabet = b"AT+QMTCONNCPIN=,;\"' 0123456789abc\x1b\xff"
    for _ in range(20000):
        line = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        command = parse_command(line)
        assert all(0 <= s <= e <= len(line) for s, e, _ in command.secret_spans), line
        assert len(command.secrets) == len(command.secret_spans) or not command.secret_spans
