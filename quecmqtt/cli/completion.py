"""`quecmqtt completion bash|zsh`: a completion script made from the parser itself, so it
always knows the commands and options this version has.

    eval "$(quecmqtt completion bash)"     # in ~/.bashrc
    eval "$(quecmqtt completion zsh)"      # in ~/.zshrc (through zsh's bashcompinit)

Commands, subcommands and options complete; so do the values of options with a fixed set
(`--qos`, `--model`, `--urc-port`); everything else completes as a file name.
"""

from __future__ import annotations

import argparse
import shlex
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FUNCTION = r"""
_quecmqtt() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path="quecmqtt" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ "$word" != -* && " ${_quecmqtt_subs[$path]} " == *" $word "* ]]; then
            path="$path $word"
        fi
    done
    local choices="${_quecmqtt_choices[$path $prev]}"
    if [[ -n "$choices" ]]; then
        COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${_quecmqtt_opts[$path]}" -- "$cur"))
    elif [[ -n "${_quecmqtt_subs[$path]}" ]]; then
        COMPREPLY=($(compgen -W "${_quecmqtt_subs[$path]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o default -F _quecmqtt quecmqtt
"""


def _walk(parser: argparse.ArgumentParser, path: str, subs: dict[str, str], opts: dict[str, str],
          choices: dict[str, str]) -> None:  # fmt: skip
    names: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names.append(name)
                _walk(sub, f"{path} {name}", subs, opts, choices)
            continue
        names_of_option = list(action.option_strings)
        if action.choices is not None and names_of_option:
            for option in names_of_option:
                choices[f"{path} {option}"] = " ".join(str(c) for c in action.choices)
    subs[path] = " ".join(names)
    opts[path] = " ".join(o for a in parser._actions for o in a.option_strings)


def script(shell: str) -> str:
    from quecmqtt.cli import build_parser

    subs: dict[str, str] = {}
    opts: dict[str, str] = {}
    choices: dict[str, str] = {}
    _walk(build_parser(), "quecmqtt", subs, opts, choices)  # bash's tables take no empty key

    def table(name: str, values: dict[str, str]) -> str:
        items = " ".join(f"[{shlex.quote(key)}]={shlex.quote(value)}" for key, value in sorted(values.items()))
        return f"declare -gA {name}=({items})"

    head = "autoload -U +X bashcompinit && bashcompinit\n" if shell == "zsh" else ""
    body = "\n".join(
        [table("_quecmqtt_subs", subs), table("_quecmqtt_opts", opts), table("_quecmqtt_choices", choices)]
    )
    return f'# quecmqtt {shell} completion: eval "$(quecmqtt completion {shell})"\n{head}{body}\n{FUNCTION}'


def _cmd_completion(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(script(args.shell))
    except BrokenPipeError:
        return 0
    return 0


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=("bash", "zsh"))
    parser.set_defaults(func=_cmd_completion)
