"""`quecmqtt aliyun ...`: Aliyun IoT credentials (and, with a module, registration and login)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from quecmqtt.aliyun.credentials import (
    SIGN_METHODS,
    connwl_login,
    direct_login,
    https_registration,
    now_ms,
    registration_login,
)
from quecmqtt.cli.common import (
    UsageError,
    add_json_option,
    add_port_options,
    connect_port,
    emit,
    note,
    open_modem,
    read_file,
    run,
    seconds,
    ticking,
)
from quecmqtt.cli.secrets import SecretMissing, add_secret_option, given, resolve_secret
from quecmqtt.errors import CommandTimeout, InvalidArgument, QuecError

SIGN_EPILOG = """\
Three forms, chosen by the secret you give:

  direct login (one device, one secret):
    quecmqtt aliyun sign --product-key PK --device-name DN --device-secret-file ds.txt \\
        [--client-id CID] [--timestamp TS | --no-timestamp] [--sign-method M] [--secure-mode 2|3]
  MQTT dynamic registration (one product, one secret):
    quecmqtt aliyun sign --product-key PK --device-name DN --product-secret-env PS \\
        --auth-type register|regnwl --random R [--sign-method M] [--instance-id ID] [--client-id CID]
  HTTPS dynamic registration:
    quecmqtt aliyun sign --https --product-key PK --device-name DN --product-secret-file ps.txt --random R
  connwl login (after regnwl):
    quecmqtt aliyun sign --product-key PK --device-name DN --client-id CID --device-token-file token.txt

Output: one JSON object, {"client_id", "username", "password"} for MQTT and
{"sign", "body"} for HTTPS. The clientId's parameters come in the order the console writes
them (securemode, signmethod, timestamp); hex is lower case (Aliyun accepts either).
"""


def _cmd_sign(args: argparse.Namespace) -> int:
    has_device = given(args, "device-secret")
    has_product = given(args, "product-secret")
    has_token = given(args, "device-token")
    try:
        if has_device + has_product + has_token > 1:
            raise InvalidArgument(
                "give one of a device secret (login), a product secret (registration), a device token (connwl)"
            )
        if has_token:
            if not args.client_id:
                raise InvalidArgument("a connwl login needs --client-id: the one regnwl returned")
            token = resolve_secret(args, "device-token")
            out: dict[str, Any] = connwl_login(args.product_key, args.device_name, args.client_id, token).as_dict()
        elif args.https or has_product or args.auth_type:
            if args.random is None:
                raise InvalidArgument("registration needs --random")
            product_secret = resolve_secret(args, "product-secret")
            if args.https:
                out = https_registration(
                    args.product_key, args.device_name, product_secret, random=args.random, sign_method=args.sign_method
                ).as_dict()
            else:
                out = registration_login(
                    args.product_key,
                    args.device_name,
                    product_secret,
                    auth_type=args.auth_type or "register",
                    random=args.random,
                    sign_method=args.sign_method,
                    instance_id=args.instance_id,
                    client_id=args.client_id,
                    secure_mode=args.secure_mode,
                ).as_dict()
        else:
            device_secret = resolve_secret(args, "device-secret")
            timestamp = None if args.no_timestamp else (args.timestamp if args.timestamp is not None else now_ms())
            out = direct_login(
                args.product_key,
                args.device_name,
                device_secret,
                client_id=args.client_id,
                timestamp=timestamp,
                sign_method=args.sign_method,
                secure_mode=args.secure_mode if args.secure_mode is not None else 2,
            ).as_dict()
    except (InvalidArgument, SecretMissing) as exc:
        print(f"quecmqtt aliyun sign: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False))
    return 0


def add_parser(sub: Any) -> None:
    aliyun = sub.add_parser(
        "aliyun",
        help="Aliyun IoT: credentials, registration, login",
        description="Aliyun IoT Platform tools. See 'quecmqtt aliyun COMMAND --help'.",
    )
    commands = aliyun.add_subparsers(dest="aliyun_command", metavar="COMMAND")
    sign = commands.add_parser(
        "sign",
        help="print MQTT login credentials or an HTTPS registration body as JSON",
        description="Compute Aliyun IoT credentials on this computer (no module needed).",
        epilog=SIGN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sign.add_argument("--product-key", required=True, metavar="PK")
    sign.add_argument("--device-name", required=True, metavar="DN")
    add_secret_option(sign, "device-secret", "the DeviceSecret (direct login)")
    add_secret_option(sign, "product-secret", "the ProductSecret (dynamic registration)")
    add_secret_option(sign, "device-token", "the DeviceToken regnwl returned (connwl login)")
    sign.add_argument(
        "--client-id",
        metavar="CID",
        help="text before the first '|' (default: PK.DN for a login, DN for a registration)",
    )
    stamp = sign.add_mutually_exclusive_group()
    stamp.add_argument("--timestamp", metavar="MS", help="signed timestamp in milliseconds (default: now)")
    stamp.add_argument("--no-timestamp", action="store_true", help="sign and send no timestamp")
    sign.add_argument("--sign-method", choices=sorted(SIGN_METHODS), default="hmacsha256", help="(default hmacsha256)")
    sign.add_argument(
        "--secure-mode",
        type=int,
        choices=(2, 3, -2),
        help="2 TLS (default), 3 plain TCP; for registration 2 (register) or -2 (regnwl) by default",
    )
    sign.add_argument("--auth-type", choices=("register", "regnwl"), help="MQTT dynamic registration kind")
    sign.add_argument("--random", metavar="R", help="the random value a registration signs")
    sign.add_argument("--instance-id", metavar="ID", help="instance id (Enterprise and new public instances)")
    sign.add_argument("--https", action="store_true", help="an HTTPS registration body instead of MQTT credentials")
    sign.set_defaults(func=_cmd_sign)
    add_module_parsers(commands)
    aliyun.set_defaults(func=lambda args: aliyun.group_needs_a_command(["sign", "register", "connect", "post"]))


# -- with a module ---------------------------------------------------------------------------------

STORE = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "quecmqtt" / "aliyun"


def _store(args: argparse.Namespace) -> Any:
    from quecmqtt.aliyun.store import SecretStore

    directory = Path(args.store) if args.store else STORE
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--store {directory} is a file; the store is a directory (one 0600 file per device)")
    return SecretStore(directory)


async def _ca(args: argparse.Namespace) -> bytes:
    """The CA to verify the server with: --ca, else the shipped public roots (never none)."""
    from quecmqtt.aliyun.device import shipped_roots

    return await read_file(args.ca, "the CA certificate") if args.ca else shipped_roots()


async def _register(args: argparse.Namespace) -> int:
    from quecmqtt.aliyun.device import Product
    from quecmqtt.aliyun.replies import Whitelisted
    from quecmqtt.aliyun.store import StoreError, rescue, rescue_directories

    product = Product(args.product_key, args.device_name, resolve_secret(args, "product-secret"))
    store = _store(args)
    if not args.https and not args.endpoint:
        raise UsageError("give --endpoint (your instance's MQTT host, e.g. iot-xxxx.mqtt.iothub.aliyuncs.com)")
    stored = None if args.force else await asyncio.to_thread(store.load, args.product_key, args.device_name)
    if stored is not None:  # the cloud is not asked again, and the port is not opened
        path = store.path(args.product_key, args.device_name)
        data = {"product_key": args.product_key, "device_name": args.device_name, "stored": str(path), "reused": True}
        emit(args, data, f"already registered: the result stored in {path} is used (--force registers again)")
        return 0
    args.ca_pem = await _ca(args)
    try:
        result = await _register_through_module(args, product, store)
    except StoreError as exc:
        kept = await asyncio.to_thread(rescue, exc, rescue_directories())
        where = f"it was kept in {kept} (mode 0600): move it to the store" if kept else "nowhere could take it"
        raise QuecError(f"{exc.reason}; {where}") from None
    path = store.path(args.product_key, args.device_name)
    data = {"product_key": result.product_key, "device_name": result.device_name, "stored": str(path)}
    if isinstance(result, Whitelisted):
        data["client_id"] = result.client_id
    data["reused"] = False
    emit(args, data, f"registered; the result is stored in {path} (mode 0600; it is not shown again)")
    return 0


async def _register_through_module(args: argparse.Namespace, product: Any, store: Any) -> Any:
    from quecmqtt.aliyun.device import register_https, register_mqtt

    async with open_modem(args) as modem, ticking("registering"):
        if not args.json:
            how = "HTTPS" if args.https else f"MQTT ({args.auth_type}) over {'TCP' if args.plain_tcp else 'TLS'}"
            note(f"registering {args.product_key}/{args.device_name} over {how} ...")
        if args.https:
            result: Any = await register_https(
                modem, product, region=args.region, url=args.url, store=store, force=args.force, ca=args.ca_pem,
                random=args.random, sign_method=args.sign_method,
            )  # fmt: skip
        else:
            result = await register_mqtt(
                modem, product, args.endpoint, args.mqtt_port, auth_type=args.auth_type, store=store,
                force=args.force, tls=not args.plain_tcp, allow_plain_tcp=args.plain_tcp, ca=args.ca_pem,
                instance_id=args.instance_id, client_id=args.client_id, random=args.random,
                sign_method=args.sign_method,
            )  # fmt: skip
    return result


async def _device_secret(args: argparse.Namespace) -> Any:
    """The device's secret (given, stored, or asked for) and the CA, before the port is opened."""
    if not args.endpoint:
        raise UsageError("give --endpoint (your instance's MQTT host)")
    args.tls = args.tls or bool(args.ca)  # --ca says TLS, as its help does: never plain TCP
    args.ca_pem = await _ca(args) if args.tls else None
    secret: Any = resolve_secret(args, "device-secret", prompt=False) if given(args, "device-secret") else None
    if secret is None:
        secret = await asyncio.to_thread(_store(args).load, args.product_key, args.device_name)
    if secret is None:
        try:
            secret = resolve_secret(args, "device-secret")  # a prompt, on a terminal
        except SecretMissing:
            raise UsageError(
                "no device secret: give --device-secret(-file/-env), or register first (it is stored)"
            ) from None
    if args.module_signs:
        from quecmqtt.aliyun.replies import Whitelisted

        if isinstance(secret, Whitelisted):
            raise UsageError("the stored result is a regnwl token: it logs in host-signed; leave out --module-signs")
    return secret


@contextlib.asynccontextmanager
async def _logged_in(args: argparse.Namespace, modem: Any, secret: Any) -> AsyncIterator[Any]:
    """The device's MQTT client, logged in; leaving disconnects and closes it on the module,
    however the block ends (a post unanswered, Ctrl-C)."""
    from quecmqtt.aliyun.device import aliauth_config, login, login_credentials
    from quecmqtt.mqtt.client import MqttClient
    from quecmqtt.mqtt.config import MqttConfig
    from quecmqtt.services.tls import Tls

    ssl_context: int | bool = False
    if args.tls:
        await Tls(modem).setup(args.ssl_context, ca=args.ca_pem, server_name=args.endpoint)
        ssl_context = args.ssl_context
    if args.module_signs:
        from quecmqtt.aliyun.replies import Registered

        ds = secret.device_secret if isinstance(secret, Registered) else secret
        config = aliauth_config(args.product_key, args.device_name, ds, ssl_context=ssl_context)
        credentials = None
    else:
        config = MqttConfig(ssl_context=ssl_context)
        credentials = login_credentials(args.product_key, args.device_name, secret, tls=args.tls)
    async with MqttClient(modem, 0, config) as client:
        async with ticking(f"logging in to {args.endpoint}"):
            await login(client, args.endpoint, args.mqtt_port, credentials, client_id=args.device_name)
        yield client


@contextlib.asynccontextmanager
async def _aliauth_cleared(args: argparse.Namespace, modem: Any) -> AsyncIterator[None]:
    """With --module-signs, the module holds the device's triple: clear it on the way out, so
    no later CONNECT (another program's, another broker's) is signed with it."""
    try:
        yield
    finally:
        if args.module_signs:
            from quecmqtt.aliyun.device import clear_aliauth

            await clear_aliauth(modem)


async def _connect_cmd(args: argparse.Namespace) -> int:
    secret = await _device_secret(args)
    async with open_modem(args) as modem, _aliauth_cleared(args, modem):
        started = time.monotonic()
        async with _logged_in(args, modem, secret):
            seconds = time.monotonic() - started
            emit(
                args,
                {"ok": True, "seconds": round(seconds, 3)},
                f"logged in to {args.endpoint} as {args.product_key}/{args.device_name} in {seconds:.2f} s",
            )
    return 0


async def _params(text: str) -> dict[str, Any]:
    """--params: JSON text, @FILE for a file's, or - for standard input's."""
    from quecmqtt.cli.common import read_stdin

    where = "--params"
    if text == "-":
        text, where = (await read_stdin("the properties")).decode("utf-8", errors="replace"), "standard input"
    elif text.startswith("@"):
        data = await read_file(text[1:], "the properties")
        text, where = data.decode("utf-8", errors="replace"), text[1:]
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where} is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError(f"{where} must hold a JSON object, e.g. '{{\"Temp\": 21.5}}'")
    return params


async def _post(args: argparse.Namespace) -> int:
    from quecmqtt.aliyun.alink import Thing

    params = await _params(args.params)
    model = await _thing_model(args.tsl) if args.tsl else None
    if model is not None:
        model.check_properties(params)  # refused before the port is opened: TslError, status 2
    secret = await _device_secret(args)
    async with (
        open_modem(args) as modem,
        _aliauth_cleared(args, modem),
        _logged_in(args, modem, secret) as client,
        Thing(client, args.product_key, args.device_name, model=model) as thing,
    ):
        started = time.monotonic()
        try:
            code = await thing.post_properties(params, timeout=args.timeout)
        except CommandTimeout:
            raise  # the module did not answer: not the platform's silence
        except TimeoutError:
            raise PostUnanswered(f"no post_reply within {args.timeout:g} s") from None
        seconds = time.monotonic() - started
        emit(args, {"code": code, "seconds": round(seconds, 3)}, f"post_reply code {code} after {seconds:.2f} s")
    return 0 if code == 200 else 1


async def _thing_model(path: str) -> Any:
    """--tsl: the console's thing model export (read in a thread)."""
    from quecmqtt.aliyun.tsl import ThingModel

    try:
        return await asyncio.to_thread(ThingModel.load, path)
    except OSError as exc:
        raise UsageError(f"--tsl: cannot read {path}: {exc.strerror or exc}") from None


class PostUnanswered(QuecError):
    """The platform did not answer a property post in time."""


def _device_options(parser: argparse.ArgumentParser) -> None:
    add_port_options(parser)
    add_json_option(parser)
    parser.add_argument("--product-key", required=True, metavar="PK")
    parser.add_argument("--device-name", required=True, metavar="DN")
    parser.add_argument("--endpoint", metavar="HOST", help="the instance's MQTT host (console: 开发配置)")
    parser.add_argument("--mqtt-port", type=connect_port, default=1883, metavar="PORT", help="(default 1883)")
    parser.add_argument("--store", metavar="DIR", help=f"where registration results are kept (default {STORE})")
    parser.add_argument("--ca", metavar="FILE", help="CA to verify the server (default: the shipped public roots)")


def _login_options(parser: argparse.ArgumentParser) -> None:
    """What a command that logs the device in takes: the device, its secret, who signs, TLS."""
    _device_options(parser)
    add_secret_option(
        parser, "device-secret", "the DeviceSecret", missing="the stored result is used, else you are prompted"
    )
    parser.add_argument("--module-signs", action="store_true", help='let the module sign (AT+QMTCFG="aliauth")')
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--ssl-context", type=int, default=2, help="SSL context index for --tls (default 2)")


def add_module_parsers(commands: Any) -> None:
    register = commands.add_parser(
        "register",
        help="dynamic registration through the module (MQTT register/regnwl, or HTTPS); the result is stored",
        description=(
            "One-product-one-secret registration through the module. The result (a DeviceSecret, or a client id "
            "and token for regnwl) is written to the store (mode 0600) before anything else and is never printed: "
            "the cloud shows it once. A stored result is reused unless --force. TLS is required: the server is "
            "verified against the shipped public root CAs (or --ca)."
        ),
        epilog="Example: quecmqtt aliyun register --port /dev/ttyUSB2 --product-key PK --device-name DN "
        "--product-secret-env PS --endpoint iot-xxxx.mqtt.iothub.aliyuncs.com --instance-id iot-xxxx",
    )
    _device_options(register)
    add_secret_option(register, "product-secret", "the ProductSecret")
    register.add_argument("--auth-type", choices=("register", "regnwl"), default="register")
    register.add_argument("--https", action="store_true", help="register over HTTPS with the module's HTTP client")
    register.add_argument("--region", default="cn-shanghai", help="HTTPS: the region (default cn-shanghai)")
    register.add_argument("--url", help="HTTPS: the full registration URL instead of the region's")
    register.add_argument("--instance-id", metavar="ID")
    register.add_argument("--client-id", metavar="CID", help="text before the first '|' (default: the device name)")
    register.add_argument("--random", help="the random value to sign (default: a fresh one)")
    register.add_argument("--sign-method", choices=sorted(SIGN_METHODS), default="hmacsha256")
    register.add_argument("--force", action="store_true", help="register again although a result is stored")
    register.add_argument(
        "--plain-tcp", action="store_true", help="MQTT without TLS (Aliyun refuses it; for test servers)"
    )
    register.set_defaults(func=lambda args: run("aliyun register", lambda: _register(args)))

    for name, body, summary in (
        ("connect", _connect_cmd, "log in through the module and out again (proves the credentials)"),
        ("post", _post, "log in and post properties (Alink), waiting for post_reply"),
    ):
        p = commands.add_parser(
            name,
            help=summary,
            description=(
                f"{summary[0].upper()}{summary[1:]}. The DeviceSecret comes from --device-secret(-file/-env) or the "
                "store a registration wrote. The host signs the login, or the module does (--module-signs, aliauth)."
            ),
        )
        _login_options(p)
        if name == "post":
            p.add_argument(
                "--params",
                required=True,
                help="the properties as JSON, e.g. '{\"Temp\": 21.5}'; @FILE reads a file, - standard input",
            )
            p.add_argument("--timeout", type=seconds, default=10.0, help="seconds to wait for post_reply (default 10)")
            p.add_argument(
                "--tsl",
                metavar="FILE",
                help="the product's thing model (console: 功能定义 > 物模型 TSL > 导出): properties it does not "
                "allow are refused before anything is sent",
            )
        p.set_defaults(func=lambda args, body=body, name=name: run(f"aliyun {name}", lambda: body(args)))

    from quecmqtt.cli.ota import add_ota_parser

    add_ota_parser(commands, _login_options)
