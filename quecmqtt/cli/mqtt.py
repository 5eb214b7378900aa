"""`quecmqtt mqtt pub` and `quecmqtt mqtt sub`: the module's MQTT client from the shell."""

from __future__ import annotations

import argparse
import sys
import time

from quecmqtt.cli.common import (
    UsageError,
    add_json_option,
    add_port_options,
    host_port,
    note,
    open_modem,
    positive,
    read_file,
    read_stdin,
    run,
    seconds,
    ticking,
)
from quecmqtt.cli.secrets import add_secret_option, given, resolve_secret
from quecmqtt.errors import LinkLost, QuecError

TYPE_CHECKING = False  # `typing` costs every start 4 ms and more: imported only by type checkers
if TYPE_CHECKING:
    from typing import Any


class SubscriptionEnded(QuecError):
    """The link went while `mqtt sub` waited for messages."""


def _check(args: argparse.Namespace, *, publish_to: str | None = None, filters: list[str] | None = None) -> None:
    """Everything the command line can get wrong, checked before the port is opened, with the
    command table's own validators (nothing is sent): topics, client id, index, keep-alive,
    SSL context."""
    from quecmqtt.at import commands as C
    from quecmqtt.errors import InvalidArgument
    from quecmqtt.mqtt.publish import check_topic_filter, check_topic_name

    if args.client_id == "":
        raise UsageError("the client id is empty: leave --client-id out for a random one")
    if not args.client_id:
        from quecmqtt.mqtt.opener import random_client_id

        args.client_id = random_client_id()
    try:
        C.QMTCFG["keepalive"](args.index, args.keepalive)
        C.QMTCFG["ssl"](args.index, 1, args.ssl_context)
        C.QMTCONN(args.index, args.client_id, args.username or "u", "p")
        if publish_to is not None:
            check_topic_name(publish_to)
            C.QMTPUBEX(args.index, 1, args.qos, 0, publish_to, 1)
        for topic in filters or []:
            check_topic_filter(topic)
            C.QMTSUB(args.index, 1, topic, args.qos)
    except InvalidArgument as exc:
        raise UsageError(_in_user_terms(str(exc))) from None


def _in_user_terms(message: str) -> str:
    """The command table names AT arguments (`QMTCFG: seconds=70000 is above 3600`); say which
    option it was, without the command's name."""
    import re

    message = re.sub(r"^(AT\+)?Q[A-Z]+: ", "", message)
    for internal, option in (
        ("seconds=", "--keepalive "), ("ctx=", "--ssl-context "), ("client_idx=", "--index "),
        ("client=", "--index "), ("index=", "--index "),
    ):  # fmt: skip
        if internal in message:
            return option + message.split(internal, 1)[1]
    return message


async def _prepared(args: argparse.Namespace) -> None:
    """Files and secrets the command needs, read before the port is opened."""
    from quecmqtt.aliyun.device import shipped_roots

    args.password_secret = resolve_secret(args, "password", prompt=False) if given(args, "password") else None
    args.ca_pem = None
    if args.tls or args.ca or args.insecure:
        args.ca_pem = await read_file(args.ca, "the CA certificate") if args.ca else shipped_roots()


async def _connect(args: argparse.Namespace, client: Any) -> None:
    from quecmqtt.services.tls import Tls

    host, port = args.broker
    if args.ca_pem is not None:
        if args.insecure:
            print("warning: --insecure: the broker's certificate is not checked", file=sys.stderr, flush=True)
            await Tls(client.modem).setup(args.ssl_context, seclevel=0, server_name=host)
        else:
            await Tls(client.modem).setup(args.ssl_context, ca=args.ca_pem, server_name=host)  # verified
    if not args.json:
        note(f"connecting to {host}:{port} as {args.client_id} ...")
    async with ticking(f"connecting to {host}:{port}"):
        await client.open(host, port)
        await client.connect(args.client_id, args.username, args.password_secret)


def _client(args: argparse.Namespace, modem: Any) -> Any:
    from quecmqtt.mqtt.client import MqttClient
    from quecmqtt.mqtt.config import MqttConfig

    ssl_context = args.ssl_context if args.ca_pem is not None else False
    return MqttClient(modem, args.index, MqttConfig(ssl_context=ssl_context, keepalive=args.keepalive))


async def pub(args: argparse.Namespace) -> int:
    from asyncio import gather

    _check(args, publish_to=args.topic)
    await _prepared(args)
    if args.file:
        payload = await read_file(args.file, "the message")
    elif args.message is not None:
        payload = args.message.encode()
    else:
        payload = await read_stdin("the message")
    # leaving the client's block disconnects and closes it on the module, whatever happened
    # after the connect (a refused publish, Ctrl-C): no client is left connected
    async with open_modem(args) as modem, _client(args, modem) as client:
        await _connect(args, client)
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
    return 0


async def sub(args: argparse.Namespace) -> int:
    import asyncio

    from quecmqtt.at.events import MqttMessage

    _check(args, filters=args.topic)
    await _prepared(args)
    received = 0
    async with open_modem(args) as modem, _client(args, modem) as client:
        await _connect(args, client)
        try:
            # The link can go (+QMTSTAT, a reboot, the port unplugged), even in answer to the
            # SUBSCRIBE: then say so and fail rather than wait for messages that cannot come.
            granted = await client.subscribe([(t, args.qos) for t in args.topic])
            for g in granted:
                note(f"subscribed to {g.topic}: {'REFUSED by the broker' if g.rejected else f'QoS {g.qos}'}")
            waiting = asyncio.timeout(args.wait)  # -W; None: no end
            try:
                async with waiting:
                    async for message in client.messages:  # what arrived before a loss, then LinkLost
                        if not isinstance(message, MqttMessage):
                            note(f"(dropped {message.dropped} messages: the queue was full)")
                            continue
                        received += 1
                        _print_message(args, message)
                        if args.count and received >= args.count:
                            break
            except TimeoutError:
                if not waiting.expired():
                    raise  # the module's time-out (CommandTimeout), not -W's
                if args.count:  # -W: the time ran out before -C messages came
                    raise SubscriptionEnded(f"{received} of {args.count} messages within {args.wait:g} s") from None
        except LinkLost as exc:
            raise SubscriptionEnded(
                f"the connection to {args.broker} was lost ({exc.reason}) after {received} messages"
            ) from None
    return 0


def _print_message(args: argparse.Namespace, message: Any) -> None:
    """Payload only (mosquitto_sub's default), `-v` topic and payload, or `--json`."""
    if args.json:
        import json

        try:
            text: Any = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        # +QMTRECV carries neither QoS nor retain: QoS 0 is certain when the packet id is 0,
        # anything else is null (the module does not say), as is retain
        print(json.dumps({"topic": message.topic, "payload": text, "payload_hex": message.payload.hex(),
                          "qos": 0 if message.msg_id == 0 else None, "retain": None,
                          "msg_id": message.msg_id, "client": message.client}), flush=True)  # fmt: skip
    elif args.verbose:
        print(f"{message.topic} {message.payload.decode('utf-8', errors='replace')}", flush=True)
    else:
        sys.stdout.buffer.write(message.payload + b"\n")
        sys.stdout.flush()


def _common(parser: argparse.ArgumentParser) -> None:
    add_port_options(parser)
    add_json_option(parser)
    parser.add_argument(
        "--broker",
        type=host_port,
        required=True,
        metavar="HOST:PORT",
        help="the broker, as the module resolves it",
    )
    parser.add_argument(
        "--client-id",
        "-i",
        metavar="ID",
        help="MQTT client id (default: quecmqtt- and 8 random hex digits, so two devices never collide)",
    )
    parser.add_argument("--username", "-u", metavar="USER")
    add_secret_option(parser, "password", "the MQTT password", missing="none is sent", short="-P")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, the broker's certificate checked against the shipped public roots (or --ca)",
    )
    parser.add_argument("--ca", "--cafile", metavar="FILE", help="CA certificate to verify the broker (implies --tls)")
    parser.add_argument(
        "--insecure", action="store_true", help="TLS without checking the broker's certificate (implies --tls; warns)"
    )
    parser.add_argument("--ssl-context", type=int, default=2, metavar="N", help="SSL context index 0-5 (default 2)")
    parser.add_argument(
        "--index", type=int, default=0, metavar="N", help="the module's MQTT client index 0-5 (default 0)"
    )
    parser.add_argument(
        "--keepalive", "-k", type=int, default=120, metavar="SECONDS", help="0-3600 seconds (default 120)"
    )
    parser.add_argument("--qos", "-q", type=int, choices=(0, 1, 2), default=1, help="QoS (default 1)")


EPILOG_FLAGS = "Short flags as mosquitto_pub/mosquitto_sub have them: -t -m -f -q -r -u -P -i -k -C -W -v, --cafile."


def add_parser(sub_parsers: Any) -> None:
    mqtt = sub_parsers.add_parser("mqtt", help="publish or subscribe with the module's MQTT client")
    commands = mqtt.add_subparsers(dest="mqtt_command", metavar="COMMAND")
    p = commands.add_parser(
        "pub",
        help="publish a message (from --message, --file or standard input)",
        description="Open, connect, publish (COUNT times, pipelined), disconnect. Payloads are binary-safe. "
        "Everything on the command line is checked before the port is opened.",
        epilog="Example: quecmqtt mqtt pub --port /dev/ttyUSB2 --broker broker.emqx.io:1883 -t quecmqtt/hello -m hi\n"
        + EPILOG_FLAGS,
    )
    _common(p)
    p.add_argument("--topic", "-t", required=True)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--message", "-m", help="the payload as text")
    source.add_argument("--file", "-f", metavar="PATH", help="the payload from a file (default: standard input)")
    p.add_argument("--retain", "-r", action="store_true")
    p.add_argument("--count", type=positive, default=1, help="publish this many times (default 1)")
    p.set_defaults(func=lambda args: run("mqtt pub", lambda: pub(args)))
    s = commands.add_parser(
        "sub",
        help="subscribe and print messages (until Ctrl-C, -C or -W)",
        description="Open, connect, subscribe, print each message: its payload (as mosquitto_sub does), "
        "'topic payload' with -v, or a JSON object with --json. Leaving (Ctrl-C, -C, -W, a broken pipe) "
        "disconnects the module's client.",
        epilog="Example: quecmqtt mqtt sub --port /dev/ttyUSB2 --broker broker.emqx.io:1883 -t 'cmd/#' -v -C 1\n"
        + EPILOG_FLAGS,
    )
    _common(s)
    s.add_argument("--topic", "-t", required=True, action="append", help="a topic filter (repeatable)")
    s.add_argument("--count", "-C", type=positive, help="stop after this many messages (default: never)")
    s.add_argument(
        "--wait", "-W", type=seconds, metavar="SECONDS", help="stop after this long (with -C and fewer messages: 1)"
    )
    s.add_argument("--verbose", "-v", action="store_true", help="print the topic before each payload")
    s.set_defaults(func=lambda args: run("mqtt sub", lambda: sub(args)))
    mqtt.set_defaults(func=lambda args: mqtt.group_needs_a_command(["pub", "sub"]))
