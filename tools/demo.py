#!/usr/bin/env python3
"""Replay the seed document's module sessions through the real runtime, step by step.

Each session in fixtures/seed/ is played by the replay transport as if it were the
module; the driver side is the same code a program on a gateway runs (quecmqtt.modem and
the command table). Every command is printed with its result and timing; the exit status
is 0 only if every session replays exactly.

Until the module emulator and the local Aliyun twin exist (issues 3 and 6), this is the
demo that needs no hardware: the sessions are the ones recorded on real modules.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quecmqtt.at.spec import Command  # noqa: E402
from quecmqtt.modem import Modem, Reply  # noqa: E402
from quecmqtt.secret import Secret  # noqa: E402
from quecmqtt.transport import ReplayTransport  # noqa: E402
from tests.seed_flows import FLOWS  # noqa: E402

TITLES = {
    "4.1.1-aliauth.txt": "4.1.1 one device, one secret: the module signs (aliauth)",
    "4.1.2-host-signed.txt": "4.1.2 one device, one secret: host-signed clientId/username/password",
    "4.1.3-topic.txt": "4.1.3 subscribe, publish an Alink property post, receive post_reply",
    "4.1.3-topic-echo.txt": "4.1.3 the same session with the module's echo on",
    "4.2.1-register.txt": "4.2.1 one product, one secret: register over MQTT+TLS, then log in",
    "4.2.2-regnwl-connwl.txt": "4.2.2 one product, one secret without pre-registration: regnwl, then connwl",
    "4.2.3-https-register.txt": "4.2.3 dynamic registration over HTTPS with the module's HTTP client",
}


class PrintingModem(Modem):
    """A Modem that prints each command it runs, with its outcome and duration."""

    steps = 0

    async def execute(self, command: Command, data: bytes | Secret | None = None, **options: Any) -> Reply:
        start = time.perf_counter()
        reply = await super().execute(command, data, **options)
        elapsed = (time.perf_counter() - start) * 1000
        outcome = reply.final.text
        if reply.result is not None:
            outcome += f", then {reply.result.text}"
        if reply.body is not None:
            outcome += f", body {len(reply.body)} bytes"
        extra = f" + {len(data)} bytes of data" if data is not None else ""
        print(f"   {command.redacted}{extra}\n      -> {outcome}  ({elapsed:.1f} ms)")
        PrintingModem.steps += 1
        return reply


async def main() -> int:
    failed = []
    started = time.perf_counter()
    for name, flow in FLOWS.items():
        print(f"\n== {TITLES.get(name, name)}  [fixtures/seed/{name}]")
        transport = ReplayTransport(str(ROOT / "fixtures" / "seed" / name))
        try:
            async with PrintingModem(transport, init_script=False, reconcile=False) as modem:
                await flow(modem)
            transport.assert_complete()
            print("   replayed exactly")
        except Exception as exc:  # report every session, then fail
            print(f"   FAILED: {exc}")
            failed.append(name)
    total = (time.perf_counter() - started) * 1000
    print(f"\n{len(FLOWS) - len(failed)}/{len(FLOWS)} sessions, {PrintingModem.steps} commands, {total:.0f} ms")
    print("Secrets appear as *** above: the runtime redacts them in every log, error and recording.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
