#!/usr/bin/env python3
"""`quecmqtt provision` from a checkout, without installing: the same command line, the same
module (`quecmqtt.cli.provision`), importable as before."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quecmqtt.cli.provision import Report, ReportError, Row, main, parse_args, run_provision

__all__ = ["Report", "ReportError", "Row", "main", "parse_args", "run_provision"]

if __name__ == "__main__":
    sys.exit(run_provision(parse_args()))
