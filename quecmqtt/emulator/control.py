"""The emulator's control channel: JSON lines on a Unix socket, so faults can be injected
from another process (`quecmqtt fault`) while `quecmqtt emulate` serves the port.

Request: {"fault": "drop-link", "args": [0, 1]}; answer: {"ok": true} or {"error": "..."}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from quecmqtt.emulator import Emulator

# name -> (method, argument converters, help)
FAULTS: dict[str, tuple[str, tuple[Callable[[str], Any], ...], str]] = {
    "reboot": ("reboot", (), "POWERED DOWN, silence, RDY; volatile state is lost"),
    "drop-link": ("drop_link", (int, int), "CLIENT [CODE]: close an MQTT link with +QMTSTAT: CLIENT,CODE (1)"),
    "unplug": ("unplug", (), "the port vanishes (USB unplug): the device path dangles"),
    "replug": ("replug", (), "a new pty behind the same device path"),
    "pdp-deactivate": ("deactivate_pdp", (int,), '[CID]: +QIURC: "pdpdeact",CID (1); its MQTT links drop'),
    "stall": ("stall", (), "stop answering until 'resume'"),
    "resume": ("resume", (), "answer again after 'stall'"),
    "fragment": ("fragment", (int,), "MAX: send output in random pieces of 1..MAX bytes (0: whole)"),
    "inject": ("inject", (bytes.fromhex,), "HEX: write these bytes to the port as they are"),
    "delay-urcs": ("delay_urcs", (float,), "SECONDS: hold every URC back"),
    "rtt": ("set_rtt", (float,), "SECONDS: network round-trip time for connections and MQTT packets"),
    "burst": ("burst", (int, str, int), "CLIENT TOPIC COUNT: deliver COUNT messages to CLIENT at once"),
    "refuse-topic": ("refuse_topic", (str,), "TOPIC: the far side closes the link on a publish to TOPIC"),
    "corrupt-upload": ("corrupt_next_upload", (), "the next AT+QFUPL stores one byte less than it received"),
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
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    await apply(self.emulator, str(request["fault"]), [str(a) for a in request.get("args", [])])
                    answer: dict[str, Any] = {"ok": True}
                except (ValueError, KeyError, TypeError) as exc:
                    answer = {"error": str(exc)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


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
