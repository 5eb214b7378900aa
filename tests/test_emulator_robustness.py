"""The emulator stays up and answers whatever it is sent: odd command lines on the port,
and odd or oversized requests on its control channel."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quecmqtt.emulator import Emulator, EmulatorThread
from quecmqtt.emulator.atline import parse_line
from quecmqtt.emulator.control import MAX_REQUEST, ControlServer, send_fault
from tests.serialport import Port

# -- the command-line parser ----------------------------------------------------------------


@pytest.fixture
def port() -> Iterator[Port]:
    with EmulatorThread(model="EC200U", boot_time=0.2) as emu:
        p = Port(emu.path)
        try:
            p.command("ATE0", until=b"OK\r\n")
            yield p
        finally:
            p.close()


def test_an_argument_like_minus_minus_one_is_answered_and_the_rest_of_the_read_goes_on(port: Port) -> None:
    port.write(b'AT+QMTCFG="keepalive",--1\r\nAT\r\n')  # one write: both lines arrive in one read
    first = port.read_until(b"\r\n", timeout=3) + port.read_until(b"\r\n", timeout=3)
    # a bare string where a number belongs: refused the way the handler refuses it
    assert re.fullmatch(rb"\r\n(ERROR|\+CME ERROR: \d+)\r\n", first), first
    assert port.read_until(b"\r\nOK\r\n", timeout=3) == b"\r\nOK\r\n"  # the AT behind it
    assert port.command("AT") == b"\r\nOK\r\n"


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"AT+X=--1", ["--1"]),
        (b"AT+X=-", ["-"]),
        (b"AT+X=-0,1-", [0, "1-"]),
        (b"AT+X=\xc2\xb2", ["\u00b2"]),  # a digit to str.isdigit, not to int()
        (b"AT+X=" + b"9" * 5000, ["9" * 5000]),  # past int()'s limit on digits
        (b"AT+X=-12,3", [-12, 3]),
    ],
)
def test_split_args_takes_only_plain_integers_as_numbers(line: bytes, args: list[Any]) -> None:
    at = parse_line(line)
    assert at is not None and at.args == args


@pytest.mark.parametrize("line", [b"ATE\xc2\xb2", b"ATE" + b"1" * 5000])
def test_a_basic_command_with_no_plain_number_is_not_a_command(line: bytes) -> None:
    assert parse_line(line) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_parse_line_never_raises_on_any_bytes(line: bytes) -> None:
    parse_line(line)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["AT", "at", "AT+QMTCFG=", "AT+X=", "ATE", "AT&", "AT+X"]),
    st.text(alphabet=st.sampled_from(list('-0123456789",?= +\u00b2\u0663\x00')), max_size=40),
)
def test_parse_line_never_raises_on_command_like_lines(head: str, tail: str) -> None:
    at = parse_line((head + tail).encode())
    if at is not None:
        assert len(at.args) == len(at.quoted)


# -- the control channel ----------------------------------------------------------------------


@pytest.fixture
async def control() -> AsyncIterator[tuple[Emulator, str]]:
    async with Emulator(model="EC200U", boot_time=0.2) as emu:
        server = ControlServer(emu, emu.path + ".control")
        await server.start()
        try:
            yield emu, server.path
        finally:
            await server.stop()


async def _answers(path: str, data: bytes, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Send `data` on one connection; the first `count` answer lines."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(data)
        await writer.drain()
        answers = []
        for _ in range(count):
            line = await asyncio.wait_for(reader.readline(), timeout)
            assert line.endswith(b"\n"), f"the connection ended without an answer (after {answers})"
            answers.append(json.loads(line))
        return answers
    finally:
        writer.close()


async def test_replug_while_plugged_is_refused_with_a_clear_error(control: tuple[Emulator, str]) -> None:
    emu, path = control
    device = emu.port.device
    answer = await asyncio.to_thread(send_fault, path, "replug", [])
    assert answer == {"error": f"{emu.path} is plugged; unplug it first"}
    assert emu.port.plugged and emu.port.device == device  # nothing changed
    assert await asyncio.to_thread(send_fault, path, "unplug", []) == {"ok": True}
    assert await asyncio.to_thread(send_fault, path, "replug", []) == {"ok": True}
    assert emu.port.plugged


async def test_a_request_over_the_limit_is_answered_and_the_connection_goes_on(
    control: tuple[Emulator, str],
) -> None:
    _, path = control
    huge = json.dumps({"fault": "inject", "args": ["00" * MAX_REQUEST]}).encode()
    assert len(huge) > MAX_REQUEST
    answers = await _answers(path, huge + b"\n" + b'{"fault": "resume"}\n', 2)
    assert answers == [{"error": f"request too long (max {MAX_REQUEST} bytes)"}, {"ok": True}]


async def test_a_request_over_the_limit_sent_in_pieces_is_answered_once(control: tuple[Emulator, str]) -> None:
    _, path = control
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        for _ in range(5):  # 5 x 40 KiB without a newline, then the end of the line
            writer.write(b"x" * 40960)
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b'\n{"fault": "resume"}\n')
        first = await asyncio.wait_for(reader.readline(), 5)
        second = await asyncio.wait_for(reader.readline(), 5)
        assert json.loads(first) == {"error": f"request too long (max {MAX_REQUEST} bytes)"}
        assert json.loads(second) == {"ok": True}
    finally:
        writer.close()


async def test_a_request_just_at_the_limit_is_served(control: tuple[Emulator, str]) -> None:
    _, path = control
    request = b'{"fault": "resume"}'
    line = request + b" " * (MAX_REQUEST - len(request))
    assert await _answers(path, line + b"\n", 1) == [{"ok": True}]


@pytest.mark.parametrize(
    ("request_line", "error"),
    [
        (b"[" * 60000, "nested too deeply"),  # RecursionError inside json
        (b"\xff\xfe", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "a request is a JSON object"),
        (b'"reboot"', "a request is a JSON object"),
        (b"{}", "a request is a JSON object"),
        (b'{"fault": "drop-link", "args": "01"}', '"args" must be a list'),
        (b'{"fault": "no-such-fault"}', "unknown fault 'no-such-fault'"),
        (b'{"fault": "drop-link", "args": [9]}', "CLIENT: want 0-5, got 9"),
        (b'{"fault": "inject", "args": ["zz"]}', "HEX: want pairs of hex digits"),
        (b'{"fault": "rtt", "args": ["1", "2"]}', "rtt takes at most 1 argument(s)"),
    ],
)
async def test_every_bad_request_gets_an_error_answer(
    control: tuple[Emulator, str], request_line: bytes, error: str
) -> None:
    _, path = control
    answers = await _answers(path, request_line + b"\n" + b'{"fault": "resume"}\n', 2)
    assert error in answers[0].get("error", ""), answers
    assert answers[1] == {"ok": True}  # and the connection serves the next request


async def test_an_unexpected_exception_in_a_fault_is_answered(
    control: tuple[Emulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, path = control

    def broken() -> None:
        raise ZeroDivisionError("a bug in the emulator")

    monkeypatch.setattr(emu, "unplug", broken)
    answers = await _answers(path, b'{"fault": "unplug"}\n{"fault": "resume"}\n', 2)
    assert answers == [{"error": "unplug failed: ZeroDivisionError: a bug in the emulator"}, {"ok": True}]
