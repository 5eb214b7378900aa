"""How tests start child processes: with the signal dispositions a fresh process has.

A test run started from a shell that ignores SIGINT (``trap '' INT``, some CI runners, nohup)
passes that on to every child, and a child that ignores SIGINT never sees the Ctrl-C a test
sends it. Children are started with SIGINT, SIGTERM, SIGHUP and SIGQUIT back at their
defaults, so a test means the same thing wherever it runs."""

from __future__ import annotations

import signal
from typing import Any

import pexpect

RESET = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE)


def default_signals() -> None:
    """A `preexec_fn`: runs in the child between fork and exec."""
    for sig in RESET:
        signal.signal(sig, signal.SIG_DFL)


def spawn_child(command: str, args: list[str] | None = None, **options: Any) -> pexpect.spawn:
    """`pexpect.spawn` with default signal dispositions in the child."""
    return pexpect.spawn(command, args or [], preexec_fn=default_signals, **options)
