"""`quecmqtt aliyun ...`: Aliyun IoT credentials (and, with a module, registration and login)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from quecmqtt.aliyun.credentials import (
    SIGN_METHODS,
    connwl_login,
    direct_login,
    https_registration,
    now_ms,
    registration_login,
)
from quecmqtt.cli.secrets import SecretMissing, add_secret_option, given, resolve_secret
from quecmqtt.errors import InvalidArgument

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
    aliyun.set_defaults(func=lambda args: (aliyun.print_help(), 2)[1])
