"""`quecmqtt info` and `quecmqtt attach`: the module's state, and getting it online."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from quecmqtt.cli.common import (
    UsageError,
    add_json_option,
    add_port_options,
    context_id,
    emit,
    open_modem,
    run,
    seconds,
    ticking,
)
from quecmqtt.cli.secrets import add_secret_option, given, resolve_secret


async def info(args: argparse.Namespace) -> int:
    from quecmqtt.errors import CommandError
    from quecmqtt.services.network import Network

    # read-only: no init script (no ATE0, no AT+CMEE), no reconciliation: nothing changes
    async with open_modem(args, init_script=False, reconcile=False) as modem:
        network = Network(modem)
        identity = await network.identity()
        sim = await network.sim_state()
        data: dict[str, Any] = {"identity": dataclasses.asdict(identity), "sim": sim}
        lines = [
            f"module:       {identity.manufacturer} {identity.model}, firmware {identity.revision}",
            f"IMEI:         {identity.imei}",
            f"SIM:          {sim}",
        ]
        try:
            signal = await network.signal()
            registration = await network.registration()
            operator = await network.operator()
            contexts = await network.contexts()
        except CommandError as exc:  # no SIM: the rest cannot be asked
            data["error"] = exc.final.text
            lines.append(f"network:      not available ({exc.final.text})")
        else:
            data |= {
                "signal": dataclasses.asdict(signal),
                "registration": {"registered": registration.registered, "state": registration.describe()},
                "operator": dataclasses.asdict(operator),
                "pdp": [dataclasses.asdict(c) for c in contexts],
            }
            active = [f"{c.cid}: {', '.join(c.addresses) or 'active'}" for c in contexts if c.active]
            lines += [
                f"signal:       {signal.dbm} dBm (rssi {signal.rssi})" if signal.dbm is not None else "signal: unknown",
                f"registration: {registration.describe()}",
                f"operator:     {operator.name or '-'} ({operator.technology})",
                f"PDP:          {'; '.join(active) if active else 'no active context'}",
            ]
        emit(args, data, "\n".join(lines))
    return 0


async def attach(args: argparse.Namespace) -> int:
    from quecmqtt.errors import AttachError
    from quecmqtt.services.network import Network

    pin = resolve_secret(args, "pin", prompt=False) if given(args, "pin") else None
    if pin is not None and not (pin.reveal().isdigit() and 4 <= len(pin.reveal()) <= 8):
        raise UsageError("a SIM PIN is 4 to 8 digits")  # (not the PIN itself: it stays out of messages)
    password = resolve_secret(args, "apn-password", prompt=False) if given(args, "apn-password") else None
    async with open_modem(args) as modem:
        network = Network(modem, cid=args.cid, apn=args.apn, username=args.apn_user, password=password, pin=pin)
        if not args.json:
            print(f"attaching (SIM, registration, PDP context {args.cid}; up to {args.timeout:g} s) ...", flush=True)
        try:
            async with ticking("attaching"):
                attached = await network.attach(timeout=args.timeout)
        except AttachError as exc:
            emit(
                args,
                {"ok": False, "step": exc.step, "error": str(exc)},
                f"attach failed at step '{exc.step}': {exc}",
            )
            return 1
        emit(
            args,
            {"ok": True, "ip": attached.ip, "cid": attached.cid, "seconds": round(attached.seconds, 2),
             "operator": attached.operator.name, "technology": attached.operator.technology,
             "dbm": attached.signal.dbm},
            f"attached in {attached.seconds:.1f} s: {attached.operator.name or '-'} {attached.operator.technology}, "
            f"{attached.signal.dbm} dBm, context {attached.cid} has {attached.ip}",
        )  # fmt: skip
    return 0


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser(
        "info",
        help="the module at a glance: identity, SIM, signal, registration, operator, PDP",
        description="Ask the module who it is and how it is connected. Nothing is changed.",
        epilog="Example: quecmqtt info --port /dev/ttyUSB2 --json",
    )
    add_port_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=lambda args: run("info", lambda: info(args)))

    parser = sub.add_parser(
        "attach",
        help="get online: SIM ready, registered, PDP context active (says which step failed)",
        description=(
            "Wait for the SIM (entering the PIN if asked), network registration and the PDP context, within one "
            "time-out. A failure names the step (sim, registration, pdp-config, pdp-activate) and what the module "
            "answered."
        ),
        epilog="Example: quecmqtt attach --port /dev/ttyUSB2 --apn cmnet --pin-env SIM_PIN",
    )
    add_port_options(parser)
    add_json_option(parser)
    parser.add_argument("--apn", help="access point name (default: the module's setting)")
    parser.add_argument("--apn-user", metavar="USER", help="APN user name")
    add_secret_option(parser, "apn-password", "the APN password", missing="none is used")
    add_secret_option(parser, "pin", "the SIM PIN", missing="none is sent (a SIM that wants one fails at 'sim')")
    parser.add_argument("--cid", type=context_id, default=1, help="PDP context id, 1-16 (default 1)")
    parser.add_argument("--timeout", type=seconds, default=120.0, help="seconds for the whole attach (default 120)")
    parser.set_defaults(func=lambda args: run("attach", lambda: attach(args)))
