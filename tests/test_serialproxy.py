"""The recording proxy against a scripted module, for the ways a program writes to it that
the emulator does not provoke: keystrokes, data phases the table does not know, transparent
mode, a cancelled entry, a prompt inside a payload, a line never finished. In every case no
secret reaches the transcript, and what was sent still does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tty
from collections.abc import Callable
from pathlib import Path

import pytest

from quecmqtt.transcripts.proxy import SerialProxy
from quecmqtt.transport.base import Transport

SECRET = "proxy-secret-0123456"
CONN = f'AT+QMTCONN=0,"cid","user","{SECRET}"'.encode()


class ScriptedModule(Transport):
    """Echoes each byte (if `echo`), answers lines, and knows a few data phases."""

    name = "scripted"
    reopenable = False

    def __init__(self, echo: bool = True, urc_when: tuple[bytes, bytes] | None = None) -> None:
        self.out: asyncio.Queue[bytes] = asyncio.Queue()
        self.echo = echo
        self.urc_when = urc_when  # (a line prefix typed so far, a URC to send then)
        self.line = bytearray()
        self.entry: Callable[[int], None] | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def read(self) -> bytes:
        return await self.out.get()

    async def write(self, data: bytes) -> None:
        for byte in data:
            if self.entry is not None:
                self.entry(byte)
            elif byte == 0x0D:
                if self.echo:
                    self.out.put_nowait(b"\r")
                line, self.line = bytes(self.line), bytearray()
                self.answer(line)
            elif byte != 0x0A:
                self.line.append(byte)
                if self.echo:
                    self.out.put_nowait(bytes([byte]))
                if self.urc_when and bytes(self.line) == self.urc_when[0]:
                    self.out.put_nowait(self.urc_when[1])

    def answer(self, line: bytes) -> None:
        upper = line.upper()
        if m := re.match(rb'AT\+QMTPUBEX=\d+,\d+,\d+,\d+,"[^"]*",(\d+)', upper):
            self.data_entry(int(m.group(1)), b"\r\nOK\r\n\r\n+QMTPUBEX: 0,1,0\r\n")
        elif upper.startswith(b"AT+QISEND"):
            self.data_entry(None, b"\r\nSEND OK\r\n")
        elif upper.startswith(b"AT+QISWTMD"):
            self.out.put_nowait(b"\r\nCONNECT\r\n")
            seen = bytearray()

            def transparent(byte: int) -> None:
                seen.append(byte)
                if seen.endswith(b"+++"):
                    self.entry = None
                    self.out.put_nowait(b"\r\nNO CARRIER\r\n")

            self.entry = transparent
        elif upper == b"AT+QICSGP=1":
            self.out.put_nowait(b'\r\n+QICSGP: 1,"cmnet","user","apn-password-77",1\r\n\r\nOK\r\n')
        elif upper.startswith(b"AT"):
            self.out.put_nowait(b"\r\nOK\r\n")

    def data_entry(self, length: int | None, final: bytes) -> None:
        self.out.put_nowait(b"\r\n> ")
        got = bytearray()

        def entry(byte: int) -> None:
            if length is None and byte == 0x1B:  # cancelled: some modules say nothing at all
                self.entry = None
                return
            if (length is None and byte == 0x1A) or (length is not None and len(got) + 1 >= length):
                self.entry = None
                self.out.put_nowait(final)
                return
            got.append(byte)

        self.entry = entry


async def record(tmp_path: Path, module: ScriptedModule, steps: list[bytes | float | tuple[str, bytes]]) -> str:
    """Run the proxy around `module`, play `steps` as the host (bytes: one write; a number:
    a pause; ("keys", bytes): one write per byte), stop, and return the transcript."""
    output = tmp_path / "t.txt"
    proxy = SerialProxy(module, tmp_path / "ttyP", output)
    stop = asyncio.Event()
    task = asyncio.create_task(proxy.run(stop))
    await proxy.ready.wait()
    fd = os.open(proxy.link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)

    async def drain(seconds: float) -> None:
        for _ in range(max(1, int(seconds / 0.005))):
            with contextlib.suppress(BlockingIOError):
                os.read(fd, 4096)
            await asyncio.sleep(0.005)

    try:
        for step in steps:
            if isinstance(step, float):
                await drain(step)
            elif isinstance(step, tuple):
                for byte in step[1]:
                    os.write(fd, bytes([byte]))
                    await drain(0.005)
            else:
                os.write(fd, step)
                await drain(0.02)
        await drain(0.1)
    finally:
        os.close(fd)
        stop.set()
        await task
    return output.read_text()


CASES: dict[str, tuple[dict[str, object], list[bytes | float | tuple[str, bytes]]]] = {
    "keystrokes": ({}, [("keys", CONN + b"\r")]),
    "keystrokes, a URC cutting into their echo": (
        {"urc_when": (CONN[:35], b"\r\n+QMTSTAT: 0,1\r\n")},
        [("keys", CONN + b"\r")],
    ),
    "keystrokes, a URC between them, no echo": (
        {"echo": False, "urc_when": (CONN[:30], b"\r\n+QMTSTAT: 0,1\r\n")},
        [("keys", CONN + b"\r")],
    ),
    "an arrow key while typing": ({}, [("keys", b'AT+CPIN="98765432'), b"\x1b[D", b'"\r']),
    "LF only": ({}, [CONN + b"\n"]),
    "blank before AT": ({}, [b" " + CONN + b"\r"]),
    "blanks around ';'": ({}, [b"AT+CSQ ; +" + CONN[3:] + b"\r"]),
    "the PUK form": ({}, [b'AT+CPIN="87654321","98765432"\r']),
    "a Ctrl-Z entry the table does not know": ({}, [b"AT+QISEND=0\r", 0.05, b"payload\x1a", 0.05, CONN + b"\r"]),
    "transparent mode": ({}, [b"AT+QISWTMD=0,2\r", 0.05, b"data", 0.05, b"+++", 0.1, CONN + b"\r"]),
    "a payload that begins with AT": ({}, [b'AT+QMTPUBEX=0,1,1,0,"t",5\r', 0.05, b"ATxyz", 0.05, CONN + b"\r"]),
    "data and the next line in one write": ({}, [b'AT+QMTPUBEX=0,1,1,0,"t",5\r', 0.05, b"hello" + CONN + b"\r"]),
    "data before its prompt": ({}, [b'AT+QMTPUBEX=0,1,1,0,"t",5\rATxyz', 0.05, CONN + b"\r"]),
    "a line never finished": ({}, [("keys", CONN)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_no_secret_reaches_the_transcript(tmp_path: Path, case: str) -> None:
    options, steps = CASES[case]
    text = await record(tmp_path, ScriptedModule(**options), steps)  # type: ignore[arg-type]
    # each direction joined up again: a secret one byte per record is still a secret
    joined = {d: "".join(r.split(" ", 1)[1] for r in text.splitlines() if r[:1] == d and " " in r) for d in "<>"}
    for secret in (SECRET, SECRET[:8], SECRET[-8:], "98765432", "87654321"):
        for where in (text, joined["<"], joined[">"]):
            assert secret not in where, f"{case}: {secret!r} in\n{text}"
    assert "{{" in text


async def test_data_is_recorded_after_its_prompt_and_read_back_secrets_are_hidden(tmp_path: Path) -> None:
    text = await record(
        tmp_path, ScriptedModule(), [b'AT+QMTPUBEX=0,1,1,0,"t",5\r', 0.05, b"hello", 0.05, b"AT+QICSGP=1\r"]
    )
    records = text.splitlines()
    prompt = next(i for i, r in enumerate(records) if r.startswith("<") and r.endswith(r"\r\n>\x20"))
    data = next(i for i, r in enumerate(records) if r.startswith(">") and "hello" in r)
    assert prompt < data
    assert "apn-password-77" not in text and '"user","{{' in text
