"""The emulator's HTTP(S) client over its pty (plain pyserial), against local servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quecmqtt.emulator import EmulatorThread
from tests.httpserver import BIG, REGISTER_REPLY, HttpServers
from tests.serialport import Port


@pytest.fixture(scope="module")
def servers() -> Iterator[HttpServers]:
    running = HttpServers()
    yield running
    running.close()


def _port(model: str, servers: HttpServers) -> Iterator[tuple[EmulatorThread, Port]]:
    with EmulatorThread(model=model, hosts=servers.hosts()) as emu:
        port = Port(emu.path)
        port.command("ATE0", until=b"OK\r\n")
        yield emu, port
        port.close()


@pytest.fixture
def ec200u(servers: HttpServers) -> Iterator[tuple[EmulatorThread, Port]]:
    yield from _port("EC200U", servers)


@pytest.fixture
def ec25(servers: HttpServers) -> Iterator[tuple[EmulatorThread, Port]]:
    yield from _port("EC25", servers)


def set_url(port: Port, url: bytes) -> None:
    assert port.command(f"AT+QHTTPURL={len(url)},80", until=b"CONNECT\r\n") == b"\r\nCONNECT\r\n"
    port.write(url)
    assert port.read_until(b"OK\r\n") == b"\r\nOK\r\n"


def upload_ca(port: Port, pem: bytes) -> None:
    port.command(f'AT+QFUPL="ca.pem",{len(pem)}', until=b"CONNECT\r\n")
    port.write(pem)
    port.read_until(b"\r\nOK\r\n")
    for line in ('AT+QSSLCFG="cacert",1,"ca.pem"', 'AT+QSSLCFG="seclevel",1,1', 'AT+QSSLCFG="sni",1,1'):
        port.command(line)
    port.command('AT+QHTTPCFG="sslctxid",1')


@pytest.mark.parametrize(("which", "expected"), [("right", b"+QHTTPPOST: 0,200,143"), ("wrong", b"+QHTTPPOST: 701")])
def test_https_registration_post_like_seed_4_2_3(
    ec200u: tuple[EmulatorThread, Port], servers: HttpServers, which: str, expected: bytes
) -> None:
    _, port = ec200u
    upload_ca(port, servers.ca.cert_pem.bytes() if which == "right" else servers.wrong_ca.cert_pem.bytes())
    set_url(port, b"https://iot-auth.cn-shanghai.aliyuncs.com/auth/register/device")
    body = (
        b"productKey=i2uqzmkZsLG&deviceName=device001&random=003"
        b"&sign=277969e6c596f0d127fd1d3bf3229f396a3ddff6&signMethod=hmacsha1"
    )
    assert port.command(f"AT+QHTTPPOST={len(body)},120,120", until=b"CONNECT\r\n") == b"\r\nCONNECT\r\n"
    port.write(body)
    got = port.read_until(b"+QHTTPPOST: ") + port.read_until(b"\r\n")
    assert got == b"\r\nOK\r\n\r\n" + expected + b"\r\n"
    if which == "wrong":
        return
    method, path, headers, sent = servers.requests.seen[-1]
    assert (method, path, sent) == ("POST", "/auth/register/device", body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded" and headers["User-Agent"] == "QUECTEL_MODULE"
    got = port.command("AT+QHTTPREAD=200", until=b"+QHTTPREAD: 0\r\n")
    assert got == b"\r\nCONNECT\r\n" + REGISTER_REPLY + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"


def test_big_body_with_fake_end_markers_is_read_intact(ec25: tuple[EmulatorThread, Port]) -> None:
    _, port = ec25
    set_url(port, b"http://web.test/big")
    assert port.two_phase("AT+QHTTPGET=60", "+QHTTPGET: ") == b"\r\nOK\r\n\r\n+QHTTPGET: 0,200,%d\r\n" % len(BIG)
    port.write(b"AT+QHTTPREAD=60\r")
    got = port.read_until(b"\r\nCONNECT\r\n")
    body = bytearray()
    while len(body) < len(BIG) + len(b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"):
        body += port.read_until(b"\r\n", timeout=5)
    assert got == b"\r\nCONNECT\r\n"
    assert bytes(body) == BIG + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"


def test_chunked_response_and_404(ec25: tuple[EmulatorThread, Port]) -> None:
    _, port = ec25
    set_url(port, b"http://web.test/chunked")
    assert port.two_phase("AT+QHTTPGET", "+QHTTPGET: ").endswith(b"+QHTTPGET: 0,200,28\r\n")
    assert port.command("AT+QHTTPREAD", until=b"+QHTTPREAD: 0\r\n").startswith(
        b'\r\nCONNECT\r\n{"chunked":"yes, in pieces"}'
    )
    set_url(port, b"http://web.test/nothing-here")
    assert port.two_phase("AT+QHTTPGET", "+QHTTPGET: ").endswith(b"+QHTTPGET: 0,404,21\r\n")


@pytest.mark.parametrize("path", [b"/bad-chunk", b"/cut"])
def test_a_response_that_is_not_good_http_is_an_error_not_a_crash(
    ec25: tuple[EmulatorThread, Port], path: bytes
) -> None:
    """A bad chunk size, or a body shorter than its length: the module reports an error
    (on b32764a the emulator's own chunk parser raised, and the request never ended)."""
    _, port = ec25
    set_url(port, b"http://web.test" + path)
    assert port.two_phase("AT+QHTTPGET", "+QHTTPGET: ").endswith(b"+QHTTPGET: 723\r\n")
    set_url(port, b"http://web.test/chunked")  # and it goes on
    assert port.two_phase("AT+QHTTPGET", "+QHTTPGET: ").endswith(b"+QHTTPGET: 0,200,28\r\n")


def test_http_errors_on_both_paths(ec200u: tuple[EmulatorThread, Port], ec25: tuple[EmulatorThread, Port]) -> None:
    for _, port in (ec200u, ec25):
        port.command("AT+CMEE=1")
        assert port.command("AT+QHTTPREAD", until=b"\r\n+CME ERROR: 705\r\n") == b"\r\n+CME ERROR: 705\r\n"
        set_url(port, b"http://unknown.invalid/x")
    # EC200 family (as the EG800K report): the DNS failure comes at once as +CME ERROR
    _, port = ec200u
    assert port.command("AT+QHTTPGET=60", until=b"716\r\n") == b"\r\n+CME ERROR: 716\r\n"
    # EC25: OK, then the error code in the URC
    _, port = ec25
    assert port.two_phase("AT+QHTTPGET=60", "+QHTTPGET: ") == b"\r\nOK\r\n\r\n+QHTTPGET: 714\r\n"


def test_a_ranged_get_in_request_header_mode(ec25: tuple[EmulatorThread, Port]) -> None:
    """``AT+QHTTPGET=<rsptime>,<length>,<input_time>`` takes the request as the host writes it,
    a Range header included, and only in request-header mode: the syntax changes with it."""
    _, port = ec25
    set_url(port, b"http://web.test/big")
    request = b"GET /big HTTP/1.1\r\nHost: web.test\r\nRange: bytes=0-9\r\n\r\n"
    answer = port.command(f"AT+QHTTPGET=60,{len(request)},60", until=b"ERROR\r\n")
    assert answer.endswith(b"ERROR\r\n") and b"CONNECT" not in answer  # requestheader is 0
    port.command('AT+QHTTPCFG="requestheader",1')
    assert port.command(f"AT+QHTTPGET=60,{len(request)},60", until=b"CONNECT\r\n").endswith(b"CONNECT\r\n")
    port.write(request)
    assert port.read_until(b"+QHTTPGET: ").endswith(b"+QHTTPGET: ")
    assert port.read_until(b"\r\n").startswith(b"0,200,")  # this stand-in server ignores Range: the whole body
