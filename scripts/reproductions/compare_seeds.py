"""Compare two zoo entries, or two settings of one entry, over seeds (the README's ComplexNet/RealNet table).

Each side is trained with ``zoo fit -c <entry> --seed_everything <s> --test_after_fit true`` for every seed and
tested at its best checkpoint. The script prints a Markdown table: per seed the best validation score and the test
metric, per side mean ± SD and mean fit time; then the difference of the means with its standard error (unpaired,
and paired by seed) and the number of seeds the first side wins.

    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.compare_seeds \\
        complex_net_fashion_mnist real_net_fashion_mnist --seeds 0-9 --jobs 2 --out runs/complex_vs_real_fashion
    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.compare_seeds complex_net_mnist5k real_net_mnist5k \\
        --seeds 0-2 --out runs/longer -- --trainer.max_epochs 60     # arguments after -- go to every run
    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.compare_seeds \\
        complex_net_fashion_mnist complex_net_fashion_mnist \\
        --names nesterov momentum --args-a="--model.init_args.nesterov true" --seeds 0-2 --out runs/nesterov

Run ``s`` of a side named ``name`` (the entry, unless ``--names`` says otherwise) trains in ``<out>/<name>/seed<s>/``
(its output in ``fit.log``) and its results are kept in ``<out>/<name>/seed<s>.json``. A run with results is not
trained again, so an interrupted study resumes where it stopped; a study directory refuses to mix runs made with
other ``zoo fit`` arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from scripts.reproductions.results_table import format_value, is_accuracy
from zoo import registry


@dataclass
class Comparison:
    """Difference of the mean metric of two equally seeded groups of runs, ``a - b``."""

    difference: float
    standard_error: float  # of the difference of two independent means
    paired_standard_error: float  # of the mean of the per-seed differences
    wins: int  # seeds where a is better
    ties: int


def compare(a: list[float], b: list[float], higher_is_better: bool = True) -> Comparison:
    """Compare the per-seed results ``a`` and ``b`` (same seeds, same order; at least two seeds)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two equally long lists of at least 2 results, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b)]
    sign = 1 if higher_is_better else -1
    return Comparison(
        difference=statistics.fmean(a) - statistics.fmean(b),
        standard_error=math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b)),
        paired_standard_error=statistics.stdev(differences) / math.sqrt(len(a)),
        wins=sum(sign * d > 0 for d in differences),
        ties=sum(d == 0 for d in differences),
    )


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists mix (``"0-2,9"``)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            seeds.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like 0-9 or 0,3,7, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and at least one, got {text!r}")
    return seeds


class StudyError(RuntimeError):
    """A study directory or a run cannot be used as asked; the message says why and what to do."""


@dataclass
class Side:
    """One side of the comparison: a name (its directory), an entry and its own ``zoo fit`` arguments."""

    name: str
    entry: str
    args: list[str]


@dataclass
class Run:
    side: Side
    seed: int
    out: Path
    fit_args: list[str]  # the side's arguments, then the study's shared ones

    @property
    def directory(self) -> Path:
        return self.out / self.side.name / f"seed{self.seed}"

    @property
    def results_path(self) -> Path:
        return self.out / self.side.name / f"seed{self.seed}.json"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "zoo", "fit", "-c", self.side.entry, "--seed_everything", str(self.seed),
            "--test_after_fit", "true", "--trainer.default_root_dir", str(self.directory),
            "--trainer.enable_progress_bar", "false", *self.fit_args,
        ]

    def stored(self) -> Optional[dict]:
        """The kept results, or None when the run has not finished; refuses results made with other arguments."""
        if not self.results_path.exists():
            return None
        results = json.loads(self.results_path.read_text())
        if results.get("fit_args") != self.fit_args:
            raise StudyError(
                f"{self.results_path} was made with the zoo fit arguments {results.get('fit_args')}, not "
                f"{self.fit_args}: give another --out, or delete that file to train the run again"
            )
        return results

    def train(self, threads: int) -> dict:
        """Train and test the run in a subprocess, keep its results, and return them."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "fit.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with open(log, "w") as output:
            code = subprocess.run(self.command(), stdout=output, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            raise StudyError(f"{self.side.name} seed {self.seed} failed with exit status {code}: see {log}")
        written = sorted(self.directory.rglob("results.json"), key=lambda p: p.stat().st_mtime)
        if not written:
            raise StudyError(f"{self.side.name} seed {self.seed} wrote no results.json: see {log}")
        results = {**json.loads(written[-1].read_text()), "fit_args": self.fit_args, "log": str(log)}
        self.results_path.write_text(json.dumps(results, indent=2) + "\n")
        return results


def run_study(runs: list[Run], jobs: int, threads: int) -> dict[tuple[str, int], dict]:
    """Results of every run that finished, keyed by (side name, seed); trains the missing ones, ``jobs`` at a time."""
    results = {(run.side.name, run.seed): run.stored() for run in runs}
    missing = [run for run in runs if results[(run.side.name, run.seed)] is None]
    print(f"{len(runs) - len(missing)} of {len(runs)} runs already done; training {len(missing)}", flush=True)
    failures = []

    def train(run: Run) -> None:
        try:
            results[(run.side.name, run.seed)] = run.train(threads)
            print(f"done: {run.side.name} seed {run.seed}", flush=True)
        except StudyError as error:
            failures.append(str(error))
            print(f"FAILED: {error}", flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(train, missing))
    if failures:
        raise StudyError("some runs failed:\n" + "\n".join(failures))
    return {key: value for key, value in results.items() if value is not None}


def metric_of(results: dict, metric: str, run: str) -> float:
    if metric not in results["test"]:
        known = sorted(results["test"])
        raise StudyError(f"{run} has no test metric {metric!r}; it has {known}: pass one of them with --metric")
    return float(results["test"][metric])


def format_difference(metric: str, value: float, sign: bool = False) -> str:
    """A difference of two metric values: accuracies in percentage points, others as numbers."""
    if is_accuracy(metric):
        return f"{100 * value:{'+' if sign else ''}.2f} points"
    return f"{value:{'+' if sign else ''}.4g}"


def print_tables(sides: list[Side], seeds: list[int], results: dict, metric: str, higher_is_better: bool) -> None:
    for side in sides:
        if side.name != side.entry or side.args:
            print(f"{side.name} = zoo fit -c {side.entry} {shlex.join(side.args)}".rstrip())
    scores = {}
    print(f"| side | seeds | best validation score (per seed) | {metric} (per seed) | mean ± SD | mean fit time |")
    print("|---|---|---|---|---|---|")
    for side in sides:
        runs = [results[(side.name, seed)] for seed in seeds]
        scores[side.name] = [metric_of(r, metric, f"{side.name} seed {r['seed']}") for r in runs]
        best = ", ".join(f"{r['best_score']:.4f}" if r["best_score"] is not None else "-" for r in runs)
        per_seed = ", ".join(format_value(metric, value) for value in scores[side.name])
        spread = f" ± {format_value(metric, statistics.stdev(scores[side.name]))}" if len(seeds) > 1 else ""
        monitor = runs[0]["monitor"] or "none"
        fit_time = statistics.fmean(r["fit_seconds"] for r in runs)
        print(f"| {side.name} | {len(seeds)} | {monitor}: {best} | {per_seed} | "
              f"{format_value(metric, statistics.fmean(scores[side.name]))}{spread} | {fit_time:.0f} s |")
    if len(seeds) < 2:
        return
    a, b = (side.name for side in sides)
    result = compare(scores[a], scores[b], higher_is_better)
    print()
    print(f"| {a} - {b} | standard error | paired by seed | seeds won by {a} |")
    print("|---|---|---|---|")
    print(f"| {format_difference(metric, result.difference, sign=True)} | "
          f"{format_difference(metric, result.standard_error)} | "
          f"{format_difference(metric, result.paired_standard_error)} | {result.wins} of {len(seeds)}"
          f"{f' ({result.ties} ties)' if result.ties else ''} |")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fit_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own_args = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", nargs=2, metavar="ENTRY", help="two zoo entries, or one twice with --args-a/-b")
    parser.add_argument(
        "--args-a", default="", help="the first side's own zoo fit arguments as one string: --args-a='--model.x 1'"
    )
    parser.add_argument("--args-b", default="", help="the second side's own zoo fit arguments")
    parser.add_argument("--names", nargs=2, metavar="NAME", help="names of the two sides (default: the entries)")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"), help="e.g. 0-9 or 0,3,7")
    parser.add_argument("--out", type=Path, required=True, help="study directory (runs and results)")
    parser.add_argument("--metric", default="test/acc", help="test metric to compare (default test/acc)")
    parser.add_argument("--lower-is-better", action="store_true", help="for metrics such as test/loss")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument("--threads", type=int, default=None, help="threads per run (default: cores / jobs)")
    args = parser.parse_args(own_args)
    sides = [
        Side(name, entry, shlex.split(side_args))
        for name, entry, side_args in zip(args.names or args.entries, args.entries, (args.args_a, args.args_b))
    ]
    if sides[0].entry == sides[1].entry and sides[0].args == sides[1].args:
        parser.error(f"both sides are {sides[0].entry!r} with the same arguments: give them different --args-a/-b")
    if sides[0].name == sides[1].name:
        parser.error(f"both sides are named {sides[0].name!r}: name them with --names, e.g. --names new baseline")
    for side in sides:
        if not re.fullmatch(r"[\w.+-]+", side.name):
            parser.error(f"a side's name is a directory name: letters, digits, '_', '.', '+', '-'; got {side.name!r}")
    for entry in args.entries:
        try:
            registry.get(entry)  # before anything is trained
        except registry.UnknownEntryError as error:
            parser.error(str(error))
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    runs = [Run(side, seed, args.out, side.args + fit_args) for seed in args.seeds for side in sides]
    try:
        results = run_study(runs, args.jobs, threads)
        print_tables(sides, args.seeds, results, args.metric, not args.lower_is_better)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
