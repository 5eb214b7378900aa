"""Bad command lines (issue 13): each ends with the documented exit status (2 for a command
line that cannot work, 1 for a failure), a message in the user's terms, and no traceback.
The table grows with the issue; every row failed (a traceback, or accepted) on b32764a
unless marked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "fixtures" / "seed" / "4.1.3-topic.txt"

# (argv, exit status, what the message must say)
BAD: list[tuple[list[str], int, str]] = [
    (["cloud", "--mqtt-port", "99999"], 2, "a port is 1-65535"),
    (["cloud", "--https-port", "-1"], 2, "a port is 1-65535"),
    (["cloud", "--mqtt-port", "http"], 2, "want a port number"),
    (["emulate", "--rtt", "-1"], 2, "want 0 or more seconds"),
    (["emulate", "--rtt", "nan"], 2, "want 0 or more seconds"),
    (["emulate", "--imei", "abc"], 2, "an IMEI is 15 digits"),
    (["emulate", "--imei", "866425030001234"], 2, "Luhn check digit"),
    (["emulate", "--profile", "/nonexistent/p.json"], 2, "cannot read profile"),
    (["info", "--port", "/dev/null", "--baud", "0"], 2, "want 1 or more"),
    (["info", "--port", f"replay:{SEED}"], 1, "ReplayMismatch"),
    (["doctor", "--port", "/nonexistent/ttyUSB9"], 2, "no such device"),
    # a port that is no serial port: no empty transcript left, no "recorded 0 bytes"
    (["record", "--port", "/dev/null", "--output", "session.txt"], 1, "cannot open /dev/null"),
]


@pytest.mark.parametrize(("argv", "status", "message"), BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_a_bad_command_line_gets_one_clear_message(argv: list[str], status: int, message: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "QUECMQTT_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-m", "quecmqtt", *argv], cwd=tmp_path, env=env, capture_output=True, timeout=30
    )
    err = done.stderr.decode(errors="replace")
    assert done.returncode == status, (done.returncode, err)
    assert message in err, err
    assert "Traceback" not in err and "QUECMQTT_DEBUG" not in err, err
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    assert "recorded 0 bytes" not in done.stdout.decode(errors="replace")
