"""How long the CLI and the package take to start, against the bare interpreter.

    .venv/bin/python benchmarks/startup.py [--runs 10]

Each command runs in a fresh process; the table shows the median and best wall time and the
peak resident memory. `python -c pass` is the floor no Python CLI can go under.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).with_name("embedbox"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import typer (the CLI framework)": [sys.executable, "-c", "import typer, rich.console"],
    "import embedbox": [sys.executable, "-c", "import embedbox"],
    "embedbox --help": [CLI, "--help"],
    "embedbox embed --help": [CLI, "embed", "--help"],
    "import torch (what --help no longer pays)": [sys.executable, "-c", "import torch"],
}


def measure(cmd: list[str], runs: int) -> tuple[float, float, float]:
    """(median s, best s, peak RSS MiB) over `runs` fresh processes."""
    times, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        if status:
            raise SystemExit(f"{cmd} failed with status {status}")
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), min(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"{'command':45} {'median s':>9} {'best s':>7} {'peak RSS MiB':>13}")
    for label, cmd in COMMANDS.items():
        median, best, peak = measure(cmd, args.runs)
        print(f"{label:45} {median:9.3f} {best:7.3f} {peak:13.0f}")


if __name__ == "__main__":
    main()
