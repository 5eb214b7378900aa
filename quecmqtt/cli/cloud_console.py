"""Commands typed to a running `quecmqtt cloud` (standard input, a line each): what the
platform's console and cloud APIs do to a device, with the device's answer printed.

    rrpc PK DN TEXT                  system RRPC (the RRpc API): SUCCESS/TIMEOUT/OFFLINE and the answer
    call PK DN SERVICE [JSON]        a service (synchronous through RRPC when the thing model says sync)
    set PK DN JSON                   thing.service.property.set
    desired PK DN JSON               the shadow's desired state (the device gets a control push)
    help                             this list
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import stat
import sys
from typing import Any

from quecmqtt.cloud.responder import RRPC_TIMEOUT, Responder

HELP = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""


def wanted() -> bool:
    """Read commands when standard input is a pipe, or a terminal this process has in the
    foreground (in the background, reading it would stop the process: SIGTTIN)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
        if stat.S_ISFIFO(mode):
            return True
        return sys.stdin.isatty() and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


async def serve(responder: Responder) -> None:
    """Answer lines from standard input until it ends."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await _answer(responder, reader)
    finally:  # the pipe transport made the terminal non-blocking: the shell that reads it next must not see that
        with contextlib.suppress(OSError, ValueError):
            os.set_blocking(sys.stdin.fileno(), True)


async def _answer(responder: Responder, reader: asyncio.StreamReader) -> None:
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line over the limit: skipped up to its end
            print("console: a line over 64 KiB: ignored", flush=True)
            continue
        if not line:
            return
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            print(await run_line(responder, text), flush=True)


async def run_line(responder: Responder, text: str) -> str:
    """One command's output (an error says what was wrong, never raises)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        return f"console: {exc}"
    command, args = words[0], words[1:]
    try:
        if command == "help":
            return HELP
        if command == "rrpc" and len(args) == 3:
            result = await responder.rrpc(args[0], args[1], args[2].encode())
            return f"rrpc: {result.code}" + (f" {result.payload.decode('utf-8', 'replace')}" if result.payload else "")
        if command == "call" and len(args) in (3, 4):
            params = _object(args[3]) if len(args) == 4 else {}
            model = responder.models.get(args[0])
            if model is not None and model.call_type(args[2]) == "sync":
                reply = await responder.call_sync_service(args[0], args[1], args[2], params, RRPC_TIMEOUT)
            else:
                reply = await responder.call_service(args[0], args[1], args[2], params)
            return f"reply: {json.dumps(reply, ensure_ascii=False)}"
        if command == "set" and len(args) == 3:
            reply = await responder.set_properties(args[0], args[1], _object(args[2]))
            return f"reply: {json.dumps(reply, ensure_ascii=False)}"
        if command == "desired" and len(args) == 3:
            version = await responder.set_desired(args[0], args[1], _object(args[2]))
            return f"shadow: version {version}"
    except ValueError as exc:
        return f"console: {exc}"
    except TimeoutError:
        return "console: the device did not answer in time"
    return f"console: not a command: {text[:80]!r} (help lists them)"


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"not JSON: {text[:80]!r} (quote it: '{{\"LightStatus\": 1}}')") from None
    if not isinstance(value, dict):
        raise ValueError("give a JSON object")
    return value
