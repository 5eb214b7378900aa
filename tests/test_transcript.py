"""The transcript format: escaping, placeholders, round trips, errors that name the line."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quecmqtt.errors import TranscriptError
from quecmqtt.transcripts.format import (
    MAGIC,
    Placeholder,
    Record,
    Transcript,
    escape,
    escape_segments,
    parse_record,
    rechunk,
    unescape,
)
from tests.conftest import SEED


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"AT\r", "AT\\r"),
        (b"\r\nOK\r\n", "\\r\\nOK\\r\\n"),
        (b"\r\n> ", "\\r\\n>\\x20"),
        (b"a\\b\tc", "a\\\\b\\tc"),
        (b"\x00\x1a\x1b\x7f", "\\x00\\x1a\\x1b\\x7f"),
        (b"\xff\xfe", "\\xff\\xfe"),
        ("€ ok".encode(), "€ ok"),
        ("\u2028\u0085\u2029".encode(), "\\u2028\\u0085\\u2029"),
        (b'{"a":{"b":1}}', '{"a":{"b":1}}'),
        (b"{{x:3}}", "\\{{x:3}}"),
        (b"{{{", "\\{\\{{"),
    ],
)
def test_escape_and_back(data: bytes, text: str) -> None:
    assert escape(data) == text
    assert unescape(text) == [data]


def test_split_utf8_sequence_in_a_chunk_survives() -> None:
    data = "€".encode()
    for part in (data[:1], data[1:]):
        assert unescape(escape(part)) == [part]


def test_placeholders_and_a_brace_before_one() -> None:
    segments = (b"pw={", Placeholder("password", 40), b"}")
    text = escape_segments(segments)
    assert text == "pw=\\{{{password:40}}}"
    assert tuple(unescape(text)) == segments
    record = Record(">", segments)
    assert record.length == 45
    assert record.resolve({"password": b"p" * 40}) == b"pw={" + b"p" * 40 + b"}"
    assert record.resolve() == b"pw={" + b"*" * 40 + b"}"
    with pytest.raises(TranscriptError, match="has 3 bytes"):
        record.resolve({"password": b"abc"})


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from([">", "<"]), st.binary(min_size=1, max_size=200)), max_size=20))
def test_round_trip_of_arbitrary_bytes(records: list[tuple[str, bytes]]) -> None:
    transcript = Transcript([Record.of(d, data, t / 10) for t, (d, data) in enumerate(records)], ["a comment"])  # type: ignore[arg-type]
    text = transcript.dumps()
    assert text.startswith(MAGIC + "\n# a comment\n")
    assert "\r" not in text  # records are separated by LF alone and hold no raw CR
    again = Transcript.loads(text)
    assert [(r.direction, r.resolve(), r.time) for r in again.records] == [
        (r.direction, r.resolve(), r.time) for r in transcript.records
    ]
    assert again.dumps() == text


def test_records_are_split_on_lf_only() -> None:
    text = MAGIC + "\n< a\u2028b\\r\\n\n> AT\\r\r\n"  # U+2028 raw in a record, and an editor's CR at the end
    transcript = Transcript.loads(text)
    assert [r.resolve() for r in transcript.records] == ["a\u2028b\r\n".encode(), b"AT\r"]


def test_timestamps() -> None:
    record = parse_record("<@0.512 \\r\\n+QMTOPEN: 0,0\\r\\n")
    assert record.time == pytest.approx(0.512)
    assert record.resolve() == b"\r\n+QMTOPEN: 0,0\r\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("? AT", "not a record"),
        ("> AT\\q", "unknown escape '\\\\q'"),
        ("> {{oops}}", "starts no"),
        ("> \\x4", "unknown escape"),
    ],
)
def test_errors_name_the_line(line: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message) as info:
        Transcript.loads(f"{MAGIC}\n# c\n> AT\\r\n{line}\n", path="x.txt")
    assert "x.txt:4" in str(info.value)


def test_unsupported_version_is_refused() -> None:
    with pytest.raises(TranscriptError, match="version 2"):
        Transcript.loads("# quecmqtt transcript 2\n> AT\\r\n")


def test_rechunk_modes() -> None:
    chunks = [b"abc", b"de"]
    assert list(rechunk(chunks, "whole")) == chunks
    assert list(rechunk(chunks, "bytes")) == [b"a", b"b", b"c", b"d", b"e"]
    random_cut = list(rechunk(chunks, "random", random.Random(1), 2))
    assert b"".join(random_cut) == b"abcde" and all(1 <= len(c) <= 2 for c in random_cut)
    assert random_cut == list(rechunk(chunks, "random", random.Random(1), 2))  # seeded: repeatable
    with pytest.raises(ValueError, match="unknown chunking"):
        list(rechunk(chunks, "lines"))  # type: ignore[arg-type]


def test_seed_fixtures_are_valid_and_stable() -> None:
    for path in sorted(SEED.glob("*.txt")):
        transcript = Transcript.load(path)
        assert transcript.records, path
        assert transcript.comments and "Seed section" in transcript.comments[0], path
        again = Transcript.loads(transcript.dumps())
        assert [(r.direction, r.segments) for r in again.records] == [
            (r.direction, r.segments) for r in transcript.records
        ]


def test_secrets_in_json_by_key_at_any_depth_and_never_raising() -> None:
    from quecmqtt.redact import secrets_in_json

    doc = b'{"code":200,"data":{"deviceSecret":"d2a03b64","list":[{"deviceToken":"^1^t"}]},"password":""}'
    assert sorted(s.reveal() for s in secrets_in_json(doc)) == ["^1^t", "d2a03b64"]
    assert list(secrets_in_json(b'{"token": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")) == []
    assert list(secrets_in_json(b'not json but "deviceSecret"')) == []
    assert list(secrets_in_json(b'{"nothing":"here"}')) == []


def test_redactor_line_templates_cover_short_secrets_and_overlaps() -> None:
    from quecmqtt.redact import Redactor

    redactor = Redactor()
    redactor.add_line(b'AT+CPIN="12"', [(9, 11, "pin")])
    redactor.add("abcdefgh", "token")
    data = b'xx AT+CPIN="12"\r yy abcdefgh'
    assert redactor.spans(data) == [(12, 14, "pin"), (20, 28, "token")]
    assert redactor.spans(b"12 alone is not secret") == []
