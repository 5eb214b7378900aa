"""`quecmqtt at`: an interactive AT console through the real runtime.

Lines typed are parsed against the command table, so two-phase commands wait for their
result URC, data prompts ask for the data, and secret arguments are known: the console shows
the redacted form and writes only that to its history file (Up-arrow within a session still
gives back what was typed). URCs are printed as they arrive.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from quecmqtt.cli.common import add_port_options, ask, open_modem, run
from quecmqtt.secret import REDACTED

HISTORY = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "quecmqtt" / "at_history"
HELP = """\
Type AT commands (AT+QMTCFG=?, ATI, ...). A command that takes data asks for it.
  :quit (or Ctrl-D)   leave
  :help               this text
Secret arguments (device secrets, passwords) are shown as *** and never written to the history."""


def _readline() -> Any:
    try:
        import readline
    except ImportError:  # pragma: no cover - platforms without GNU readline
        return None
    return readline


async def console(args: argparse.Namespace) -> int:
    readline = _readline()
    history = Path(args.history) if args.history else HISTORY
    if readline is not None and not args.no_history:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)

    try:
        return await _session(args, readline)
    finally:  # also after Ctrl-C
        if readline is not None and not args.no_history:
            with contextlib.suppress(OSError):
                _save_history(readline, history)


async def _session(args: argparse.Namespace, readline: Any) -> int:
    from quecmqtt.at.events import Event, Garbage, MqttMessage, MqttStatus, Urc
    from quecmqtt.at.parse import parse_command
    from quecmqtt.errors import QuecError
    from quecmqtt.modem import ModuleReset, Overflow

    async with open_modem(args) as modem:
        print(f"connected to {args.port}; :help for help, Ctrl-D to leave", flush=True)

        def show(event: Event) -> None:
            text: str
            if isinstance(event, MqttMessage):
                text = f"+QMTRECV client {event.client} {event.topic!r}: {event.payload[:200]!r}"
            elif isinstance(event, MqttStatus):
                text = f"+QMTSTAT: {event.client},{event.code}"
            elif isinstance(event, Urc):
                text = event.text
            elif isinstance(event, ModuleReset):
                text = f"module reset ({event.reason})"
            elif isinstance(event, Overflow):
                text = f"{event.dropped} URCs dropped"
            elif isinstance(event, Garbage):
                text = f"garbage from the module ({event.length} bytes)"
            else:
                return
            print(f"\n[URC] {modem.redactor.redact_text(text)}", flush=True)

        modem.add_listener(show)
        while True:
            try:
                line = await ask("AT> ")
            except EOFError:
                print()
                break
            line = line.strip()
            if not line:
                continue
            if line in (":quit", ":q", "exit"):
                break
            if line in (":help", "help", "?"):
                print(HELP)
                continue
            command = parse_command(line.encode())
            if any(secret.reveal() == REDACTED for secret in command.secrets):
                # a line recalled from the history file: sending it would set the secret to ***
                print(f"{REDACTED} stands where a secret goes (history keeps no secrets): type the secret itself")
                continue
            data: bytes | None = None
            phase = command.spec.data
            if phase is not None and phase.kind.name != "DOWNLOAD":
                length = command.data_length
                prompt = f"data ({length} bytes)> " if length is not None else "data (Enter sends)> "
                try:
                    text = await ask(prompt)
                except EOFError:
                    break
                data = text.encode()
                if readline is not None and readline.get_current_history_length():
                    readline.remove_history_item(readline.get_current_history_length() - 1)  # payloads stay out
            try:
                reply = await modem.execute(command, data)
            except QuecError as exc:
                print(f"{type(exc).__name__}: {modem.redactor.redact_text(str(exc))}", flush=True)
                continue
            for response in reply.responses:
                print(modem.redactor.redact_text(response.text))
            if reply.body is not None:
                print(reply.body.decode("utf-8", errors="replace"))
            print(reply.final.text)
            if reply.result is not None:
                print(modem.redactor.redact_text(reply.result.text), flush=True)
    return 0


def _save_history(readline: Any, history: Path) -> None:
    """Write the history with every secret redacted. During the session Up-arrow gives back
    what was typed; the file gets the redacted form of each line, and nothing else."""
    from quecmqtt.at.parse import has_unknown_arguments, parse_command

    for index in range(readline.get_current_history_length()):
        line = readline.get_history_item(index + 1)  # get_history_item counts from 1
        command = parse_command(line.encode()) if line else None
        if command is not None and command.secrets:  # whatever the line looks like: ` AT+..`, `at+..;+..`
            readline.replace_history_item(index, command.redacted)  # replace_history_item counts from 0
        elif command is not None and has_unknown_arguments(line.encode()):
            # a command the table does not know (a vendor's, a typo): its arguments may be
            # anything, a secret too; the file keeps the name only
            readline.replace_history_item(index, line[: line.index("=") + 1] + REDACTED)  # the first `=`
    history.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(history, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    os.close(fd)
    readline.write_history_file(history)
    os.chmod(history, 0o600)


def _cmd_at(args: argparse.Namespace) -> int:
    return run("at", lambda: console(args))


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "at",
        help="interactive AT console with live URCs, history and redaction",
        description=(
            "Talk to the module directly, through the same runtime the library uses: commands wait for their "
            "final result and, for two-phase commands (AT+QMTOPEN, AT+QMTPUBEX, ...), their result URC; data "
            "prompts ask for the data; URCs print as they arrive. Secrets are shown as *** and kept out of the "
            f"history file ({HISTORY})."
        ),
        epilog="Example: quecmqtt at --port /dev/ttyUSB2",
    )
    add_port_options(parser)
    parser.add_argument("--history", metavar="FILE", help=f"history file (default {HISTORY})")
    parser.add_argument("--no-history", action="store_true", help="neither read nor write a history file")
    parser.set_defaults(func=_cmd_at)
