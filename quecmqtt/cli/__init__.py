"""The `quecmqtt` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # `typing` costs every start 4 ms and more: imported only by type checkers
if TYPE_CHECKING:
    from typing import Any, NoReturn


# argparse asks gettext for every string it shows (each parser's "show this help message"...),
# and each ask searches the disk for a catalogue: 8 ms of a 35 ms --help. quecmqtt speaks
# English; argparse's few words around its messages stay English with it.
argparse._ = str  # type: ignore[attr-defined]


_WIDTH: list[int] = []


def _help_width() -> int:
    """The terminal's width less 2, as argparse computes it; asked once per process."""
    if not _WIDTH:  # shutil.get_terminal_size's rule, without importing shutil (bz2, lzma: 3 ms)
        import os

        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 80
        _WIDTH.append(max((columns or 80) - 2, 11))
    return _WIDTH[0]


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, in the command's name: what is wrong and where the
    help is, not the usage block (every subcommand's parser is one of these: argparse makes
    subparsers of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)  # the deepest parser's wins: who reports extras

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument, each asking the terminal its width
        make: Any = self.formatter_class  # typeshed's protocol knows only `prog`; every class takes width
        formatter: argparse.HelpFormatter = make(prog=self.prog, width=_help_width())
        return formatter

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")

    def group_needs_a_command(self, names: Sequence[str]) -> int:
        """For `quecmqtt mqtt` alone: one line naming the commands, status 2."""
        self.error(f"give a command: {', '.join(names)}")


def _cmd_decode(args: argparse.Namespace) -> int:
    import json

    from quecmqtt.errors import TranscriptError
    from quecmqtt.transcripts.decode import decode_raw, decode_transcript
    from quecmqtt.transcripts.format import Transcript

    try:
        if args.raw:
            with open(args.file, "rb") as fh:
                events = decode_raw(fh.read(), reveal=args.reveal)
        else:
            events = decode_transcript(Transcript.load(args.file), reveal=args.reveal)
        for obj in events:
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    except FileNotFoundError:
        print(f"quecmqtt decode: {args.file}: no such file", file=sys.stderr)
        return 2
    except (TranscriptError, UnicodeDecodeError) as exc:
        print(f"quecmqtt decode: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `quecmqtt decode x | head`
        return 0
    except OSError as exc:  # a directory, no permission
        print(f"quecmqtt decode: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_emulate(args: argparse.Namespace) -> int:
    import asyncio

    from quecmqtt.cli.common import stop_on_signals
    from quecmqtt.emulator import Emulator
    from quecmqtt.emulator.control import ControlServer

    hosts: dict[str, str] = {}
    for item in args.hosts:
        problem = _hosts_problem(item)
        if problem:
            print(
                f"quecmqtt emulate: --hosts {item!r}: {problem} (NAME=ADDR:PORT or NAME:PORT=ADDR:PORT)",
                file=sys.stderr,
            )
            return 2
        name, _, target = item.partition("=")
        hosts[name] = target
    if args.sim_pin is not None and not (args.sim_pin.isdigit() and 4 <= len(args.sim_pin) <= 8):
        print("quecmqtt emulate: --sim-pin: a SIM PIN is 4 to 8 digits", file=sys.stderr)
        return 2

    async def serve() -> int:
        stop = stop_on_signals()  # before anything is printed: "Ctrl-C stops" must be true at once
        emulator = Emulator(
            model=args.model,
            link=args.link,
            hosts=hosts,
            echo=args.echo == "on",
            rtt=args.rtt,
            pdp_active=not args.no_pdp,
            sim_pin=args.sim_pin,
            announce_boot=args.boot,
            imei=args.imei,
            profile=args.profile,
            host_port=args.host_port,
            urcport=args.urc_port,
        )
        await emulator.start()
        control = ControlServer(emulator, args.control or emulator.path + ".control")
        try:
            await control.start()
        except OSError as exc:
            await emulator.stop()  # its link goes too
            raise OSError(f"cannot make the control socket {control.path}: {exc.strerror or exc}") from None
        except BaseException:
            await emulator.stop()
            raise
        print(f"device: {emulator.path}", flush=True)
        print(f"control: {control.path}  (quecmqtt fault --control {control.path} reboot)", flush=True)
        profile = emulator.module.profile
        based = f" (a doctor profile based on {profile.based_on})" if profile.based_on else ""
        print(f"model: {profile.name}{based}, echo {args.echo}; Ctrl-C stops", flush=True)
        try:
            await stop.event.wait()
        finally:
            await control.stop()
            await emulator.stop()
        return stop.status()

    try:
        return asyncio.run(serve())
    except (ValueError, OSError) as exc:
        print(f"quecmqtt emulate: {exc}", file=sys.stderr)
        return 2


def _hosts_problem(item: str) -> str | None:
    """What is wrong with one --hosts entry, or None: the emulator's own reading of it, and
    a port for the target (the command line asks for ADDR:PORT, as its help says)."""
    from quecmqtt.emulator import parse_hosts

    name, sep, target = item.partition("=")
    if not sep or not name or not target:
        return "want NAME=TARGET"
    try:
        parse_hosts({name: target})
    except ValueError as exc:
        return str(exc)
    return None if ":" in target else f"the target {target!r} has no port"


def _cmd_fault(args: argparse.Namespace) -> int:
    from quecmqtt.emulator.control import send_fault

    try:
        answer = send_fault(args.control, args.fault, args.args)
    except ValueError:  # not JSON: something else listens there
        print(f"quecmqtt fault: {args.control} did not answer as an emulator's control socket does", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"quecmqtt fault: cannot reach the control socket {args.control}: {exc.strerror or exc} "
            "(is 'quecmqtt emulate' running? it prints the socket's path)",
            file=sys.stderr,
        )
        return 2
    if "error" in answer:
        print(f"quecmqtt fault: {answer['error']}", file=sys.stderr)
        return 2
    return 0


# commands that log nothing: no logging set-up (its import) for them unless -v/-q asks
LIGHT = frozenset({"decode", "fault"})

# name -> (the module that adds its parser, the function, the one-line help). `quecmqtt --help`
# lists these without importing any of them; a command's own module is imported only when that
# command runs (or asks for its --help): the start stays fast.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "decode": ("quecmqtt.cli", "_add_decode", "print the events of a transcript as JSON lines"),
    "emulate": ("quecmqtt.cli", "_add_emulate", "run an emulated Quectel module on a pseudo-terminal"),
    "fault": ("quecmqtt.cli", "_add_fault", "inject a fault into a running 'quecmqtt emulate'"),
    "aliyun": ("quecmqtt.cli.aliyun", "add_parser", "Aliyun IoT: credentials, registration, login"),
    "cloud": (
        "quecmqtt.cli.cloud",
        "add_parser",
        "run the local Aliyun cloud twin (auth, registration, Alink replies) in front of a broker",
    ),
    "demo": (
        "quecmqtt.cli.demo",
        "add_parser",
        "the whole stack on this machine: cloud twin, emulated module, registration, login, property post",
    ),
    "at": ("quecmqtt.cli.console", "add_parser", "interactive AT console with live URCs, history and redaction"),
    "record": (
        "quecmqtt.cli.sessions",
        "add_parsers",
        "a serial proxy: offer a pty to another program and record its session with the module",
    ),
    "replay": ("quecmqtt.cli.sessions", "add_parsers", "serve a transcript on a pty as a fake module"),
    "completion": ("quecmqtt.cli.completion", "add_parser", "print a shell completion script (bash, zsh)"),
    "provision": (
        "quecmqtt.cli.provision",
        "add_parser",
        "provision modules on a factory line: identify, attach, register with Aliyun, prove by logging in",
    ),
    "info": (
        "quecmqtt.cli.device",
        "add_parsers",
        "the module at a glance: identity, SIM, signal, registration, operator, PDP",
    ),
    "attach": (
        "quecmqtt.cli.device",
        "add_parsers",
        "get online: SIM ready, registered, PDP context active (says which step failed)",
    ),
    "mqtt": ("quecmqtt.cli.mqtt", "add_parser", "publish or subscribe with the module's MQTT client"),
    "ports": (
        "quecmqtt.cli.ports",
        "add_parser",
        "list serial ports, mark Quectel modules' AT ports, warn about processes holding them",
    ),
    "doctor": (
        "quecmqtt.cli.doctor",
        "add_parser",
        "learn a module without changing it: what works, what the driver will use, a profile file",
    ),
}


def _add_decode(sub: Any) -> None:
    dec = sub.add_parser(
        "decode",
        help="print the events of a transcript as JSON lines",
        description=(
            "Run the AT codec over a transcript and print one JSON object per event: "
            "command (with its final result and lines), mqtt_message, mqtt_status, module_ready, "
            "powered_down, urc, final and garbage. Secret command arguments are shown as ***. Each object has "
            "'event'; the other keys depend on it."
        ),
        epilog="Example: quecmqtt decode session.txt | jq -c 'select(.event==\"mqtt_message\")'  "
        "(a transcript 'quecmqtt record' or --record wrote)",
    )
    dec.add_argument("file", help="a transcript (.txt), or with --raw a plain capture of module output")
    dec.add_argument(
        "--raw",
        action="store_true",
        help="FILE is raw bytes read from the module (no host records): prefixed lines are URCs, "
        "final results appear as 'final' events",
    )
    dec.add_argument(
        "--reveal",
        action="store_true",
        help="show what decode hides as ***: DeviceSecrets and tokens in registration replies, secrets read back",
    )
    dec.set_defaults(func=_cmd_decode)


def _add_emulate(sub: Any) -> None:
    from quecmqtt.cli.common import imei, not_negative
    from quecmqtt.emulator.families import PROFILES

    emu = sub.add_parser(
        "emulate",
        help="run an emulated Quectel module on a pseudo-terminal",
        description=(
            "Serve an emulated Quectel module on a pseudo-terminal until Ctrl-C. It answers AT commands "
            "like the chosen model and makes real TCP/TLS/MQTT/HTTP connections for QMTOPEN and QHTTP*. "
            "Open the printed device path with any serial program or with quecmqtt. Faults are injected "
            "through the control socket with 'quecmqtt fault'."
        ),
        epilog=(
            "Example: quecmqtt emulate --model EC200U --link /tmp/ttyQUEC0 "
            "--hosts iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com=127.0.0.1:1883"
        ),
    )
    emu.add_argument("--model", choices=sorted(PROFILES), default="EC200U", help="model profile (default EC200U)")
    emu.add_argument(
        "--profile",
        metavar="FILE",
        help="a profile file instead of --model: what 'quecmqtt doctor' learned from a real module",
    )
    emu.add_argument(
        "--host-port",
        choices=("usbat", "usbmodem", "uart1", "uart2"),
        help="which module port the pty stands for (default: the one the module sends URCs to at start); "
        "URCs go to the module's URC port only",
    )
    emu.add_argument(
        "--urc-port",
        choices=("usbat", "usbmodem", "uart1", "uart2", "all"),
        help="the URC port the module has in NV at start (default: the profile's factory value)",
    )
    emu.add_argument(
        "--hosts",
        nargs="+",
        default=[],
        metavar="MAP",
        help="map host names to loopback: NAME=ADDR:PORT maps every port of NAME; NAME:ORIGPORT=ADDR:PORT "
        "maps one port only (e.g. broker:8883=127.0.0.1:18883 for its TLS port). Names not mapped fail "
        "like a DNS error; IP addresses are used as they are",
    )
    emu.add_argument("--link", help="stable path of the device, a symlink to the pty (default: a temporary one)")
    emu.add_argument(
        "--echo", choices=("on", "off"), default="on", help="command echo at start (a module's default is on)"
    )
    emu.add_argument("--rtt", type=not_negative, default=0.0, metavar="SECONDS", help="network round-trip time to add")
    emu.add_argument("--sim-pin", metavar="PIN", help="the SIM asks for this PIN (default: no PIN)")
    emu.add_argument("--no-pdp", action="store_true", help="start with no PDP context active (AT+QIACT needed)")
    emu.add_argument("--boot", action="store_true", help="print RDY and the boot URCs at start")
    emu.add_argument("--imei", type=imei, help="the IMEI to report (default: the model profile's)")
    emu.add_argument("--control", metavar="SOCKET", help="control socket path (default: DEVICE.control)")
    emu.set_defaults(func=_cmd_emulate)


def _add_fault(sub: Any) -> None:
    from quecmqtt.emulator.control import FAULTS

    fault = sub.add_parser(
        "fault",
        help="inject a fault into a running 'quecmqtt emulate'",
        description="Inject a fault into a running emulator through its control socket. Faults:\n"
        + "\n".join(f"  {name:15} {help_text}" for name, (_, _, help_text) in FAULTS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: quecmqtt fault --control /tmp/ttyQUEC0.control drop-link 0 2",
    )
    fault.add_argument("--control", required=True, metavar="SOCKET", help="the socket 'quecmqtt emulate' printed")
    fault.add_argument("fault", choices=sorted(FAULTS), metavar="FAULT", help="one of: " + ", ".join(FAULTS))
    fault.add_argument("args", nargs="*", help="the fault's arguments (see above)")
    fault.set_defaults(func=_cmd_fault)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. With `argv`, only the command it names is built in full (the others are
    listed by name and help); without, every command is (for tests and docs)."""
    import importlib

    parser = Parser(
        prog="quecmqtt",
        description="Drive Quectel cellular modules over AT: MQTT, HTTP(S), Aliyun IoT, transcripts.",
        epilog="Exit status: 0 success, 1 a failure, 2 a command line that cannot work, 130 interrupted.",
    )
    from quecmqtt import __version__

    parser.add_argument("--version", action="version", version=f"quecmqtt {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-v", "--verbose", dest="log_verbose", action="store_true",
        help="a live AT trace on stderr (secrets redacted), the library's log, whole error messages",
    )  # fmt: skip
    loud.add_argument("-q", "--quiet", dest="log_quiet", action="store_true", help="only errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((word for word in argv if not word.startswith("-")), None) if argv is not None else None
    wanted_adder = COMMANDS[wanted][:2] if wanted in COMMANDS else None
    built: set[tuple[str, str]] = set()
    for name, (module, function, help_text) in COMMANDS.items():
        if argv is None or (module, function) == wanted_adder:
            if (module, function) not in built:  # one adder may add several commands (record, replay)
                built.add((module, function))
                getattr(importlib.import_module(module), function)(sub)
        else:
            sub.add_parser(name, help=help_text)  # listed; built in full when it runs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    from quecmqtt.cli.defaults import ConfigError, apply_defaults, config_path, load_config

    fills: dict[str, list[Any]] = {}
    try:  # defaults from QUECMQTT_* and the config file, for the command named only
        fills = apply_defaults(parser, words, load_config(config_path()))
    except ConfigError as exc:
        if not {"-h", "--help", "--version"} & set(words):  # help works with a broken config file
            print(f"quecmqtt: {exc}", file=sys.stderr)
            return 2
    args, extra = parser.parse_known_args(words)
    for dest, values in fills.items():  # a repeatable option: the command line's replace the file's
        if not getattr(args, dest, None):
            setattr(args, dest, values)
    if extra:  # named by the command they were given to, not by `quecmqtt`
        prog = getattr(args, "command_prog", parser.prog)
        print(f"{prog}: unrecognized arguments: {' '.join(extra)} (see '{prog} --help')", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.log_verbose or args.log_quiet or args.command not in LIGHT:
        from quecmqtt.cli.common import configure_output

        configure_output(verbose=args.log_verbose, quiet=args.log_quiet)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:  # Ctrl-C where a command had no handler of its own (a prompt)
        print(file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
