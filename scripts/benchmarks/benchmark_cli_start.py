"""Start-up time of the light ``zoo`` commands, against importing Lightning, in fresh processes taking turns.

Each command runs ``--repeats`` times as a new ``python -m zoo ...`` process (the interpreter start included, as a
user sees it); the baseline is ``python -c "import lightning"``, what every command paid before the CLI was split.
Prints the median wall time, the spread (min-max) and the ratio to the baseline.

    python -m scripts.benchmarks.benchmark_cli_start [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "zoo --help": ["-m", "zoo", "--help"],
    "zoo models": ["-m", "zoo", "models"],
    "zoo evaluate --help": ["-m", "zoo", "evaluate", "--help"],
    "zoo export --help": ["-m", "zoo", "export", "--help"],
    "baseline: import lightning": ["-c", "import lightning"],
}


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, command in COMMANDS.items():  # warm the file cache once
        seconds(command)
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    baseline = statistics.median(times["baseline: import lightning"])
    print(f"| command | median s | spread s | / import lightning |   ({args.repeats} runs each, in turns)")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {min(values):.3f}-{max(values):.3f} | {median / baseline:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
