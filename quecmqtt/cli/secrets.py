"""Secret options for the command line: every secret can come from an argument, a file, an
environment variable, or a prompt, so it need not appear in a process list or shell history.

    add_secret_option(parser, "device-secret", "the DeviceSecret")
    secret = resolve_secret(args, "device-secret")   # --device-secret / -file / -env / prompt
"""

from __future__ import annotations

import argparse
import os
import sys

from quecmqtt.secret import Secret, load_secret


class SecretMissing(Exception):
    """None of the sources holds the secret and there is no terminal to ask on."""


def add_secret_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    what: str,
    *,
    missing: str = "you are prompted (on a terminal)",
    short: str | None = None,
) -> None:
    """`--NAME`, `--NAME-file`, `--NAME-env`; `missing` says what happens without any of them.
    `short` is a short flag for `--NAME` (mosquitto's -P for the password)."""
    dest = name.replace("-", "_")
    env = dest.upper()
    flags = [f"--{name}", short] if short else [f"--{name}"]
    parser.add_argument(
        *flags, dest=dest, metavar="VALUE", help=f"{what} (visible in process lists: prefer the next two)"
    )
    parser.add_argument(f"--{name}-file", dest=f"{dest}_file", metavar="PATH", help=f"read {what} from a file")
    parser.add_argument(
        f"--{name}-env",
        dest=f"{dest}_env",
        metavar="VAR",
        help=f"read {what} from an environment variable (e.g. {env}); without any of these {missing}",
    )


def given(args: argparse.Namespace, name: str) -> bool:
    dest = name.replace("-", "_")
    # "" counts as given: `--pin ''` is a mistake to report ("the value is empty"), not silence
    return any(getattr(args, key, None) is not None for key in (dest, f"{dest}_file", f"{dest}_env"))


def resolve_secret(args: argparse.Namespace, name: str, *, prompt: bool = True) -> Secret:
    dest = name.replace("-", "_")
    env = getattr(args, f"{dest}_env", None)
    if env and not os.environ.get(env):
        raise SecretMissing(f"--{name}-env: the environment variable {env} is not set")
    try:
        secret = load_secret(getattr(args, dest, None), file=getattr(args, f"{dest}_file", None), env=env, name=dest)
    except OSError as exc:
        raise SecretMissing(f"--{name}-file: {exc.strerror or exc}") from None
    if secret is not None:
        if not secret.reveal():
            raise SecretMissing(f"--{name}: the value is empty")  # signing with an empty key helps nobody
        return secret
    if prompt and sys.stdin.isatty():
        import getpass
        import signal
        import threading

        # Inside asyncio.run, Ctrl-C only cancels the main task, which a blocking prompt never
        # lets run: the first Ctrl-C would be lost. At the prompt it interrupts at once.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
        try:
            value = getpass.getpass(f"{name.replace('-', ' ')}: ")
        except EOFError:  # Ctrl-D at the prompt: no secret, said as such
            print(file=sys.stderr)
            raise SecretMissing(f"no {name.replace('-', ' ')} given (end of input)") from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if value:
            return Secret(value, dest)
    raise SecretMissing(f"give --{name}, --{name}-file or --{name}-env")
