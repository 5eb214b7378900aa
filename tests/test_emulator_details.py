"""Emulator details: what aliauth signs, CONNACK codes passed through, the file system, and
the rule that the emulator shares no code with the driver."""

from __future__ import annotations

import ast
import hashlib
import hmac
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from quecmqtt.emulator import EmulatorThread
from tests.serialport import Port

ROOT = Path(__file__).resolve().parent.parent


class ConnectCatcher:
    """A TCP server that reads one MQTT CONNECT and answers CONNACK with `code`."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.fields: dict[str, bytes] = {}
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while True:
                data += conn.recv(4096)
                length, shift, pos = 0, 0, 1
                while pos < len(data):
                    length |= (data[pos] & 0x7F) << shift
                    shift += 7
                    pos += 1
                    if not data[pos - 1] & 0x80:
                        break
                if len(data) >= pos + length:
                    break
            body = data[pos : pos + length]
            pos = 2 + struct.unpack_from("!H", body)[0] + 1  # protocol name, level
            flags = body[pos]
            pos += 3  # flags, keepalive
            for name, present in (("client_id", True), ("username", flags & 0x80), ("password", flags & 0x40)):
                if present:
                    (size,) = struct.unpack_from("!H", body, pos)
                    self.fields[name] = body[pos + 2 : pos + 2 + size]
                    pos += 2 + size
            conn.sendall(bytes([0x20, 2, 0, self.code]))
            self.done.set()
            conn.recv(10)


@pytest.fixture
def port() -> Iterator[tuple[EmulatorThread, Port]]:
    with EmulatorThread(model="EC200U") as emu:
        p = Port(emu.path)
        p.command("ATE0", until=b"OK\r\n")
        yield emu, p
        p.close()


def test_aliauth_signs_the_login_as_modelled(port: tuple[EmulatorThread, Port]) -> None:
    """[R] Undocumented on real modules: the emulator's model is Aliyun's direct-login sign."""
    _, p = port
    catcher = ConnectCatcher(0)
    p.command('AT+QMTCFG="aliauth",0,"i2uqc2dloOl","device001","c4fa40df9c8078073d75a26be2bc8f58"')
    assert p.two_phase(f'AT+QMTOPEN=0,"127.0.0.1",{catcher.port}', "+QMTOPEN: 0,").endswith(b"+QMTOPEN: 0,0\r\n")
    assert p.two_phase('AT+QMTCONN=0,"device001"', "+QMTCONN: 0,").endswith(b"+QMTCONN: 0,0,0\r\n")
    assert catcher.done.wait(5)
    client_id = catcher.fields["client_id"].decode()
    assert client_id.startswith("device001|securemode=3,signmethod=hmacsha1,timestamp=") and client_id.endswith("|")
    timestamp = client_id.split("timestamp=")[1].rstrip("|")
    assert catcher.fields["username"] == b"device001&i2uqc2dloOl"
    content = f"clientIddevice001deviceNamedevice001productKeyi2uqc2dloOltimestamp{timestamp}"
    expected = hmac.new(b"c4fa40df9c8078073d75a26be2bc8f58", content.encode(), hashlib.sha1).hexdigest()
    assert catcher.fields["password"].decode() == expected


@pytest.mark.parametrize("code", [4, 5])
def test_connack_code_is_passed_through(port: tuple[EmulatorThread, Port], code: int) -> None:
    _, p = port
    catcher = ConnectCatcher(code)
    p.two_phase(f'AT+QMTOPEN=0,"127.0.0.1",{catcher.port}', "+QMTOPEN: 0,")
    got = p.two_phase('AT+QMTCONN=0,"dev","user","wrong"', "+QMTCONN: 0,")
    assert got == f"\r\nOK\r\n\r\n+QMTCONN: 0,0,{code}\r\n".encode()
    assert catcher.fields["password"] == b"wrong"


def test_file_system(port: tuple[EmulatorThread, Port]) -> None:
    emu, p = port
    assert p.command('AT+QFLDS="UFS"') == b"\r\n+QFLDS: 286720,286720\r\n\r\nOK\r\n"
    p.command('AT+QFUPL="UFS:a.pem",10', until=b"CONNECT\r\n")
    p.write(b"0123456789")
    p.read_until(b"OK\r\n")
    assert emu.files() == {"a.pem": b"0123456789"}
    assert p.command('AT+QFLDS="UFS"') == b"\r\n+QFLDS: 286710,286720\r\n\r\nOK\r\n"
    assert p.command('AT+QFDEL="UFS:a.pem"') == b"\r\nOK\r\n"
    p.command("AT+CMEE=2")
    assert p.command('AT+QFDEL="a.pem"', until=b"found\r\n") == b"\r\n+CME ERROR: file not found\r\n"


def test_a_short_upload_keeps_what_arrived_then_times_out(port: tuple[EmulatorThread, Port]) -> None:
    emu, p = port
    p.command('AT+QFUPL="part.bin",10,1', until=b"CONNECT\r\n")
    p.write(b"\x12\x34")
    assert p.read_until(b"+CME ERROR: 421\r\n", timeout=3) == b"\r\n+QFUPL: 2,1234\r\n\r\n+CME ERROR: 421\r\n"
    assert emu.files()["part.bin"] == b"\x12\x34"


def test_the_emulator_imports_nothing_from_the_driver() -> None:
    for path in sorted((ROOT / "quecmqtt" / "emulator").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("quecmqtt"):
                    # its own modules, and what the stand-ins share (a pty, MQTT packets): never the driver
                    assert name.startswith(("quecmqtt.emulator", "quecmqtt.wire")), f"{path.name} imports {name}"
