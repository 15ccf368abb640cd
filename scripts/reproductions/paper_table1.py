"""Table 1 of "How Can We Be So Dense?" (Ahmad & Scheinkman, 2019) as the zoo measures it, beside the paper's.

For Dense/Sparse CNN-1 and CNN-2 on full MNIST, every seed's run (their configs train on all 60,000 images with
no validation split, as the authors' harness) is measured on the real test set: clean accuracy and the *noise
score* (correct test images summed over the paper protocol's 11 noise levels, eta = 0, 0.05, ..., 0.5; see
``scripts/reproductions/noise_robustness.py``). The table gives mean +- SD over the seeds, the per-seed figures,
and the paper's means (10 seeds there). Which epoch of a run is measured is ``--statistic``:

- ``last`` (the default, the zoo's figure): the last epoch; sample SD.
- ``best_test`` (the authors' figure, their ``test_score_table.py``): per seed, the epoch with the best clean
  *test* accuracy (the first one on ties, as ``np.argmax``) and that epoch's noise score; population SD
  (``np.std``). The epoch is chosen on the test set, so this figure is biased upwards: it is here to compare like
  with like and to measure that bias, not to estimate accuracy on unseen data.

Runs live in ``<runs>/<entry>/seed<k>/`` (each a ``zoo fit -c <entry> --seed_everything <k>`` run directory
with its ``results.json``). ``--fit`` trains the missing seeds first, one after the other, keeping every epoch's
checkpoint (``epoch-<e>-<step>.ckpt``, which ``best_test`` reads); finished ones are kept, and each checkpoint's
figures are kept in ``table1_figures.json`` beside it. Examples::

    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.paper_table1 --runs runs/table1 --seeds 0-4 --fit
    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.paper_table1 --runs runs/table1 --seeds 0-4 --markdown
    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.paper_table1 --runs runs/table1 --seeds 0-4 \\
        --statistic best_test
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from scripts.reproductions.compare_seeds import parse_seeds
from scripts.reproductions.noise_robustness import PAPER_LEVELS, correct_on_noisy_test_set, from_checkpoint

#: entry -> (name in the paper, the paper's test accuracy %, the paper's noise score), Table 1 means over 10 seeds.
PAPER_TABLE1 = {
    "dense_cnn1_mnist": ("Dense CNN-1", 99.14, 74_569),
    "sparse_cnn1_mnist": ("Sparse CNN-1", 98.41, 100_306),
    "dense_cnn2_mnist": ("Dense CNN-2", 99.31, 97_040),
    "sparse_cnn2_mnist": ("Sparse CNN-2", 99.09, 103_764),
}


def run_dir(runs: Path, entry: str, seed: int) -> Path:
    return runs / entry / f"seed{seed}"


def results_of(directory: Path) -> Optional[dict[str, Any]]:
    """The newest ``results.json`` of a run directory, or ``None`` when the run has not finished."""
    found = sorted(directory.glob("**/results.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else None


#: ``zoo fit`` arguments that keep every epoch's checkpoint, as ``epoch-<e>-<step>.ckpt``.
EVERY_EPOCH_CHECKPOINT = ["--checkpoint.save_top_k", "-1", "--checkpoint.filename", "epoch-{epoch}-{step}"]

#: ``--statistic`` -> how the SD over seeds is taken (the zoo's sample SD; the authors' ``np.std``).
STATISTICS = {"last": statistics.stdev, "best_test": statistics.pstdev}


def fit_seed(runs: Path, entry: str, seed: int, extra: list[str]) -> None:
    command = [sys.executable, "-m", "zoo", "fit", "-c", entry, "--seed_everything", str(seed),
               "--trainer.default_root_dir", str(run_dir(runs, entry, seed)), "--trainer.enable_progress_bar",
               "false", "--test_after_fit", "true", *EVERY_EPOCH_CHECKPOINT, *extra]
    print("running:", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def epoch_checkpoints(results: dict[str, Any]) -> list[Path]:
    """Every epoch's checkpoint of a run, ``epoch-<e>-<step>.ckpt`` beside its last checkpoint, in epoch order."""
    directory = Path(results["last_checkpoint"]).parent
    return sorted(directory.glob("epoch-*-*.ckpt"), key=epoch_of)


def epoch_of(checkpoint: Path) -> int:
    """The epoch of ``epoch-<e>-<step>.ckpt``."""
    return int(checkpoint.name.split("-")[1])


class MeasuredCheckpoints:
    """The figures of a run's checkpoints, each measured once and kept in ``table1_figures.json``."""

    def __init__(self, entry: str, directory: Path) -> None:
        self.entry, self.path = entry, directory / "table1_figures.json"
        self.figures: dict[str, dict[str, float]] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, ckpt_path: str, with_noise: bool = True) -> dict[str, float]:
        """Clean test accuracy (%) of one checkpoint, and its noise score when ``with_noise``."""
        known = self.figures.get(ckpt_path, {})
        if "acc" in known and ("noise_score" in known or not with_noise):
            return known
        subject = from_checkpoint(self.entry, ckpt_path)
        levels = PAPER_LEVELS if with_noise else [0.0]
        correct = {eta: correct_on_noisy_test_set(subject, eta, "paper") for eta in levels}
        clean, total = correct[0.0]
        figures = {"acc": 100 * clean / total}
        if with_noise:
            figures["noise_score"] = sum(c for c, _ in correct.values())
        self.figures[ckpt_path] = figures
        self.path.write_text(json.dumps(self.figures, indent=1) + "\n")
        return figures


def seed_figures(entry: str, directory: Path, results: dict[str, Any], statistic: str) -> dict[str, float]:
    """One seed's test accuracy and noise score under ``statistic`` (see the module docstring); ``best_test``
    adds ``epoch`` (the one chosen) and ``last_acc`` (the last epoch's accuracy)."""
    measured = MeasuredCheckpoints(entry, directory)
    if statistic == "last":
        return measured.get(results.get("best_checkpoint") or results["last_checkpoint"])
    epochs = epoch_checkpoints(results)
    if not epochs:
        raise SystemExit(
            f"{directory}: no epoch-<e>-<step>.ckpt files, and --statistic best_test needs every epoch's checkpoint: "
            "train the seed with this script's --fit (it keeps them), or use --statistic last"
        )
    accuracies = [measured.get(str(path), with_noise=False)["acc"] for path in epochs]
    print(f"  test acc per epoch: {', '.join(f'{a:.2f}' for a in accuracies)}", flush=True)
    best = epochs[accuracies.index(max(accuracies))]
    return {**measured.get(str(best)), "epoch": epoch_of(best), "last_acc": accuracies[-1]}


def spread(values: list[float], sd: Callable[[list[float]], float] = statistics.stdev, digits: int = 2) -> str:
    """``mean +- SD`` (one value alone when there is one)."""
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{statistics.mean(values):,.{digits}f} +- {sd(values):,.{digits}f}"


def per_seed(figures: dict[str, float]) -> str:
    text = f"{figures['acc']:.2f} / {figures['noise_score']:,.0f}"
    return text + (f" (epoch {figures['epoch']})" if "epoch" in figures else "")


def table(measured: dict[str, list[dict[str, float]]], markdown: bool, statistic: str = "last",
          entries: Iterable[str] = tuple(PAPER_TABLE1)) -> str:
    """One row per entry of ``entries``: ours (mean +- SD, per seed) beside the paper's."""
    sd = STATISTICS[statistic]
    header = ["net", "seeds", "test acc % (ours)", "paper", "noise score (ours)", "paper", "per seed: acc / score"]
    rows = []
    for entry in entries:
        name, paper_acc, paper_score = PAPER_TABLE1[entry]
        found = measured.get(entry, [])
        if not found:
            rows.append([name, "0", "-", f"{paper_acc:.2f}", "-", f"{paper_score:,}", "not trained"])
            continue
        rows.append([name, str(len(found)), spread([m["acc"] for m in found], sd), f"{paper_acc:.2f}",
                     spread([m["noise_score"] for m in found], sd, digits=0), f"{paper_score:,}",
                     ", ".join(per_seed(m) for m in found)])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="directory of <entry>/seed<k>/ run directories")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-2"), help="e.g. 0-2 or 0,3,7")
    parser.add_argument("--entries", nargs="+", default=list(PAPER_TABLE1), choices=list(PAPER_TABLE1))
    parser.add_argument("--statistic", choices=list(STATISTICS), default="last",
                        help="last: each seed's last epoch (sample SD); best_test: each seed's best test epoch, as "
                             "the paper's Table 1 (population SD)")
    parser.add_argument("--fit", action="store_true", help="train the seeds that have no results.json yet")
    parser.add_argument("--fit_args", nargs=argparse.REMAINDER, default=[], help="extra `zoo fit` arguments")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    args = parser.parse_args(argv)
    measured: dict[str, list[dict[str, float]]] = {}
    for entry in args.entries:
        for seed in args.seeds:
            directory = run_dir(args.runs, entry, seed)
            results = results_of(directory)
            if results is None and args.fit:
                fit_seed(args.runs, entry, seed, args.fit_args)
                results = results_of(directory)
            if results is None or not results.get("last_checkpoint"):
                print(f"{entry} seed {seed}: no finished run in {directory} (skipped)")
                continue
            print(f"{entry} seed {seed}:", flush=True)
            figures = seed_figures(entry, directory, results, args.statistic)
            print(f"  test acc {figures['acc']:.2f} %, noise score {figures['noise_score']:,}"
                  + (f" (epoch {figures['epoch']}; last epoch {figures['last_acc']:.2f} %)" if "epoch" in figures
                     else ""), flush=True)
            measured.setdefault(entry, []).append(figures)
    kind = {"last": "each seed's last epoch, sample SD",
            "best_test": "each seed's best test epoch as the paper's, population SD"}[args.statistic]
    print(f"\nTable 1 (paper: means of 10 seeds at their best test epoch; ours: mean +- SD over the seeds found, "
          f"{kind}), MNIST test set, noise score = correct images summed over eta = 0, 0.05, ..., 0.5 (paper protocol)")
    print(table(measured, args.markdown, args.statistic, args.entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
