#!/usr/bin/env python3
"""Start-up time of the command line against bare Python, side by side in one process.

Runs `python -c pass`, `python -m quecmqtt --help` and `python -m quecmqtt mqtt pub --help`
in turn, `--runs` times each (interleaved, so a busy machine slows all of them alike), and
prints each median and its difference to bare Python. The target: a --help within 35 ms.

    python tools/bench_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": ["-c", "pass"],
    "quecmqtt --help": ["-m", "quecmqtt", "--help"],
    "quecmqtt mqtt pub --help": ["-m", "quecmqtt", "mqtt", "pub", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each (default 30)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, argv in CASES.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name.startswith("python") else f"   (+{(median - bare) * 1000:.1f} ms over bare Python)"
        print(f"{name:28} median {median * 1000:6.1f} ms{extra}")


if __name__ == "__main__":
    main()
