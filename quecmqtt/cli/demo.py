"""`quecmqtt demo`: the whole stack on this machine, with no hardware and no system packages:
the cloud twin on its embedded broker, an emulated module on a pseudo-terminal, and the real
driver doing what a device does on its first day."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from quecmqtt.cli.common import Steps, host_port

DEMO_PK, DEMO_DN, DEMO_PS = "i2uqZnX9tZK", "meter001", "xTzMxVmm9HUY19Pr"  # the seed's 4.2.1 product
ENDPOINT = "iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com"


async def demo(args: argparse.Namespace) -> int:
    from quecmqtt.aliyun.alink import Thing
    from quecmqtt.aliyun.device import Product, login, login_credentials, register_mqtt
    from quecmqtt.aliyun.store import SecretStore
    from quecmqtt.cloud import CloudTwin
    from quecmqtt.emulator import EmulatorThread
    from quecmqtt.modem import Modem
    from quecmqtt.mqtt.client import MqttClient
    from quecmqtt.secret import Secret
    from quecmqtt.services.network import Network
    from quecmqtt.transport.serial import SerialTransport

    broker = tuple(args.broker) if args.broker else None
    steps = Steps(10)
    # Without --store the DeviceSecret lives in a temporary directory that goes with the demo.
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if args.store:
        store_dir = Path(args.store)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="quecmqtt-demo-")
        store_dir = Path(scratch.name)
    kept = f"kept in {store_dir}" if args.store else "in a temporary directory removed afterwards (--store keeps them)"
    print(f"quecmqtt demo: an emulated {args.model} and a local Aliyun twin; secrets {kept}", flush=True)
    twin = CloudTwin(broker=broker)
    emulator: Any = None
    modem: Modem | None = None
    try:
        await steps.run(
            "start the cloud twin", twin.start(),
            lambda _: f"MQTT+TLS on :{twin.mqtt_port}, HTTPS on :{twin.https_port}, broker "
            + (str(args.broker) if args.broker else f"embedded :{twin.broker_address()[1]}"),
        )  # fmt: skip
        twin.registry.add_product(DEMO_PK, DEMO_PS)
        twin.registry.add_device(DEMO_PK, DEMO_DN)
        emulator = await steps.run(
            "start an emulated module",
            asyncio.to_thread(EmulatorThread, model=args.model, hosts=twin.hosts(ENDPOINT)),
            lambda emu: f"{args.model} on {emu.path}",
        )
        modem = Modem(SerialTransport(emulator.path))
        await steps.run("open the AT port and synchronise", modem.open())
        network = Network(modem)
        identity = await steps.run(
            "identify the module", network.identity(), lambda i: f"{i.manufacturer} {i.model}, IMEI {i.imei}"
        )
        await steps.run(
            "wait for SIM, network and PDP context",
            network.attach(timeout=60),
            lambda a: f"{a.operator.name or 'operator'} {a.operator.technology}, {a.signal.dbm} dBm, IP {a.ip}",
        )
        product = Product(DEMO_PK, DEMO_DN, Secret(DEMO_PS, "product_secret"))
        result = await steps.run(
            "dynamic registration (register, MQTT over TLS)",
            register_mqtt(
                modem, product, ENDPOINT, 1883, store=SecretStore(store_dir), ca=twin.ca_pem, client_id=identity.imei,
                force=True,
            ),
            lambda r: "DeviceSecret received and stored (file mode 0600)",
        )  # fmt: skip
        client = MqttClient(modem, 0)
        credentials = login_credentials(DEMO_PK, DEMO_DN, result)
        await steps.run("log in with the new secret (host-signed)", login(client, ENDPOINT, 1883, credentials))
        thing = Thing(client, DEMO_PK, DEMO_DN)
        await steps.run("subscribe to replies and property sets", thing.start())
        params = {"Temp": 23.9, "Humi": 69, "mlux": 825, "LightStatus": 1}
        code = await steps.run(
            "post properties, wait for post_reply",
            thing.post_properties(params),
            lambda c: f"{json.dumps(params)} -> {c}",
        )
        if code != 200:
            raise RuntimeError(f"post_reply code {code}")
        applied: list[dict[str, Any]] = []
        thing.on_property_set(lambda p: applied.append(p))
        assert twin.responder is not None
        reply = await steps.run(
            "the cloud sets a property, the device replies",
            twin.responder.set_properties(DEMO_PK, DEMO_DN, {"LightStatus": 0}),
            lambda r: f"device applied {applied[-1] if applied else '?'}, replied {r.get('code')}",
        )
        if reply.get("code") != 200:
            raise RuntimeError(f"set_reply code {reply.get('code')}")
        await thing.close()
        await client.close()
    except Exception as exc:  # every failure is reported above its step; the demo then fails
        print(f"quecmqtt demo: failed ({type(exc).__name__})", file=sys.stderr, flush=True)
        return 1
    finally:
        if modem is not None:
            await modem.close()
        if emulator is not None:
            await asyncio.to_thread(emulator.close)
        await twin.stop()
        if scratch is not None:
            scratch.cleanup()
    print(f"all {steps.total} steps succeeded in {steps.elapsed:.2f} s", flush=True)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(demo(args))
    except KeyboardInterrupt:
        return 130


def add_parser(sub: Any) -> None:
    from quecmqtt.emulator.families import PROFILES

    parser = sub.add_parser(
        "demo",
        help="the whole stack on this machine: cloud twin, emulated module, registration, login, property post",
        description=(
            "Start the local Aliyun cloud twin (on its embedded broker unless --broker is given) and an emulated "
            "module on a pseudo-terminal, then drive the module with the real driver: attach, dynamic registration "
            "over MQTT+TLS, login with the new DeviceSecret, subscribe, an Alink property post and its reply, and a "
            "property set from the cloud. Each step prints its timing; the exit status is 0 only if all succeed."
        ),
    )
    parser.add_argument("--model", choices=sorted(PROFILES), default="EC200U", help="emulated model (default EC200U)")
    parser.add_argument(
        "--broker", type=host_port, metavar="HOST:PORT", help="a broker for the twin (default: its embedded one)"
    )
    parser.add_argument("--store", metavar="DIR", help="where the registration result is stored (default: a temp dir)")
    parser.set_defaults(func=_cmd_demo)
