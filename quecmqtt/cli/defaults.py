"""Defaults for command-line options from the environment and an optional config file.

Precedence: the command line, then an environment variable, then the config file, then the
option's own default. Any long option of a command may be given either way:

- the environment: `QUECMQTT_` and the option's name in capitals, dashes as underscores
  (`--broker` is `QUECMQTT_BROKER`, `--product-key` is `QUECMQTT_PRODUCT_KEY`);
- the config file, `$XDG_CONFIG_HOME/quecmqtt/config.toml` (`~/.config/quecmqtt/config.toml`),
  or the file `QUECMQTT_CONFIG` names: keys are option names; top-level keys apply to every
  command that has the option, a table per command to that command only (`[mqtt.pub]`,
  `[aliyun]`), the more specific winning.

Secret values are refused in both places (a file any process may read, an environment every
child inherits): name a file or a variable instead (`device-secret-file`, `password-env`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

TYPE_CHECKING = False  # `typing` is not imported at run time: the start stays fast
if TYPE_CHECKING:
    from typing import Any

ENV_PREFIX = "QUECMQTT_"
# options whose value is a secret itself: only their -file and -env forms may be defaults
SECRET_OPTIONS = frozenset({"device-secret", "product-secret", "device-token", "password", "pin", "apn-password"})
# options that are not defaults: what a command is asked to do, or how it speaks
NOT_DEFAULTS = frozenset({"help", "version", "verbose", "quiet"})


class ConfigError(Exception):
    """The config file cannot be used (not TOML, a secret in it, an unknown type)."""


def config_path() -> str:
    # os.path, not pathlib: this runs before every command, --help included
    named = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if named:
        return named
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "quecmqtt", "config.toml")


def load_config(path: str) -> dict[str, Any]:
    """The file's tables; {} when there is none (a config file is optional)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        if os.environ.get(f"{ENV_PREFIX}CONFIG"):
            raise ConfigError(f"{path}: no such config file (named by {ENV_PREFIX}CONFIG)") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not TOML: {exc}") from None


def _long_options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                yield option[2:], action


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def apply_defaults(parser: argparse.ArgumentParser, argv: list[str], config: dict[str, Any]) -> None:
    """Set the defaults of the parser of the command `argv` names (and of its parents) from
    the environment and `config`."""
    tables: list[dict[str, Any]] = [config]
    current = parser
    path: list[str] = []
    words = iter(word for word in argv if not word.startswith("-"))
    _apply(current, tables, path)
    for word in words:
        found = dict(_subparsers(current)).get(word)
        if found is None:
            break
        current = found
        path.append(word)
        table = tables[-1].get(word)
        tables.append(table if isinstance(table, dict) else {})
        _apply(current, tables, path)


def _apply(parser: argparse.ArgumentParser, tables: list[dict[str, Any]], path: list[str]) -> None:
    where = " ".join(["quecmqtt", *path])
    for name, action in _long_options(parser):
        if name in NOT_DEFAULTS or isinstance(action, argparse._SubParsersAction):
            continue
        value: Any = None
        source = ""
        for table in tables:  # the more specific table wins
            if name in table or name.replace("-", "_") in table:
                value = table.get(name, table.get(name.replace("-", "_")))
                source = "the config file"
        env = ENV_PREFIX + name.upper().replace("-", "_")
        if os.environ.get(env):
            value, source = os.environ[env], env
        if value is None:
            continue
        if name in SECRET_OPTIONS:
            raise ConfigError(
                f"{where}: --{name} is a secret and cannot come from {source}: use {name}-file or {name}-env there"
            )
        action.default = _converted(action, value, f"{where}: --{name} from {source}")
        action.required = False


def _converted(action: argparse.Action, value: Any, what: str) -> Any:
    """A default in the form the action stores: argparse runs a string default through the
    option's type itself; flags and lists are done here."""
    if action.nargs == 0:  # store_true / store_false
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{what}: want true or false, got {value!r}")
    if isinstance(value, bool | dict):
        raise ConfigError(f"{what}: want a value, got {value!r}")
    items = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    if isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*"):
        try:
            return [action.type(item) if callable(action.type) else item for item in items]
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise ConfigError(f"{what}: {exc}") from None
    if len(items) != 1:
        raise ConfigError(f"{what}: want one value, got {value!r}")
    try:
        converted = action.type(items[0]) if callable(action.type) else items[0]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(f"{what}: want one of {', '.join(map(str, action.choices))}, got {value!r}")
    return converted
