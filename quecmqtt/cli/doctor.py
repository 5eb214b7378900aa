"""`quecmqtt doctor`: learn a module without changing it; write its profile file."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from quecmqtt.cli.common import add_port_options, open_modem, run


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


async def doctor_command(args: argparse.Namespace) -> int:
    from quecmqtt.doctor import PROBES, doctor

    if not args.record:
        args.record = args.transcript
    total = len(PROBES)
    done = 0

    def progress(key: str) -> None:
        nonlocal done
        done += 1
        if not args.json and sys.stderr.isatty():
            print(f"\r[{done}/{total}] AT{key:<24}", end="", file=sys.stderr, flush=True)

    async with open_modem(args, init_script=False, reconcile=False) as modem:
        report = await doctor(modem, progress=progress)
    if not args.json and sys.stderr.isatty():
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)
    profile = report.profile(keep_imei=args.keep_imei)
    await asyncio.to_thread(_write_private, args.profile_out, profile.to_json())
    data: dict[str, Any] = report.as_dict() | {"profile": args.profile_out, "transcript": args.record}
    if args.json:
        print(json.dumps(data, ensure_ascii=False), flush=True)
    else:
        print(report.summary())
        print(
            f"\nprofile: {args.profile_out} (based on the shipped {profile.based_on} profile for what no answer shows)"
        )
        print(f"transcript: {args.record}")
        print(f"try it: quecmqtt emulate --profile {args.profile_out}")
    return 0


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "doctor",
        help="learn a module without changing it: what works, what the driver will use, a profile file",
        description=(
            "Ask the module read-only questions (identity; the =? answers of QMTCFG, QMTPUB, QMTPUBEX, QSSLCFG, "
            "QHTTPCFG, QHTTPURL; URC port; SIM, registration and PDP state; AT+QMTOPEN? and AT+QMTCONN? with "
            "their time-outs). Only test, read and identity commands are sent and no init script runs, so "
            "nothing on the module changes. Prints what works and what the driver will use, writes a redacted "
            "transcript, and writes a profile file that 'quecmqtt emulate --profile FILE' loads: your module "
            "becomes an emulator profile."
        ),
        epilog="Example: quecmqtt doctor --port /dev/ttyUSB2 --profile-out bg95.json",
    )
    add_port_options(parser)
    parser.add_argument(
        "--profile-out", default="quecmqtt-profile.json", metavar="FILE", help="where to write the profile file"
    )
    parser.add_argument(
        "--transcript",
        default="quecmqtt-doctor.txt",
        metavar="FILE",
        help="where to write the redacted transcript (default quecmqtt-doctor.txt; --record is the same)",
    )
    parser.add_argument(
        "--keep-imei",
        action="store_true",
        help="keep the module's IMEI in the profile file (default: the shipped profile's, so the file can be shared)",
    )
    parser.add_argument("--json", action="store_true", help="print the answers and findings as one JSON object")
    parser.set_defaults(func=lambda args: run("doctor", lambda: doctor_command(args)))
