"""`pip install .` as a user does it (issue 13), offline: the package built from a copy of the
checkout into a fresh directory, then the installed `quecmqtt` command run from elsewhere:
`--version`, `provision --help`, `demo` (the certificates and profiles are package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import quecmqtt

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def test_pip_install_then_the_command_works(tmp_path: Path) -> None:
    before = sorted(p.name for p in ROOT.iterdir())
    source, target, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "work"
    shutil.copytree(ROOT, source, ignore=NOT_SHIPPED)
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("QUECMQTT_DEBUG", None)

    def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(target / "bin" / "quecmqtt"), *argv], cwd=elsewhere, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    version = run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"quecmqtt {quecmqtt.__version__}")
    where = subprocess.run(
        [sys.executable, "-c", "import quecmqtt; print(quecmqtt.__file__)"], cwd=elsewhere, env=env,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(target)), where  # the installed copy, not the checkout

    provision = run("provision", "--help")
    assert provision.returncode == 0 and "--product-key PK" in provision.stdout
    assert "tools/" not in provision.stdout and "docs/" not in provision.stdout  # no repository paths

    demo = run("demo", timeout=240)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "all 10 steps succeeded" in demo.stdout + demo.stderr
    assert sorted(p.name for p in ROOT.iterdir()) == before  # built in the copy: the checkout untouched
