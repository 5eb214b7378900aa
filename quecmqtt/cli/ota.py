"""`quecmqtt aliyun ota`: report the running version, take the platform's upgrade task, and
download the firmware through the module's own HTTP(S) client into a directory (resumed if a
partial download of the same task is there), verified against the task's digest."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quecmqtt.cli.common import Output, UsageError, emit, note, open_modem, positive, read_file, run, seconds

NO_TASK = 3  # not a failure, and not a download either: a cron job tells them apart

EPILOG = """\
Examples:
  quecmqtt aliyun ota --port /dev/ttyUSB2 --product-key PK --device-name DN --device-secret-env DS \\
      --endpoint iot-xxxx.mqtt.iothub.aliyuncs.com --version 1.0.0 --directory /var/lib/app/ota
  (exit 0: downloaded and verified, or already at the offered version; 3: no task within --wait;
  1: the download failed, reported to the platform as -2 download or -3 verification failed)
"""


def add_ota_parser(commands: Any, login_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """`login_options`: the device, secret, signing and TLS options `aliyun connect` takes."""
    ota = commands.add_parser(
        "ota",
        help="report the version, take the upgrade task, download and verify the firmware through the module",
        description=(
            "Log in, report --version on /ota/device/inform, ask for a pending task (thing/ota/firmware/get) and "
            "wait up to --wait seconds for one to be pushed, then download the firmware with the module's HTTP(S) "
            "client in byte ranges (Range header, request-header mode) into --directory. What has arrived is kept "
            "there: run again after a drop and it resumes. The file is checked against the task's MD5 or SHA256; "
            "progress and failures are reported to the platform. The file is left as DIRECTORY/VERSION.bin: "
            "flashing it is the application's job."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login_options(ota)
    ota.add_argument("--version", required=True, metavar="V", help="the version running now (reported first)")
    ota.add_argument("--directory", "-d", default="ota", metavar="DIR", help="where the firmware goes (default ./ota)")
    ota.add_argument(
        "--wait", type=seconds, default=60.0, metavar="SECONDS", help="how long to wait for a task (default 60)"
    )
    ota.add_argument(
        "--download-ca", metavar="FILE", help="CA for the HTTPS download (default: --ca, else the shipped roots)"
    )
    ota.add_argument(
        "--http-ssl-context", type=int, default=1, metavar="N", help="SSL context of the download (default 1)"
    )
    ota.add_argument(
        "--chunk", type=positive, default=32 * 1024, metavar="BYTES", help="bytes per range (default 32768)"
    )
    ota.set_defaults(func=lambda args: run("aliyun ota", lambda: _ota(args)))


class Bar:
    """Progress on standard error: a bar redrawn in place on a terminal, a line per 10 %
    otherwise (a log keeps ten lines, not a thousand); nothing with -q."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty() and not Output.quiet and not Output.verbose
        self.shown = -1

    def __call__(self, received: int, size: int) -> None:
        percent = received * 100 // size
        if self.live:
            filled = percent // 4
            print(f"\r[{'#' * filled}{'.' * (25 - filled)}] {percent:3d}% {received}/{size} bytes", end="",
                  file=sys.stderr, flush=True)  # fmt: skip
            if received == size:
                print(file=sys.stderr, flush=True)
        elif percent // 10 > self.shown:
            self.shown = percent // 10
            note(f"{percent}% ({received} of {size} bytes)")


async def _ota(args: argparse.Namespace) -> int:
    import asyncio

    from quecmqtt.aliyun.alink import Thing
    from quecmqtt.aliyun.device import shipped_roots
    from quecmqtt.aliyun.ota import Ota
    from quecmqtt.cli.aliyun import _aliauth_cleared, _device_secret, _logged_in
    from quecmqtt.errors import CommandTimeout
    from quecmqtt.services.http import Http, HttpConfig
    from quecmqtt.services.tls import Tls

    secret = await _device_secret(args)  # every argument checked before anything is made on disk
    ca_file = args.download_ca or args.ca
    download_ca = await read_file(ca_file, "the download's CA") if ca_file else shipped_roots()
    directory = Path(args.directory)
    try:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--directory {directory}: {exc.strerror or exc}") from None
    async with (
        open_modem(args) as modem,
        _aliauth_cleared(args, modem),
        _logged_in(args, modem, secret) as client,
        Thing(client, args.product_key, args.device_name) as thing,
        Http(modem, HttpConfig(ssl_context=args.http_ssl_context)) as http,
        Ota(thing, http, directory, chunk_size=args.chunk, on_progress=Bar()) as ota,
    ):
        await thing.report_version(args.version)
        try:
            task = await ota.request()
        except CommandTimeout:
            raise  # the module did not answer: not the platform's silence
        except TimeoutError:
            task = None
            note("the platform did not answer thing/ota/firmware/get in 10 s")
        except ValueError as exc:  # a task this device cannot take; a push may bring another
            task = None
            note(f"the pending task cannot be used: {exc}")
        if task is None:
            note(f"reported {args.version}; waiting up to {args.wait:g} s for an upgrade task")
            try:
                task = await ota.next_task(timeout=args.wait)
            except TimeoutError:
                emit(args, {"task": None}, f"no upgrade task for {args.version} within {args.wait:g} s")
                return NO_TASK
        if task.version == args.version:
            emit(args, {"task": task.version, "downloaded": False}, f"already at {task.version}: nothing to do")
            return 0
        note(f"task: {task.version}, {task.size} bytes, {task.sign_method}")
        async with Tls(modem) as tls:  # kept up while downloading: a reboot sets it up again
            if task.url.startswith("https://"):
                host = task.url.split("/")[2].split(":")[0]
                await tls.setup(args.http_ssl_context, ca=download_ca, server_name=host)
            path = await ota.run(task)
        result = {"task": task.version, "downloaded": True, "path": str(path), "size": task.size,
                  "digest": task.sign_method, "fetched": ota.fetched}  # fmt: skip
        emit(args, result, f"{task.version}: {task.size} bytes in {path} ({task.sign_method} verified)")
    return 0
