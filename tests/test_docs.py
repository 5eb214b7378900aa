"""The examples in README.md and docs/ stay true: every `quecmqtt ...` command line parses
with the real parser (and those that need no hardware run and succeed), and every Python
example compiles with its imports resolving to real names (tests/test_docs_run.py runs them)."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quecmqtt.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
RUNNABLE = {("aliyun", "sign"), ("decode",)}  # need neither a module nor a network


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for match in FENCE.finditer(path.read_text(encoding="utf-8")):
            if match.group(1) == lang:
                out.append((path.name, match.group(2)))
    return out


def shell_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        line = re.split(r"\s{2,}#", line)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def quecmqtt_argv(line: str) -> list[str] | None:
    words = shlex.split(line)
    for prefix in (["quecmqtt"], ["tools/run", "python", "-m", "quecmqtt"]):
        if words[: len(prefix)] == prefix:
            return words[len(prefix) :]
    return None


COMMANDS = [
    (name, line, argv)
    for name, text in blocks("sh")
    for line in shell_lines(text)
    if (argv := quecmqtt_argv(line)) is not None
]


def test_the_docs_have_examples() -> None:
    assert len(COMMANDS) >= 20 and len(blocks("python")) >= 5
    assert any(argv[0] == "provision" for _, _, argv in COMMANDS)


@pytest.mark.parametrize(("doc", "line", "argv"), COMMANDS, ids=[f"{d}:{ln[:40]}" for d, ln, _ in COMMANDS])
def test_command_lines_parse(doc: str, line: str, argv: list[str], tmp_path: Path) -> None:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{doc}: {line}\n{stderr.getvalue()}")
    assert getattr(args, "func", None) is not None, f"{doc}: {line} names no command"
    key = tuple(argv[:2]) if argv[0] == "aliyun" else (argv[0],)
    if key not in RUNNABLE or (key == ("decode",) and not (ROOT / argv[-1]).exists()):
        return  # a synopsis (decode FILE) or a command that needs a module
    # secrets the example names as files or variables get stand-ins, as a user would provide
    env = dict(os.environ)
    for option, value in itertools.pairwise(argv):
        if option.endswith("-file"):
            (tmp_path / value).write_text("stand-in-secret\n")
        elif option.endswith("-env"):
            env[value] = "stand-in-secret"
    result = subprocess.run(
        [sys.executable, "-m", "quecmqtt", *[a if not (tmp_path / a).exists() else str(tmp_path / a) for a in argv]],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 0, f"{doc}: {line}\n{result.stderr}"


@pytest.mark.parametrize(("doc", "source"), blocks("python"), ids=[d for d, _ in blocks("python")])
def test_python_examples_compile_and_import(doc: str, source: str) -> None:
    tree = compile(source, doc, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(tree, ast.Module)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quecmqtt"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                    f"{doc}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("quecmqtt"):
                    importlib.import_module(alias.name)


def test_the_docs_are_self_contained() -> None:
    """Nothing points outside the repository (the project's shared notes are not shipped), and
    every relative link names a file that exists."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert "reference/" not in text and "../shared" not in text, path.name
        for target in re.findall(r"\]\(([\w./-]+\.\w+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{path.name}: {target}"


def test_no_help_points_at_the_repository() -> None:
    """A pip user has no docs/, tools/ or fixtures/: --help of every command stands alone."""
    from quecmqtt.cli import COMMANDS

    def helps(parser: argparse.ArgumentParser) -> Iterator[str]:
        yield parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from helps(sub)

    for name in COMMANDS:
        for text in helps(build_parser([name])):
            assert not re.search(r"\b(docs|tools|fixtures|tests)/", text), f"{name}: {text}"
