"""Kill a real ``zoo fit`` with SIGKILL, resume it, and compare with the same run never interrupted (issue 21).

One uninterrupted reference run, then N trials. Each trial starts the same ``zoo fit`` and SIGKILLs it at a
random moment, cycling through four kinds: inside a training step, inside validation, during a checkpoint write
(``scripts.reproductions.kill_points.KillAt``, the process kills itself there), and at a random time sent from
outside; then it runs the same command with ``--ckpt_path last`` until the end. The final ``last.ckpt`` of each
trial is compared with the reference's: every weight and buffer, the optimizer and LR-scheduler states, the epoch and
step, the best score of the ``ZooCheckpoint``, and the logged metrics (``metrics.csv`` of a CSV logger, row by row).

    OMP_NUM_THREADS=1 python -m scripts.reproductions.kill_resume_trials --trials 20 --out runs/kill_resume

prints one line per trial and "k/N identical" with the largest difference found. The default run is a small
BookCNN (batch norm, dropout, a step LR schedule) on the embedded MNIST-mini with the batch-wise ``augment``
jitter, 4 epochs of 25 steps, ``last.ckpt`` every 7 steps: every source of randomness the zoo restores is used.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

REPO = Path(__file__).resolve().parents[2]
#: the callback that kills its own run, importable by the `zoo fit` subprocesses (they run from ``REPO``)
KILL_AT = "scripts.reproductions.kill_points.KillAt"
KINDS = ("train_step", "validation", "checkpoint_write", "random_time")
DEFAULT_RUN = [
    "-c", "lenet_mnist_mini", "--model", "zoo.models.BookCNN", "--model.init_args.channels", "[4,8,8,16]",
    "--model.init_args.hidden", "[32]", "--model.init_args.dropout", "0.3", "--model.init_args.lr_step_gamma", "0.9",
    "--data.init_args.augment", "true",
]


def fit_command(run: list[str], root: Path, epochs: int, every_n_steps: int) -> list[str]:
    return [
        sys.executable, "-m", "zoo", "fit", *run, "--trainer.max_epochs", str(epochs),
        "--trainer.default_root_dir", str(root), "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir", str(root), "--trainer.logger.flush_logs_every_n_steps", "1000",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--checkpoint.last_every_n_steps", str(every_n_steps), "--test_after_fit", "false",
    ]


def environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


def run_to_end(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=environment(), cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {proc.returncode}; see {log}")
    return time.perf_counter() - started


def killed_run(command: list[str], kind: str, rng: random.Random, reference_seconds: float, steps: int,
               log: Path) -> str:
    """Start ``command`` and SIGKILL it at a random moment of ``kind``; returns where the kill was aimed."""
    if kind == "random_time":
        delay = rng.uniform(0.6, 1.0) * reference_seconds  # the first ~half is start-up
        with open(log, "a") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment(), cwd=REPO)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return f"random_time {delay:.1f}s" + (" (finished first)" if proc.returncode == 0 else "")
    count = {"train_step": rng.randint(1, steps), "validation": rng.randint(1, 25),
             "checkpoint_write": rng.randint(1, 18)}
    extra = [f"--trainer.callbacks+={KILL_AT}", "--trainer.callbacks.moment", kind,
             "--trainer.callbacks.count", str(count[kind]), "--trainer.callbacks.delay_ms", f"{rng.uniform(0, 30):.1f}"]
    with open(log, "a") as out:
        status = subprocess.run(command + extra, stdout=out, stderr=subprocess.STDOUT, env=environment(), cwd=REPO)
    return f"{kind} #{count[kind]}" + (" (finished first)" if status.returncode == 0 else "")


def last_checkpoint(root: Path) -> Path:
    found = sorted(root.glob("lightning_logs/*/checkpoints/last.ckpt"))
    if len(found) != 1:
        raise SystemExit(f"expected one run directory with last.ckpt under {root}, found {found}")
    return found[0]


def tensors_of(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts/lists into {path: leaf}."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in tensors_of(value, f"{prefix}{key}/").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, value in enumerate(tree) for k, v in tensors_of(value, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): tree}


def difference(a: Any, b: Any) -> float:
    """0 when equal; the largest absolute difference of tensors or numbers; inf for other mismatches."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return float("inf")
        if torch.equal(a, b):
            return 0.0
        return float((a.double() - b.double()).abs().max()) if a.is_floating_point() else float("inf")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b))
    return 0.0 if a == b else float("inf")


def compare(reference: Path, trial: Path) -> tuple[float, list[str]]:
    """Largest difference between two runs' final states and logged metrics, and what differs."""
    a, b = (torch.load(last_checkpoint(p), map_location="cpu", weights_only=True) for p in (reference, trial))
    parts = {
        "weights": (a["state_dict"], b["state_dict"]),
        "optimizer": (a["optimizer_states"], b["optimizer_states"]),
        "lr_schedulers": (a.get("lr_schedulers"), b.get("lr_schedulers")),
        "progress": ((a["epoch"], a["global_step"]), (b["epoch"], b["global_step"])),
        "best_score": tuple(next(v["best_model_score"] for k, v in c["callbacks"].items() if k.startswith("ZooCheckpoint"))
                            for c in (a, b)),
        "metrics.csv": tuple(metrics_rows(last_checkpoint(p).parents[1] / "metrics.csv") for p in (reference, trial)),
    }
    largest, differing = 0.0, []
    for name, (x, y) in parts.items():
        fx, fy = tensors_of(x), tensors_of(y)
        if fx.keys() != fy.keys():
            largest, differing = float("inf"), differing + [f"{name} (keys differ)"]
            continue
        diff = max((difference(fx[k], fy[k]) for k in fx), default=0.0)
        if diff:
            differing.append(f"{name} ({diff:.3g})")
        largest = max(largest, diff)
    return largest, differing


def metrics_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV logger's metrics.csv with numbers parsed (empty cells dropped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "kill_resume")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--every-n-steps", type=int, default=7, help="--checkpoint.last_every_n_steps of the runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--run", nargs=argparse.REMAINDER, default=None,
                        help="zoo fit arguments of the run (default: a small BookCNN on MNIST-mini, see above)")
    args = parser.parse_args(argv)
    run = args.run or DEFAULT_RUN
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    rng = random.Random(args.seed)

    reference = args.out / "reference"
    seconds = run_to_end(fit_command(run, reference, args.epochs, args.every_n_steps), args.out / "reference.log")
    steps = int(torch.load(last_checkpoint(reference), map_location="cpu", weights_only=True)["global_step"])
    print(f"reference: {steps} steps in {seconds:.1f}s ({' '.join(run)})")

    identical, largest = 0, 0.0
    for trial in range(args.trials):
        kind = KINDS[trial % len(KINDS)]
        root = args.out / f"trial_{trial:02d}"
        log = args.out / f"trial_{trial:02d}.log"
        command = fit_command(run, root, args.epochs, args.every_n_steps)
        aimed = killed_run(command, kind, rng, seconds, steps, log)
        last = next(root.glob("lightning_logs/*/checkpoints/last.ckpt"), None)
        saved = torch.load(last, map_location="cpu", weights_only=True)["global_step"] if last else None
        partial = any(root.rglob("*.partial"))
        run_to_end(command + ["--ckpt_path", "last"], log)
        diff, differing = compare(reference, root)
        identical += diff == 0.0
        largest = max(largest, diff)
        where = f"resumed from step {saved}" if saved is not None else "no checkpoint yet: restarted"
        print(f"trial {trial:2d}: killed at {aimed:<32} {where}{', a .partial file left' if partial else ''}: "
              f"{'identical' if diff == 0 else 'DIFFERS in ' + ', '.join(differing)}", flush=True)
    print(f"{identical}/{args.trials} identical (weights, optimizer and scheduler states, progress, best score, "
          f"metrics.csv); largest difference {largest:.3g}")
    return 0 if identical == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
