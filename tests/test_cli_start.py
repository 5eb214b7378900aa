"""A fast start (issue 13): `quecmqtt --help` and a command's `--help` import nothing heavy
(no asyncio, no runtime, no emulator). Measured in tools/bench_startup.py; asserted here by
what gets imported, never by time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quecmqtt.cli import COMMANDS, build_parser

HEAVY = ("asyncio", "ssl", "quecmqtt.runtime", "quecmqtt.modem", "quecmqtt.emulator.module", "quecmqtt.cloud")


@pytest.mark.parametrize("argv", [["--help"], ["mqtt", "pub", "--help"], ["info", "--help"], ["--version"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    probe = (
        "import sys, json\n"
        "from quecmqtt.cli import build_parser\n"
        f"parser = build_parser({argv!r})\n"
        "try:\n"
        f"    parser.parse_args({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    if argv in (["--help"], ["mqtt", "pub", "--help"]):  # the two the benchmark holds to 35 ms
        assert "typing" not in loaded  # 4 ms and more with what it pulls in


def test_the_listing_says_what_each_command_says_of_itself() -> None:
    """The lazy listing's one-line help is the command's own (the table cannot drift)."""
    full = build_parser()
    actions = [a for a in full._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
    helps = {c.dest: c.help for a in actions for c in a._choices_actions}  # type: ignore[attr-defined]
    assert {name: helps[name] for name in COMMANDS} == {name: text for name, (_, _, text) in COMMANDS.items()}
