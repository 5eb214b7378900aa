"""`quecmqtt mqtt pub` and `quecmqtt mqtt sub`: the module's MQTT client from the shell."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from quecmqtt.cli.common import (
    add_json_option,
    add_port_options,
    host_port,
    open_modem,
    positive,
    read_file,
    read_stdin,
    run,
)
from quecmqtt.cli.secrets import add_secret_option, given, resolve_secret
from quecmqtt.errors import LinkLost, QuecError


class SubscriptionEnded(QuecError):
    """The link went while `mqtt sub` waited for messages."""


async def _connected(args: argparse.Namespace, modem: Any) -> Any:
    from quecmqtt.aliyun.device import shipped_roots
    from quecmqtt.mqtt.client import MqttClient
    from quecmqtt.mqtt.config import MqttConfig
    from quecmqtt.tls import Tls

    host, port = args.broker
    if not args.client_id:
        args.client_id = f"quecmqtt-{os.urandom(4).hex()}"
    ssl_context: int | bool = False
    if args.tls or args.ca or args.insecure:
        if args.insecure:
            print("warning: --insecure: the broker's certificate is not checked", file=sys.stderr, flush=True)
            await Tls(modem).setup(args.ssl_context, seclevel=0, server_name=host)
        else:
            ca = await read_file(args.ca, "the CA certificate") if args.ca else shipped_roots()
            await Tls(modem).setup(args.ssl_context, ca=ca, server_name=host)  # seclevel 1: verified
        ssl_context = args.ssl_context
    client = MqttClient(modem, args.index, MqttConfig(ssl_context=ssl_context, keepalive=args.keepalive))
    password = resolve_secret(args, "password", prompt=False) if given(args, "password") else None
    if not args.json:
        print(f"connecting to {host}:{port} as {args.client_id} ...", file=sys.stderr, flush=True)
    await client.open(host, port)
    await client.connect(args.client_id, args.username, password)
    return client


async def pub(args: argparse.Namespace) -> int:
    from asyncio import gather

    if args.file:
        payload = await read_file(args.file, "the message")
    elif args.message is not None:
        payload = args.message.encode()
    else:
        payload = await read_stdin("the message")
    async with open_modem(args) as modem:
        client = await _connected(args, modem)
        started = time.monotonic()
        handles = [await client.publish_nowait(args.topic, payload, args.qos, args.retain) for _ in range(args.count)]
        await gather(*(h.result() for h in handles))
        seconds = time.monotonic() - started
        report = {"topic": args.topic, "messages": args.count, "bytes": len(payload), "qos": args.qos,
                  "seconds": round(seconds, 3)}  # fmt: skip
        if args.json:
            import json

            print(json.dumps(report))
        else:
            print(f"published {args.count} x {len(payload)} bytes to {args.topic} (QoS {args.qos}) in {seconds:.2f} s")
        await client.disconnect()
        await client.close()
    return 0


async def sub(args: argparse.Namespace) -> int:
    from quecmqtt.at.events import MqttMessage

    async with open_modem(args) as modem:
        client = await _connected(args, modem)
        received = 0
        try:
            # The link can go (+QMTSTAT, a reboot, the port unplugged), even in answer to the
            # SUBSCRIBE: then say so and fail rather than wait for messages that cannot come.
            granted = await client.subscribe([(t, args.qos) for t in args.topic])
            for g in granted:
                note = "REFUSED by the broker" if g.rejected else f"QoS {g.qos}"
                print(f"subscribed to {g.topic}: {note}", file=sys.stderr, flush=True)
            async for message in client.messages:  # what arrived before a loss, then LinkLost
                if not isinstance(message, MqttMessage):
                    print(f"(dropped {message.dropped} messages: the queue was full)", file=sys.stderr, flush=True)
                    continue
                received += 1
                _print_message(args, message)
                if args.count and received >= args.count:
                    break
        except LinkLost as exc:
            raise SubscriptionEnded(
                f"the connection to {args.broker} was lost ({exc.reason}) after {received} messages"
            ) from None
        await client.close()
    return 0


def _print_message(args: argparse.Namespace, message: Any) -> None:
    if args.json:
        import json

        try:
            text: Any = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        print(json.dumps({"topic": message.topic, "payload": text, "payload_hex": message.payload.hex(),
                          "client": message.client}), flush=True)  # fmt: skip
    else:
        print(f"{message.topic} {message.payload.decode('utf-8', errors='replace')}", flush=True)


def _common(parser: argparse.ArgumentParser) -> None:
    add_port_options(parser)
    add_json_option(parser)
    parser.add_argument(
        "--broker", type=host_port, required=True, metavar="HOST:PORT", help="the broker, as the module resolves it"
    )
    parser.add_argument(
        "--client-id",
        metavar="ID",
        help="MQTT client id (default: quecmqtt- and 8 random hex digits, so two devices never collide)",
    )
    parser.add_argument("--username", metavar="USER")
    add_secret_option(parser, "password", "the MQTT password", missing="none is sent")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, the broker's certificate checked against the shipped public roots (or --ca)",
    )
    parser.add_argument("--ca", metavar="FILE", help="CA certificate to verify the broker (implies --tls)")
    parser.add_argument(
        "--insecure", action="store_true", help="TLS without checking the broker's certificate (implies --tls; warns)"
    )
    parser.add_argument("--ssl-context", type=int, default=2, help="SSL context index (default 2)")
    parser.add_argument("--index", type=int, default=0, help="the module's MQTT client index 0-5 (default 0)")
    parser.add_argument("--keepalive", type=int, default=120, help="seconds (default 120)")
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1, help="QoS (default 1)")


def add_parser(sub_parsers: Any) -> None:
    mqtt = sub_parsers.add_parser("mqtt", help="publish or subscribe with the module's MQTT client")
    commands = mqtt.add_subparsers(dest="mqtt_command", metavar="COMMAND")
    p = commands.add_parser(
        "pub",
        help="publish a message (from --message, --file or standard input)",
        description="Open, connect, publish (COUNT times, pipelined), disconnect. Payloads are binary-safe.",
        epilog="Example: quecmqtt mqtt pub --port /dev/ttyUSB2 --broker broker.emqx.io:1883 --topic t --message hi",
    )
    _common(p)
    p.add_argument("--topic", required=True)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--message", "-m", help="the payload as text")
    source.add_argument("--file", metavar="PATH", help="the payload from a file")
    p.add_argument("--retain", action="store_true")
    p.add_argument("--count", type=positive, default=1, help="publish this many times (default 1)")
    p.set_defaults(func=lambda args: run("mqtt pub", lambda: pub(args)))
    s = commands.add_parser(
        "sub",
        help="subscribe and print messages (until Ctrl-C or --count)",
        description="Open, connect, subscribe, print each message as 'topic payload' (or JSON with --json).",
        epilog="Example: quecmqtt mqtt sub --port /dev/ttyUSB2 --broker broker.emqx.io:1883 --topic 'cmd/#' --count 1",
    )
    _common(s)
    s.add_argument("--topic", required=True, action="append", help="a topic filter (repeatable)")
    s.add_argument("--count", type=positive, help="stop after this many messages (default: never)")
    s.set_defaults(func=lambda args: run("mqtt sub", lambda: sub(args)))
    mqtt.set_defaults(func=lambda args: (mqtt.print_help(), 2)[1])
