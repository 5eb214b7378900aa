#!/usr/bin/env python3
"""Start-up time of the command line against bare Python, side by side in one process.

Runs `python -c pass`, `quecmqtt --help` and `quecmqtt mqtt pub --help` (the entry point as
the installed script calls it) in turn, `--runs` times each (interleaved, so a busy machine
slows all of them alike), and prints each median and its difference to bare Python. The target: a --help within 35 ms.

    python tools/bench_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

# what the installed `quecmqtt` script runs (pip writes it so); `python -m quecmqtt` costs
# runpy's imports on top (about 3 ms)
ENTRY = "import sys; from quecmqtt.cli import main; sys.exit(main())"
CASES = {
    "python -c pass": ["-c", "pass"],
    "quecmqtt --help": ["-c", ENTRY, "--help"],
    "quecmqtt mqtt pub --help": ["-c", ENTRY, "mqtt", "pub", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each (default 30)")
    args = parser.parse_args()
    # as installed packages run: with their bytecode cached (a PYTHONDONTWRITEBYTECODE in the
    # environment would make every run compile every module again); one warm-up run writes it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in CASES.values():
        subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, check=True, env=env)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, argv in CASES.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, check=True, env=env)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name.startswith("python") else f"   (+{(median - bare) * 1000:.1f} ms over bare Python)"
        print(f"{name:28} median {median * 1000:6.1f} ms{extra}")


if __name__ == "__main__":
    main()
