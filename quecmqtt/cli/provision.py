"""`quecmqtt provision`: provision modules on a factory line: several serial ports in parallel.

For each port: identify the module (model, IMEI), check the SIM and the network (attach),
register the device with Aliyun (MQTT register/regnwl or HTTPS; the device name is taken
from the IMEI by default), store the result (mode 0600, before anything else), prove it by
logging in, and write one row per module to a report (CSV or JSON, by the file's suffix).

Resumable: a module whose device is in the store and marked provisioned in the report is
skipped, so a re-run after a power cut or a failed station only does what is left.

    quecmqtt provision /dev/ttyUSB2 /dev/ttyUSB6 ... \\
        --product-key PK --product-secret-env PS --endpoint iot-xxxx.mqtt.iothub.aliyuncs.com \\
        --store /srv/factory/secrets --report /srv/factory/report.csv
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quecmqtt.aliyun.credentials import SIGN_METHODS
from quecmqtt.aliyun.device import Product, login, login_credentials, register_https, register_mqtt
from quecmqtt.aliyun.store import SecretStore, StoreError, rescue, rescue_directories
from quecmqtt.cli.common import connect_port, positive, seconds
from quecmqtt.cli.secrets import SecretMissing, add_secret_option, resolve_secret
from quecmqtt.errors import AttachError, QuecError
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.services.network import Network
from quecmqtt.transport import open_transport

PROG = "quecmqtt provision"  # the name messages start with (tools/provision.py runs the same code)
PROVISIONED = "provisioned"
SKIPPED = "already provisioned"


@dataclass
class Row:
    port: str
    status: str = "failed"
    step: str = ""
    model: str = ""
    imei: str = ""
    device_name: str = ""
    started: str = ""  # UTC, ISO 8601: when this port's work began
    seconds: float = 0.0
    error: str = ""


class ReportError(Exception):
    """The report file exists but is not one this tool wrote."""


class Report:
    """The report file: rows by IMEI, rewritten whole after each module (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, Row] = {}
        if path.exists():
            try:
                self.rows = {r.imei or f"port:{r.port}": r for r in self._read()}
            except (ValueError, TypeError, AttributeError, csv.Error) as exc:
                # Refuse rather than overwrite it: it is the record of what was provisioned.
                raise ReportError(f"{path} is not a provisioning report ({exc}); move it away or name another") from exc

    def _read(self) -> list[Row]:
        names = {f.name for f in fields(Row)}
        if self.path.suffix == ".json":
            items = json.loads(self.path.read_text() or "[]")
            if not isinstance(items, list) or not all(isinstance(i, dict) and "port" in i for i in items):
                raise ValueError("not a list of rows with a port")
        else:
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                items = list(reader)
                if reader.fieldnames is not None and not {"port", "status", "imei"} <= set(reader.fieldnames):
                    raise ValueError("no port, status and imei columns")
        rows = []
        for item in items:
            values = {k: v for k, v in item.items() if k in names}
            values["seconds"] = float(values.get("seconds") or 0)
            rows.append(Row(**values))
        return rows

    def provisioned(self, imei: str) -> bool:
        row = self.rows.get(imei)
        return row is not None and row.status in (PROVISIONED, SKIPPED)

    def add(self, row: Row) -> None:
        key = row.imei or f"port:{row.port}"
        if row.status == SKIPPED and key in self.rows:
            return  # keep the row that records how it was provisioned
        self.rows[key] = row
        self.save()

    def save(self) -> None:
        """Write the whole report to a temporary file, on disk (fsync) before it replaces the
        old one, and the rename on disk too: after a power cut the report is the old one or
        the new one, never half of either (blocking: called in a thread)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        rows = list(self.rows.values())
        with tmp.open("w", newline="") as fh:
            if self.path.suffix == ".json":
                fh.write(json.dumps([asdict(r) for r in rows], indent=1))
            else:
                writer = csv.DictWriter(fh, [f.name for f in fields(Row)])
                writer.writeheader()
                writer.writerows(asdict(r) for r in rows)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        directory = os.open(self.path.resolve().parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


LABELS: dict[str, str] = {}


def port_labels(ports: list[str]) -> dict[str, str]:
    """Short names that still tell the ports apart: `ttyUSB2` for /dev/ttyUSB2, but
    `emu-1/ttyQUEC0` and `emu-2/ttyQUEC0` when only a parent directory differs."""
    parts = [Path(p).parts for p in ports]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(set(ports)):
            return dict(zip(ports, labels, strict=True))
    return {p: p for p in ports}


def say(port: str, text: str) -> None:
    print(f"[{LABELS.get(port, port)}] {text}", flush=True)


async def provision_one(port: str, args: argparse.Namespace, product_secret: Any, report: Report) -> Row:
    row = Row(port, started=datetime.now(UTC).isoformat(timespec="milliseconds"))
    started = time.monotonic()
    store = SecretStore(args.store)
    ca: bytes | None = args.ca_pem
    modem = Modem(open_transport(port))
    try:
        row.step = "open"
        await modem.open()
        row.step = "identify"
        network = Network(modem, apn=args.apn)
        identity = await network.identity()
        row.model, row.imei = identity.model, identity.imei
        row.device_name = args.device_name.format(imei=identity.imei, model=identity.model)
        say(port, f"{identity.manufacturer} {identity.model}, IMEI {identity.imei} -> {row.device_name}")
        stored = await asyncio.to_thread(store.load, args.product_key, row.device_name)
        if report.provisioned(identity.imei) and stored is not None:
            row.status, row.step = SKIPPED, ""
            say(port, "already provisioned: skipped")
            return row
        row.step = "network"
        attached = await network.attach(timeout=args.timeout)
        say(port, f"SIM ready, {attached.operator.technology}, {attached.signal.dbm} dBm, IP {attached.ip}")
        row.step = "register"
        product = Product(args.product_key, row.device_name, product_secret)
        if args.https:
            result: Any = await register_https(
                modem, product, region=args.region, url=args.url, store=store, ca=ca, sign_method=args.sign_method
            )
        else:
            result = await register_mqtt(
                modem, product, args.endpoint, args.mqtt_port, auth_type=args.auth_type, store=store, ca=ca,
                instance_id=args.instance_id, sign_method=args.sign_method, client_id=identity.imei,
            )  # fmt: skip
        say(port, f"registered; stored in {store.path(args.product_key, row.device_name)}")
        row.step = "login"
        async with MqttClient(modem, 0) as client:  # leaving disconnects and closes, whatever happened
            credentials = login_credentials(args.product_key, row.device_name, result)
            await login(client, args.endpoint, args.mqtt_port, credentials)
        say(port, "login proven")
        row.status, row.step = PROVISIONED, ""
    except StoreError as exc:
        kept = await asyncio.to_thread(rescue, exc, rescue_directories(args.rescue))
        where = f"kept in {kept}: move it to the store" if kept else "NOT KEPT: no directory took it"
        row.error = f"{exc.reason}; the result (shown once by the cloud) is {where}"
        say(port, f"FAILED at {row.step}: {row.error}")
    except (QuecError, AttachError, OSError) as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        say(port, f"FAILED at {row.step}: {row.error}")
    except Exception as exc:  # a bug must cost this module, not the batch
        row.error = f"unexpected {type(exc).__name__}: {exc}"
        say(port, f"FAILED at {row.step}: {row.error}")
    finally:
        row.seconds = round(time.monotonic() - started, 2)
        await modem.close()
    return row


async def main(args: argparse.Namespace) -> int:
    try:
        product_secret = resolve_secret(args, "product-secret")
    except SecretMissing as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if not args.endpoint:
        print(f"{PROG}: give --endpoint: the login that proves each registration goes there", file=sys.stderr)
        return 2
    try:
        args.ca_pem = await asyncio.to_thread(Path(args.ca).read_bytes) if args.ca else None
    except OSError as exc:
        print(f"{PROG}: cannot read the CA certificate {args.ca}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if len(set(args.ports)) != len(args.ports):
        print(f"{PROG}: a port is given twice; each module must be driven by one task", file=sys.stderr)
        return 2
    try:
        args.device_name.format(imei="864430010001091", model="EC200U")
    except Exception as exc:  # KeyError, AttributeError ({imei.x}), ValueError, IndexError
        print(f"{PROG}: --device-name {args.device_name!r}: only {{imei}} and {{model}} ({exc})", file=sys.stderr)
        return 2
    try:
        report = Report(Path(args.report))
        await asyncio.to_thread(report.save)  # a report that cannot be written is found now
    except ReportError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: cannot write the report {args.report}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    limit = asyncio.Semaphore(args.parallel)
    saving = asyncio.Lock()
    LABELS.update(port_labels(args.ports))
    print(f"provisioning {len(args.ports)} port(s), {args.parallel} at a time; report: {args.report}", flush=True)
    finished = 0

    async def guarded(port: str) -> Row:
        nonlocal finished
        async with limit:
            row = await provision_one(port, args, product_secret, report)
            try:
                async with saving:  # one writer: the report is rewritten whole each time
                    await asyncio.to_thread(report.add, row)  # the disk waits, not the other ports
            except OSError as exc:  # a full disk: keep going, the row is kept in memory and retried
                say(port, f"WARNING: the report could not be written: {exc.strerror or exc}")
            finished += 1
            say(port, f"{row.status} after {row.seconds:.1f} s ({finished}/{len(args.ports)} finished)")
            return row

    rows = await asyncio.gather(*(guarded(p) for p in args.ports))
    done = sum(r.status == PROVISIONED for r in rows)
    skipped = sum(r.status == SKIPPED for r in rows)
    failed = [r for r in rows if r.status == "failed"]
    print(f"done: {done} provisioned, {skipped} skipped, {len(failed)} failed", flush=True)
    for row in failed:
        print(f"  {row.port}: {row.step}: {row.error}", flush=True)
    try:
        await asyncio.to_thread(report.save)
    except OSError as exc:
        print(f"{PROG}: the report {args.report} could not be written: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ports", nargs="+", help="the modules' AT ports")
    parser.add_argument("--product-key", required=True, metavar="PK")
    add_secret_option(parser, "product-secret", "the ProductSecret")
    parser.add_argument(
        "--device-name", default="{imei}", help="device name template: {imei}, {model} (default {imei})"
    )
    parser.add_argument("--endpoint", metavar="HOST", help="the instance's MQTT host (required)")
    parser.add_argument("--mqtt-port", type=connect_port, default=1883, metavar="PORT")
    parser.add_argument("--auth-type", choices=("register", "regnwl"), default="register")
    parser.add_argument("--https", action="store_true", help="register over HTTPS")
    parser.add_argument("--region", default="cn-shanghai")
    parser.add_argument("--url", help="HTTPS registration URL instead of the region's")
    parser.add_argument("--instance-id")
    parser.add_argument("--sign-method", choices=sorted(SIGN_METHODS), default="hmacsha256")
    parser.add_argument("--ca", metavar="FILE", help="CA to verify the servers (default: the shipped public roots)")
    parser.add_argument("--apn")
    parser.add_argument("--store", required=True, metavar="DIR", help="where registration results are kept (0600)")
    parser.add_argument("--report", required=True, metavar="FILE", help="report.csv or report.json (kept up to date)")
    parser.add_argument("--parallel", type=positive, default=8, help="modules at a time (default 8)")
    parser.add_argument("--timeout", type=seconds, default=120.0, help="seconds to wait for the network (default 120)")


def run_provision(args: argparse.Namespace) -> int:
    # The first place for a result the store refused: beside the report.
    args.rescue = Path(args.report).resolve().parent / "rescue"
    try:
        return asyncio.run(main(args))
    except KeyboardInterrupt:  # what was stored stays stored; the report has every finished row
        print(f"{PROG}: interrupted; run it again to do what is left", file=sys.stderr)
        return 130


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "provision",
        help="provision modules on a factory line: identify, attach, register with Aliyun, prove by logging in",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_provision)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `quecmqtt provision`, parsed on its own (tools/provision.py)."""
    from quecmqtt.cli import Parser

    parser = Parser(prog="provision", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser.parse_args(argv)
