"""`quecmqtt cloud`: run the local cloud twin until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from quecmqtt.cli import cloud_console
from quecmqtt.cli.common import host_port, listen_port, stop_on_signals
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.ota import SIGN_METHODS, FirmwareStore
from quecmqtt.cloud.registry import Registry
from quecmqtt.cloud.thingmodel import PlatformModel

EPILOG = """\
Examples:
  quecmqtt cloud --product 'i2uqc2dloOl:$PS' --device 'i2uqc2dloOl:device001:@ds.txt'
  (secrets from a variable or a file: the command line is visible to every process)
  quecmqtt cloud --registry twin.json --broker 127.0.0.1:1883      # Mosquitto behind it
  quecmqtt cloud --product 'i2uqc2dloOl:$PS' --tsl i2uqc2dloOl=tsl.json --ota i2uqc2dloOl:2.0.0:fw.bin

While it runs, commands typed on standard input reach devices (help lists them):
  rrpc i2uqc2dloOl device001 ping           call i2uqc2dloOl device001 GetStatus '{"Verbose": 1}'
  set i2uqc2dloOl device001 '{"LightStatus": 1}'      desired i2uqc2dloOl device001 '{"Mode": 2}'

Then run an emulated module that reaches it by the endpoint's name:
  quecmqtt emulate --hosts <the --hosts line printed at start>
and point the module at the endpoint (default iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com, any
port). Modules verify the twin's TLS certificate with the CA file printed at start.
"""


def _secret_value(text: str, what: str) -> str:
    """A secret given as `@FILE` (its content, without a trailing newline) or `$VARIABLE`; the
    secret itself on the command line is refused: every process on the machine sees argv."""
    from quecmqtt.errors import InvalidArgument
    from quecmqtt.secret import load_secret

    if text.startswith("@"):
        try:
            secret = load_secret(file=text[1:], name="secret")
        except OSError as exc:
            raise ValueError(f"{what}: cannot read {text[1:]}: {exc.strerror or exc}") from None
        except InvalidArgument as exc:  # not text
            raise ValueError(f"{what}: {exc}") from None
    elif text.startswith("$"):
        secret = load_secret(env=text[1:], name="secret")
        if secret is None:
            raise ValueError(f"{what}: the environment variable {text[1:]} is not set")
    else:
        raise ValueError(
            f"{what}: a secret on the command line is visible to every process (ps): give @FILE or $VARIABLE "
            "(quoted, so the shell passes it as it is)"
        )
    if secret is None or not secret.reveal():
        raise ValueError(f"{what}: the secret is empty")
    return secret.reveal()  # the registry keeps it as text


def _cmd_cloud(args: argparse.Namespace) -> int:
    if args.registry:
        from quecmqtt.cli.common import UsageError, check_writable

        try:
            check_writable(args.registry, "the registry")  # kept up to date: found out now, not at the first save
        except UsageError as exc:
            print(f"quecmqtt cloud: {exc}", file=sys.stderr)
            return 2
    if not args.endpoint:
        print("quecmqtt cloud: --endpoint is empty: give the MQTT endpoint's name", file=sys.stderr)
        return 2
    try:
        registry = Registry(args.registry)
        for item in args.product:
            pk, sep, ps = item.partition(":")
            if not sep or not pk or not ps:
                raise ValueError(f"--product wants PK:$VAR or PK:@FILE, got {item.split(':')[0]!r}:...")
            ps = _secret_value(ps, f"--product {pk}")
            registry.add_product(pk, ps, dynamic_registration=not args.no_dynamic_registration)
        for item in args.device:
            parts = item.split(":", 2)
            if len(parts) < 2 or not all(parts[:2]):
                raise ValueError(f"--device wants PK:DN[:$VAR or :@FILE], got {parts[0]!r}:...")
            secret = (
                _secret_value(parts[2], f"--device {parts[0]}:{parts[1]}") if len(parts) == 3 and parts[2] else None
            )
            registry.add_device(parts[0], parts[1], secret)
        broker = tuple(args.broker) if args.broker else None
        models = {}
        for item in args.tsl:
            pk, sep, path = item.partition("=")
            if not sep or not pk or not path:
                raise ValueError(f"--tsl wants PRODUCTKEY=FILE, got {item!r}")
            models[pk] = PlatformModel.load(path)
        firmware = FirmwareStore()
        for item in args.ota:
            pk, version, path = ([*item.split(":", 2), "", ""])[:3]
            if not (pk and version and path):
                raise ValueError(f"--ota wants PK:VERSION:FILE, got {item!r}")
            if not Path(path).is_file():
                raise ValueError(f"--ota {pk}:{version}: {path} is not a file")
            try:  # read whole for its digests, before the twin serves anything
                offered = firmware.add(pk, version, path, args.ota_sign_method)
            except ValueError as exc:
                raise ValueError(f"--ota {pk}:{version}: {exc}") from None
            print(f"ota: {pk} offers {version} ({offered.size} bytes, {args.ota_sign_method})", flush=True)
    except json.JSONDecodeError as exc:
        print(f"quecmqtt cloud: {args.registry} is not a registry (a JSON file): {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"quecmqtt cloud: {exc}", file=sys.stderr)
        return 2

    async def serve() -> int:
        stop = stop_on_signals()  # before anything is printed: "Ctrl-C stops" must be true at once
        twin = CloudTwin(
            registry=registry, broker=broker, host=args.host, mqtt_port=args.mqtt_port, https_port=args.https_port,
            firmware=firmware,
        )  # fmt: skip
        twin.models.update(models)
        await twin.start()
        backend = f"{args.broker} (external)" if broker else f"embedded on {twin.host}:{twin.broker_address()[1]}"
        hosts = " ".join(f"{name}={target}" for name, target in twin.hosts(args.endpoint).items())
        with resources.as_file(resources.files("quecmqtt.cloud").joinpath("certs/ca.pem")) as ca:
            print(f"mqtt: {twin.host}:{twin.mqtt_port} (plain and TLS)", flush=True)
            print(f"https: {twin.host}:{twin.https_port} (/auth/register/device)", flush=True)
            print(f"broker: {backend}", flush=True)
            print(f"ca: {Path(ca)}", flush=True)
            print(f"--hosts {hosts}", flush=True)
        products, devices = len(registry.products), len(registry.devices)
        print(
            f"registry: {args.registry or 'in memory'} ({products} products, {devices} devices); Ctrl-C stops",
            flush=True,
        )
        console = None
        if twin.responder is not None and cloud_console.wanted():
            console = asyncio.create_task(cloud_console.serve(twin.responder))
        try:
            await stop.event.wait()
        finally:
            if console is not None:
                console.cancel()
                await asyncio.gather(console, return_exceptions=True)
            await twin.stop()
        return stop.status()

    try:
        return asyncio.run(serve())
    except OSError as exc:
        print(f"quecmqtt cloud: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def add_parser(sub: Any) -> None:
    cloud = sub.add_parser(
        "cloud",
        help="run the local Aliyun cloud twin (auth, registration, Alink replies) in front of a broker",
        description=(
            "Serve Aliyun IoT's device side on this machine: logins checked against a registry of products and "
            "devices (Aliyun's signatures and CONNACK codes), dynamic registration over MQTT (register, regnwl, "
            "TLS only) and HTTPS, connwl, the automatic subscription of Aliyun's SDKs (_ss=1), post_reply answers "
            "(checked against a thing model with --tsl), NTP, OTA tasks and ranged firmware downloads (--ota), "
            "the device shadow and RRPC, all piped to an MQTT broker (Mosquitto, or an embedded one when --broker "
            "is not given). Plain MQTT and TLS share one port."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cloud.add_argument(
        "--registry", metavar="FILE", help="products and devices, a JSON file (created; kept up to date)"
    )
    cloud.add_argument(
        "--product", action="append", default=[], metavar="PK:$VAR|PK:@FILE",
        help="add a product, its ProductSecret from a variable or a file (repeatable)",
    )  # fmt: skip
    cloud.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="PK:DN[:$VAR|:@FILE]",
        help="add a device, with its DeviceSecret from a variable or a file (repeatable)",
    )
    cloud.add_argument(
        "--no-dynamic-registration", action="store_true", help="products given here refuse dynamic registration"
    )
    cloud.add_argument(
        "--broker", type=host_port, metavar="HOST:PORT", help="the MQTT broker behind the twin (default: embedded)"
    )
    cloud.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cloud.add_argument(
        "--mqtt-port", type=listen_port, default=0, metavar="PORT", help="MQTT/TLS port (default: any free)"
    )
    cloud.add_argument(
        "--https-port", type=listen_port, default=0, metavar="PORT", help="HTTPS port (default: any free)"
    )
    cloud.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help=f"the MQTT endpoint name (default {DEFAULT_ENDPOINT})"
    )
    cloud.add_argument(
        "--tsl", action="append", default=[], metavar="PK=FILE",
        help="check the product's posts against its thing model, a console export (repeatable)",
    )  # fmt: skip
    cloud.add_argument(
        "--ota", action="append", default=[], metavar="PK:VERSION:FILE",
        help="offer firmware to the product's devices: a device reporting another version gets the task "
        "(repeatable)",
    )  # fmt: skip
    cloud.add_argument(
        "--ota-sign-method", choices=SIGN_METHODS, default="Md5",
        help="the digest the task carries, as the platform spells it (default Md5)",
    )  # fmt: skip
    cloud.set_defaults(func=_cmd_cloud)
