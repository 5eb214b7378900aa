"""The emulator's control channel: JSON lines on a Unix socket, so faults can be injected
from another process (`quecmqtt fault`) while `quecmqtt emulate` serves the port.

Request: {"fault": "drop-link", "args": [0, 1]}; answer: {"ok": true} or {"error": "..."}.

Every request line gets exactly one answer line, in order, and the connection goes on
serving the lines after it, whatever was wrong with one: not JSON (or nested too deeply),
not a request object, an unknown fault, bad arguments, a fault that cannot be applied now
(`replug` while the port is plugged: "... is plugged; unplug it first"), or a bug raising
inside the emulator (answered as "<fault> failed: <ExceptionType>: <message>"). A line
longer than MAX_REQUEST bytes (newline excluded) is skipped unread up to its newline and
answered {"error": "request too long (max MAX_REQUEST bytes)"}; the connection goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import AsyncGenerator, Callable
from typing import Any

from quecmqtt.emulator import Emulator

MAX_REQUEST = 64 * 1024  # bytes in one request line, newline excluded


# name -> (method, argument converters, help)
def _whole(what: str, low: int, high: int) -> Callable[[str], int]:
    """A converter for a whole-number argument in [low, high], its error in the user's terms."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{what}: want a whole number {low}-{high}, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"{what}: want {low}-{high}, got {value}")
        return value

    return convert


def _seconds(what: str, high: float) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{what}: want seconds, got {text!r}") from None
        if not 0 <= value <= high:  # also NaN
            raise ValueError(f"{what}: want 0-{high:g} seconds, got {text}")
        return value

    return convert


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"HEX: want pairs of hex digits, got {text!r}") from None


CLIENT = _whole("CLIENT", 0, 5)
# name -> (the Emulator method, a converter per argument (each checks its range: a fault that
# could not happen on a module, a negative chunk size, must not reach the emulator), help)
FAULTS: dict[str, tuple[str, tuple[Callable[[str], Any], ...], str]] = {
    "reboot": ("reboot", (), "POWERED DOWN, silence, RDY; volatile state is lost"),
    "drop-link": (
        "drop_link",
        (CLIENT, _whole("CODE", 1, 7)),
        "CLIENT [CODE]: close an MQTT link with +QMTSTAT: CLIENT,CODE (1)",
    ),
    "unplug": ("unplug", (), "the port vanishes (USB unplug): the device path dangles"),
    "replug": ("replug", (), "a new pty behind the same device path (after unplug)"),
    "pdp-deactivate": (
        "deactivate_pdp",
        (_whole("CID", 1, 16),),
        '[CID]: +QIURC: "pdpdeact",CID (1); its MQTT links drop',
    ),
    "stall": ("stall", (), "stop answering until 'resume'"),
    "resume": ("resume", (), "answer again after 'stall'"),
    "fragment": (
        "fragment",
        (_whole("MAX", 0, 65536),),
        "MAX: send output in random pieces of 1..MAX bytes (0: whole)",
    ),
    "inject": ("inject", (_hex,), "HEX: write these bytes to the port as they are"),
    "delay-urcs": ("delay_urcs", (_seconds("SECONDS", 3600),), "SECONDS: hold every URC back"),
    "rtt": ("set_rtt", (_seconds("SECONDS", 60),), "SECONDS: network round-trip time for connections and MQTT packets"),
    "burst": (
        "burst",
        (CLIENT, str, _whole("COUNT", 1, 10000)),
        "CLIENT TOPIC COUNT: deliver COUNT messages to CLIENT at once",
    ),
    "refuse-topic": ("refuse_topic", (str,), "TOPIC: the far side closes the link on a publish to TOPIC"),
    "corrupt-upload": ("corrupt_next_upload", (), "the next AT+QFUPL stores one byte less than it received"),
    "sim-remove": ("remove_sim", (), "the SIM is pulled: +CPIN: NOT READY (+QSIMSTAT: 1,0 if enabled)"),
    "sim-insert": ("insert_sim", (), "the SIM is back: +CPIN: READY (+QSIMSTAT: 1,1 if enabled)"),
    "psm": ("enter_psm", (), "the module enters PSM: PSM POWER DOWN, then silence until 'wake'"),
    "wake": ("wake", (), "out of PSM: RDY and the boot URCs"),
    "ping-fail": ("fail_pings", (CLIENT,), "CLIENT: the broker stops answering PINGREQ; the keep-alive fails"),
}


async def apply(emulator: Emulator, name: str, args: list[str]) -> None:
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    method, converters, _ = FAULTS[name]
    if len(args) > len(converters):
        raise ValueError(f"{name} takes at most {len(converters)} argument(s)")
    values = [convert(arg) for convert, arg in zip(converters, args, strict=False)]
    if name == "resume":
        emulator.stall(False)
        return
    if name == "fragment" and values:
        values[0] = values[0] or None
    result = getattr(emulator, method)(*values)
    if asyncio.iscoroutine(result):
        await result


class ControlServer:
    def __init__(self, emulator: Emulator, path: str) -> None:
        self.emulator = emulator
        self.path = path
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        kind = _kind(self.path)
        if kind is not None:
            # only a stale socket of an emulator that is gone may be replaced
            if kind != "socket":
                raise FileExistsError(f"{self.path} exists and is not a control socket; it is left alone")
            if await _answers(self.path):
                raise FileExistsError(f"{self.path} belongs to a running emulator")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with contextlib.aclosing(_request_lines(reader)) as lines:
                async for line in lines:
                    answer = await self._answer(line)
                    writer.write(json.dumps(answer).encode() + b"\n")
                    await writer.drain()
        except ConnectionError:
            pass  # the client went away: nobody to answer
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, line: bytes | None) -> dict[str, Any]:
        """The answer to one request line (None: a line over MAX_REQUEST); never raises."""
        if line is None:
            return {"error": f"request too long (max {MAX_REQUEST} bytes)"}
        name = "the request"
        try:
            name, args = _parse_request(line)
            await apply(self.emulator, name, args)
        except (ValueError, RuntimeError) as exc:  # refused: a bad request, or not now
            return {"error": str(exc)}
        except Exception as exc:  # a bug: said, not swallowed with the connection
            return {"error": f"{name} failed: {type(exc).__name__}: {exc}"}
        return {"ok": True}

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # else wait_closed() waits for clients (3.12+)
                writer.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def _request_lines(reader: asyncio.StreamReader) -> AsyncGenerator[bytes | None, None]:
    """The request lines a client sends, without their newline; None for each line over
    MAX_REQUEST bytes, whose bytes are dropped as they come (never buffered whole)."""
    pending = bytearray()
    too_long = False
    while chunk := await reader.read(65536):
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            yield None if too_long or len(line) > MAX_REQUEST else line
            too_long = False
        if len(pending) > MAX_REQUEST:
            too_long = True
            pending.clear()
    if too_long:
        yield None
    elif pending:
        yield bytes(pending)  # a last line without a newline


def _parse_request(line: bytes) -> tuple[str, list[str]]:
    """The fault name and its arguments; ValueError saying what is wrong."""
    try:
        request = json.loads(line)
    except RecursionError:
        raise ValueError("request is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # also bytes that are not UTF-8
        raise ValueError(f"request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or "fault" not in request:
        raise ValueError('a request is a JSON object: {"fault": NAME, "args": [ARG, ...]}')
    args = request.get("args", [])
    if not isinstance(args, list):
        raise ValueError('"args" must be a list')
    return str(request["fault"]), [str(arg) for arg in args]


def send_fault(path: str, name: str, args: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """Ask a running emulator for a fault; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"fault": name, "args": args}).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    result: dict[str, Any] = json.loads(answer or b'{"error": "no answer"}')
    return result


def _kind(path: str) -> str | None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return "socket" if stat.S_ISSOCK(mode) else "other"


async def _answers(path: str) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
