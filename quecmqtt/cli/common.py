"""What the subcommands share: the serial port options and opening a modem, argument types,
running a command body with one-line errors and exit statuses, reading input without holding
up Ctrl-C, JSON or text output, and step-by-step progress with timings."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

from quecmqtt.cli.secrets import SecretMissing
from quecmqtt.errors import InvalidArgument, QuecError

TYPE_CHECKING = False  # `typing` costs every start 4 ms and more: imported only by type checkers
if TYPE_CHECKING:  # the runtime is imported by the commands that open a port, not by --help
    import asyncio
    from contextlib import AbstractAsyncContextManager
    from typing import Any, TypeVar

    from quecmqtt.modem import Modem

    T = TypeVar("T")
PORT_ENV = "QUECMQTT_PORT"


class Output:
    """How much the command says on standard error: -v adds a live, redacted AT trace and the
    library's log lines; -q leaves only errors. Set once by `main`."""

    verbose = False
    quiet = False


def configure_output(*, verbose: bool, quiet: bool) -> None:
    """The library logs through `logging` (logger "quecmqtt"): here its lines get the command's
    prefix and a level, instead of Python's bare last-resort output."""
    import logging

    Output.verbose, Output.quiet = verbose, quiet
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("quecmqtt: %(levelname)s: %(message)s"))
    logger = logging.getLogger("quecmqtt")
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def ticking(label: str) -> AbstractAsyncContextManager[None]:
    """See `_ticking`."""
    from contextlib import asynccontextmanager  # contextlib at run time only: --help is faster

    return asynccontextmanager(_ticking)(label)


async def _ticking(label: str) -> AsyncIterator[None]:
    """On a terminal (not with -q or -v): `label ... N s` counting up on standard error while
    the block runs (an attach, a registration, a connect may take a minute), cleared after."""
    import asyncio

    if Output.quiet or Output.verbose or not sys.stderr.isatty():
        yield
        return
    started = time.monotonic()

    async def tick() -> None:
        while True:
            await asyncio.sleep(1)
            print(f"\r{label} ... {time.monotonic() - started:.0f} s", end="", file=sys.stderr, flush=True)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        print("\r" + " " * (len(label) + 16) + "\r", end="", file=sys.stderr, flush=True)


def note(text: str) -> None:
    """A progress line on standard error (not with -q)."""
    if not Output.quiet:
        print(text, file=sys.stderr, flush=True)


URC_PORTS = ("usbat", "usbmodem", "uart1", "uart2", "all")  # BG96 AT manual 2.25; uart2, all on EC2x


def add_port_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        default=os.environ.get(PORT_ENV),
        metavar="DEVICE",
        help=f"the module's AT port: /dev/ttyUSB2, /dev/serial/by-id/..., socket://HOST:PORT (default: ${PORT_ENV})",
    )
    parser.add_argument("--baud", type=positive, default=115200, help="baud rate (default 115200; USB ports ignore it)")
    parser.add_argument("--record", metavar="FILE", help="also write a redacted transcript of the session")
    parser.add_argument(
        "--urc-port",
        choices=URC_PORTS,
        help="set the module's URC port (AT+QURCCFG, kept in NV) to this at start-up; without it, a warning "
        "says when URCs go to another port than this one",
    )
    parser.add_argument(
        "--port-kind",
        choices=URC_PORTS[:-1],
        help="which module port --port is, when its name does not say (a USB-serial adapter on the UART: uart1)",
    )


def _whole(text: str, low: int, high: int | None, wanted: str, outside: str) -> int:
    """`text` as a whole number in [low, high]; the errors say `want <wanted>` and `outside`
    (formatted with the number)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want {wanted}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(outside.format(value))
    return value


def positive(text: str) -> int:
    """An argparse type for a count that must be at least 1."""
    return _whole(text, 1, None, "a whole number", "want 1 or more, got {}")


def listen_port(text: str) -> int:
    """An argparse type for a port to listen on: 1-65535, or 0 for any free one."""
    return _whole(text, 0, 65535, "a port number", "a port is 1-65535 (0: any free one), not {}")


def context_id(text: str) -> int:
    """An argparse type for a PDP context id: 1-16 (AT+QIACT)."""
    return _whole(text, 1, 16, "a context id 1-16", "a context id is 1-16, not {}")


def connect_port(text: str) -> int:
    """An argparse type for a port to connect to: 1-65535."""
    return _whole(text, 1, 65535, "a port number", "a port is 1-65535, not {}")


def not_negative(text: str) -> float:
    """An argparse type for a duration that may be zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"want 0 or more seconds, got {text}")
    return value


def imei(text: str) -> str:
    """An argparse type for an IMEI: 15 digits whose last is the Luhn check digit."""
    from quecmqtt.emulator.profiles import luhn_ok

    if not luhn_ok(text):
        raise argparse.ArgumentTypeError(f"an IMEI is 15 digits, the last a Luhn check digit; {text!r} is not one")
    return text


def seconds(text: str) -> float:
    """An argparse type for a time-out: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"want more than 0 seconds, got {text}")
    return value


class HostPort(namedtuple("HostPort", "host port")):
    """HOST:PORT from the command line: `host` a str, `port` an int."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def host_port(text: str) -> HostPort:
    """An argparse type for HOST:PORT (the one parser of it for every subcommand)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {text!r}")
    return HostPort(host, int(port))


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


class UsageError(Exception):
    """A command line that cannot work; printed without a traceback, exit status 2."""


def open_modem(args: argparse.Namespace, **modem_options: Any) -> AbstractAsyncContextManager[Modem]:
    """`async with open_modem(args) as modem:` the modem of --port, opened; see `_open_modem`."""
    from contextlib import asynccontextmanager  # contextlib at run time only: --help is faster

    return asynccontextmanager(_open_modem)(args, **modem_options)


async def _open_modem(args: argparse.Namespace, **modem_options: Any) -> AsyncIterator[Modem]:
    import asyncio

    from quecmqtt.errors import PortLost, TranscriptError
    from quecmqtt.modem import Modem
    from quecmqtt.transport import open_transport

    if not args.port:
        raise UsageError(f"give --port DEVICE (or set {PORT_ENV}); 'quecmqtt ports' lists candidates")
    device = not args.port.startswith(("socket://", "rfc2217://", "replay:"))
    if device:
        await asyncio.to_thread(check_serial_device, args.port)
    transcript = args.port.removeprefix("replay:")
    if args.port.startswith("replay:") and not await asyncio.to_thread(os.path.isfile, transcript):
        raise UsageError(f"{transcript}: no such transcript")
    record = getattr(args, "record", None)
    fresh_record = False
    if record:
        await asyncio.to_thread(check_writable, record, "the transcript")
        fresh_record = not await asyncio.to_thread(os.path.exists, record)
    options: dict[str, Any] = {} if args.port.startswith(("socket://", "replay:")) else {"baudrate": args.baud}
    try:
        transport = open_transport(args.port, **options)
    except TranscriptError as exc:  # --port replay:FILE with a file that is not a transcript
        raise UsageError(str(exc)) from None
    if Output.verbose:  # -v: the session as a transcript on stderr, live, secrets redacted
        from quecmqtt.transcripts.recorder import RecorderTransport

        transport = RecorderTransport(transport, sys.stderr, comments=(f"-v: the AT trace of {args.port}",))
    modem = Modem(
        transport,
        record=getattr(args, "record", None),
        urc_port=getattr(args, "urc_port", None),
        port_kind=getattr(args, "port_kind", None),
        **modem_options,
    )
    try:
        await modem.open()
    except BaseException as exc:
        if fresh_record:  # nothing was recorded: no empty transcript is left behind
            close_file = getattr(modem.transport, "close_file", None)
            if close_file is not None:
                close_file()
            import contextlib

            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.unlink, str(record))
        if isinstance(exc, PortLost) and device and "Inappropriate ioctl" in str(exc):  # ENOTTY
            raise UsageError(f"{args.port} is not a serial port") from None
        if isinstance(exc, TranscriptError):  # --port replay:FILE with a file that is not one
            raise UsageError(str(exc)) from None
        raise
    try:
        yield modem
    finally:
        await modem.close()


def check_serial_device(path: str) -> None:
    """What can be said of a device path before opening it: it exists, and it is not a
    directory or a regular file (blocking: call it in a thread)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageError(f"{path}: no such device ('quecmqtt ports' lists the serial ports)") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path} is a directory, not a serial port")
    if stat.S_ISREG(mode):
        raise UsageError(f"{path} is a regular file, not a serial port (a transcript? use --port replay:{path})")


def check_writable(path: str, what: str) -> None:
    """A file about to be written: its directory exists, and it is not a directory itself."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise UsageError(f"{what} {path} is a directory")
    if not os.path.isdir(os.path.dirname(target)):
        raise UsageError(f"cannot write {what} {path}: no directory {os.path.dirname(target)}")


def run(command: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run an async command body; errors become one line and an exit status instead of a
    traceback: 2 for a command line that cannot work, 1 for a failure, 130 for Ctrl-C.
    QUECMQTT_DEBUG=1 shows the traceback of an unexpected error."""
    import asyncio

    saved = _terminal_state()
    try:
        return asyncio.run(main())
    except (UsageError, SecretMissing, InvalidArgument) as exc:
        print(f"quecmqtt {command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`| head -1`): the end of the job, quietly; stdout points at
        # /dev/null so the interpreter's last flush finds no broken pipe either
        import contextlib

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (QuecError, OSError) as exc:  # OSError includes TimeoutError
        first, _, rest = str(exc).partition("\n")  # a replay's diff, a module's answer: with -v
        more = f"\n{rest}" if rest and Output.verbose else " (-v shows more)" if rest else ""
        print(f"quecmqtt {command}: {type(exc).__name__}: {first}{more}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("QUECMQTT_DEBUG"):
            raise
        where = "QUECMQTT_DEBUG=1 shows where"
        print(f"quecmqtt {command}: unexpected {type(exc).__name__}: {exc} ({where})", file=sys.stderr)
        return 1
    finally:
        _restore_terminal(saved)


def _terminal_state() -> Any:
    """The terminal's settings, if standard input is one: a line editor interrupted by Ctrl-C
    in its thread would otherwise leave the shell without echo."""
    try:
        import termios

        return termios.tcgetattr(sys.stdin.fileno()) if sys.stdin.isatty() else None
    except (ImportError, OSError, ValueError):
        return None


def _restore_terminal(saved: Any) -> None:
    if saved is not None:
        import contextlib
        import termios

        with contextlib.suppress(OSError, ValueError):
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


async def ask(prompt: str) -> str:
    """`input(prompt)` that does not hold up Ctrl-C. The line is read in a daemon thread: a
    thread of asyncio's executor would keep the process alive until Enter is pressed."""
    return await _in_daemon_thread(lambda: input(prompt))


async def read_stdin(what: str) -> bytes:
    """All of standard input, with a hint when it is a terminal (else it looks like a hang)."""
    if sys.stdin.isatty():
        note(f"reading {what} from standard input; end it with Ctrl-D")
    return await _in_daemon_thread(_read_all_of_stdin)


def _read_all_of_stdin() -> bytes:
    """Standard input to its end, read from the descriptor: a daemon thread blocked inside
    the buffered `sys.stdin` would hold its lock while the interpreter exits after Ctrl-C
    (Fatal Python error: _enter_buffered_busy)."""
    chunks: list[bytes] = []
    while chunk := os.read(sys.stdin.fileno(), 65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def read_file(path: str, what: str) -> bytes:
    """A file named on the command line; a missing or unreadable one is a usage error."""
    import asyncio

    try:
        from pathlib import Path

        return await asyncio.to_thread(Path(path).read_bytes)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


async def _in_daemon_thread(work: Callable[[], T]) -> T:
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = work(), None
        except BaseException as exc:  # EOFError, KeyboardInterrupt, OSError: all go to the awaiting task
            value, error = None, exc
        import contextlib

        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, value, error)

    import threading

    threading.Thread(target=target, name="quecmqtt-input", daemon=True).start()
    return await future


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        import json

        print(json.dumps(data, ensure_ascii=False, default=str), flush=True)
    else:
        print(text, flush=True)


class StopSignals:
    """For the commands that serve until stopped: `event` is set by SIGINT or SIGTERM, so they
    can clean up (links, ptys, brokers) instead of dying inside a KeyboardInterrupt; `status()`
    is then the exit status: 130 after Ctrl-C (SIGINT), 0 after SIGTERM (a stop that was asked
    for, as a service manager does)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event
        self.got: list[int] = []

    def status(self) -> int:
        import signal

        return 130 if signal.SIGINT in self.got else 0


def stop_on_signals() -> StopSignals:
    import asyncio
    import signal

    stop = StopSignals(asyncio.Event())
    loop = asyncio.get_running_loop()

    def on(sig: int) -> None:
        stop.got.append(sig)
        stop.event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on, sig)
    return stop


def duration(seconds: float) -> str:
    """`4 ms` below a second (a fast step still shows it was measured), else `1.25 s`."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class Steps:
    """Numbered steps with their timings: `await steps.run("open the port", coro)`."""

    def __init__(self, total: int, *, out: Any = None) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.out = out or sys.stdout
        self.results: list[dict[str, Any]] = []

    async def run(self, title: str, step: Awaitable[T], detail: Callable[[T], str] | None = None) -> T:
        self.done += 1
        prefix = f"[{self.done:>2}/{self.total}] {title}"
        print(f"{prefix} ...", end="", flush=True, file=self.out)
        begin = time.monotonic()
        try:
            value = await step
        except BaseException as exc:
            seconds = time.monotonic() - begin
            print(f" FAILED after {duration(seconds)}\n        {type(exc).__name__}: {exc}", flush=True, file=self.out)
            self.results.append({"step": title, "ok": False, "seconds": round(seconds, 3), "error": str(exc)})
            raise
        seconds = time.monotonic() - begin
        note = f"  {detail(value)}" if detail is not None else ""
        print(f" ok ({duration(seconds)}){note}", flush=True, file=self.out)
        self.results.append({"step": title, "ok": True, "seconds": round(seconds, 3)})
        return value

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
