"""`quecmqtt record` (a recording serial proxy) and `quecmqtt replay` (a transcript served as a
fake module)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quecmqtt.cli.common import stop_on_signals
from quecmqtt.errors import QuecError, TranscriptError


async def _until_ready(ready: asyncio.Event, task: asyncio.Task[Any]) -> None:
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


@contextlib.contextmanager
def _link_path(given: str | None, name: str) -> Iterator[str]:
    """The pty's path: the one given, or `name` in a temporary directory removed afterwards."""
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="quecmqtt-") as directory:
        yield str(Path(directory) / name)


def _cmd_record(args: argparse.Namespace) -> int:
    from quecmqtt.transcripts.proxy import SerialProxy
    from quecmqtt.transport import open_transport

    if not args.port:
        print("quecmqtt record: give --port DEVICE, the real module's AT port", file=sys.stderr)
        return 2
    from quecmqtt.cli.common import UsageError, check_serial_device, check_writable

    try:
        if not args.port.startswith(("socket://", "rfc2217://")):
            check_serial_device(args.port)
        check_writable(args.output, "the transcript")
    except UsageError as exc:
        print(f"quecmqtt record: {exc}", file=sys.stderr)
        return 2

    async def serve(link: str) -> int:
        options: dict[str, Any] = {} if args.port.startswith("socket://") else {"baudrate": args.baud}
        proxy = SerialProxy(open_transport(args.port, **options), link, args.output)
        stop = stop_on_signals()
        task = asyncio.create_task(proxy.run(stop.event))
        await _until_ready(proxy.ready, task)
        if proxy.ready.is_set():
            print(f"device: {proxy.link}  (point your program here; bytes go to {args.port})", flush=True)
            print(f"recording to {args.output}; Ctrl-C stops", flush=True)
        try:
            await task
        finally:
            if proxy.ready.is_set():  # also when the module's port vanished: what was recorded is kept
                print(
                    f"recorded {proxy.host_bytes} bytes from the host, {proxy.module_bytes} from the module", flush=True
                )
            else:  # the port never opened: nothing was recorded, and no empty transcript is left
                proxy.recorder.close_file()
                with contextlib.suppress(OSError):
                    os.unlink(args.output)
        return stop.status()

    try:
        with _link_path(args.link, "ttyREC0") as link:
            return asyncio.run(serve(link))
    except (OSError, QuecError) as exc:
        if "Inappropriate ioctl" in str(exc):  # ENOTTY: a character device, not a terminal
            print(f"quecmqtt record: {args.port} is not a serial port", file=sys.stderr)
            return 2
        print(f"quecmqtt record: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, FileNotFoundError) else 1  # the --link directory


def _cmd_replay(args: argparse.Namespace) -> int:
    from quecmqtt.transcripts.replay_pty import ReplayServer

    with _link_path(args.link, "ttyREPLAY0") as link:
        try:
            server = ReplayServer(args.file, link)
        except TranscriptError as exc:
            print(f"quecmqtt replay: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"quecmqtt replay: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        try:
            return asyncio.run(_serve_replay(args, server))
        except OSError as exc:  # the link cannot be made
            print(f"quecmqtt replay: {exc}", file=sys.stderr)
            return 2


async def _serve_replay(args: argparse.Namespace, server: Any) -> int:
    stop = stop_on_signals()
    task = asyncio.create_task(server.run(stop.event))
    await _until_ready(server.ready, task)
    if not server.ready.is_set():
        await task  # it failed before the pty was there: its error is the answer
    print(f"device: {server.link}  (serving {args.file}; Ctrl-C stops)", flush=True)
    await task
    if server.failure is not None:
        print(f"quecmqtt replay: mismatch\n{server.failure}", file=sys.stderr, flush=True)
        return 1
    if server.replay.done:
        print("transcript complete", flush=True)
        return 0
    print("stopped before the end of the transcript", flush=True)
    return stop.status() or 1


def add_parsers(sub: Any) -> None:
    record = sub.add_parser(
        "record",
        help="a serial proxy: offer a pty to another program and record its session with the module",
        description=(
            "Open the module's real AT port and offer a pseudo-terminal in its place. Everything another program "
            "writes to the pty goes to the module and back, and is written to a redacted transcript (secrets in "
            "commands, echoes, read-backs and registration replies become {{name:length}} placeholders). Replay "
            "the transcript with 'quecmqtt replay' or in tests with ReplayTransport."
        ),
        epilog="Example: quecmqtt record --port /dev/ttyUSB2 --link /tmp/ttyREC0 --output session.txt",
    )
    record.add_argument("--port", required=False, metavar="DEVICE", help="the real module's AT port")
    record.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    record.add_argument("--link", metavar="PATH", help="where the pty appears (default: a temporary path)")
    record.add_argument("--output", "-o", required=True, metavar="FILE", help="the transcript to write")
    record.set_defaults(func=_cmd_record)

    replay = sub.add_parser(
        "replay",
        help="serve a transcript on a pty as a fake module",
        description=(
            "Serve a transcript on a pseudo-terminal: the program that opens it must write the transcript's host "
            "records (a placeholder matches any bytes of its length) and gets the module records back. Exits 0 "
            "when the transcript is complete, 1 with a readable diff at the first mismatch."
        ),
        epilog="Example: quecmqtt replay session.txt --link /tmp/ttyREPLAY0  (a transcript 'quecmqtt record' wrote)",
    )
    replay.add_argument(
        "file", help="a transcript: '> ' lines the host writes, '< ' lines the module answers, '#' comments"
    )
    replay.add_argument("--link", metavar="PATH", help="where the pty appears (default: a temporary path)")
    replay.set_defaults(func=_cmd_replay)
