"""Defaults for command-line options from the environment and an optional config file.

Precedence: the command line, then an environment variable, then the config file, then the
option's own default. Any long option of a command may be given either way:

- the environment: `QUECMQTT_` and the option's name in capitals, dashes as underscores
  (`--broker` is `QUECMQTT_BROKER`, `--product-key` is `QUECMQTT_PRODUCT_KEY`);
- the config file, `$XDG_CONFIG_HOME/quecmqtt/config.toml` (`~/.config/quecmqtt/config.toml`),
  or the file `QUECMQTT_CONFIG` names: keys are option names; top-level keys apply to every
  command that has the option, a table per command to that command only (`[mqtt.pub]`,
  `[aliyun]`), the more specific winning.

A secret's value is refused in the file (any process of the user may read it), wherever it
stands, and never taken from the environment by this rule (`QUECMQTT_PASSWORD` is not a
default for `--password`): name a file or a variable instead (`device-secret-file`,
`password-env`). A repeatable option (`--topic`) given on the command line replaces the
configured list. A flag (`retain = true`) set here cannot be turned off on the command line.
Keys whose meaning differs between commands (`device-name`, `timeout`, `mqtt-port`) belong in
the command's table.
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


def apply_defaults(parser: argparse.ArgumentParser, argv: list[str], config: dict[str, Any]) -> dict[str, list[Any]]:
    """Set the defaults of the parser of the command `argv` names (and of its parents) from
    the environment and `config`. Returns what must be filled in after parsing: the lists of
    repeatable options (argparse would add the command line's to a default list, and the
    command line must replace it), for each destination that the command line left empty."""
    _refuse_secrets(config)
    tables: list[dict[str, Any]] = [config]
    current = parser
    path: list[str] = []
    fills: dict[str, list[Any]] = {}
    _apply(current, tables, path, fills)
    for word in (word for word in argv if not word.startswith("-")):
        found = dict(_subparsers(current)).get(word)
        if found is None:
            break
        current = found
        path.append(word)
        table = tables[-1].get(word)
        tables.append(table if isinstance(table, dict) else {})
        _apply(current, tables, path, fills)
    return fills


def _refuse_secrets(config: dict[str, Any], where: str = "") -> None:
    """A secret's value anywhere in the file, whatever command it is for, is refused at once."""
    for key, value in config.items():
        name = key.replace("_", "-")
        if isinstance(value, dict):
            _refuse_secrets(value, f"{where}[{key}] ")
        elif name in SECRET_OPTIONS:
            raise ConfigError(
                f"the config file: {where}{key} is a secret and cannot be kept there: use {name}-file or {name}-env"
            )


def _apply(
    parser: argparse.ArgumentParser, tables: list[dict[str, Any]], path: list[str], fills: dict[str, list[Any]]
) -> None:
    where = " ".join(["quecmqtt", *path])
    for action in parser._actions:
        names = [option[2:] for option in action.option_strings if option.startswith("--")]
        if not names or isinstance(action, argparse._SubParsersAction) or NOT_DEFAULTS & set(names):
            continue
        if SECRET_OPTIONS & set(names):
            continue  # never from the environment (its -env form names a variable) nor the file
        value: Any = None
        source = ""
        for table in tables:  # the more specific table wins
            for name in names:  # --ca and --cafile are one option
                for key in (name, name.replace("-", "_")):
                    if key in table and not isinstance(table[key], dict):  # a table: a command's
                        value, source = table[key], "the config file"
        for name in names:
            env = ENV_PREFIX + name.upper().replace("-", "_")
            if os.environ.get(env):
                value, source = os.environ[env], env
                break
        if value is None:
            continue
        what = f"{where}: --{names[0]} from {source}"
        action.required = False
        if isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*"):
            fills[action.dest] = _converted(action, value, what)
        else:
            action.default = _converted(action, value, what)


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
