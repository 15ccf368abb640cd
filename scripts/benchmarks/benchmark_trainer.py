"""Training-loop overhead: samples/s of the ``zoo fit`` path against a plain PyTorch loop over the same batches.

For each case (a zoo entry and a batch size), the model, the Trainer and its callbacks are built exactly as
``zoo fit -c <entry>`` builds them (``ZooCLI(run=False)``: the zoo's checkpoint callback writing best + last,
TensorBoard logger, progress bar, validation every epoch), but the data are fixed random batches of the entry's
input shape, the same for both paths. The plain loop is what one writes by hand: ``model(x)``, the model's loss,
``zero_grad``, ``backward``, ``step`` (and ``rezero_weights`` for sparse nets, which the zoo does after each
step, and the boost-strength decay after each epoch), the epoch's learning-rate step, and the same validation pass under ``no_grad``. Both start from the same
initial weights with the optimizer of ``configure_optimizers``. The two paths take turns ``--repeats`` times in
this process, one thread by default; the table gives medians and the spread (min-max) of two ratios: the whole
fit (setup, sanity check, config and checkpoint writes, validation included) and the training steps alone (first
batch's start to last batch's end), whose difference per step is the overhead in ms.

One epoch is ``--samples`` training samples (default 54,000: one full-MNIST epoch, so the per-epoch work, a
checkpoint write and a validation pass of ``--val-fraction`` of it, weighs what it weighs in a real run).
``--profile`` runs the zoo path once more under Lightning's ``SimpleProfiler`` and prints where its time goes.

    python -m scripts.benchmarks.benchmark_trainer [--cases lenet_mnist:64,cnn_mnist:64] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from zoo import registry
from zoo.layers import decay_boost_strength, rezero_weights
from zoo.lightning_cli import ZooCLI
from zoo.models.base import Regressor, ZooModule

DEFAULT_CASES = ("lenet_mnist:64,lenet_mnist:256,cnn_mnist:64,cnn_mnist:256,sparse_cnn2_mnist:64,"
                 "complex_net_mnist5k:64,lstm_airline:64")


def build_zoo_fit(entry: str, batch_size: int, root_dir: str, extra: Iterable[str] = ()) -> ZooCLI:
    """Model, datamodule and Trainer as ``zoo fit -c <entry>`` makes them, for one epoch (nothing runs yet)."""
    args = ["-c", str(registry.get(entry).config_path), "--trainer.max_epochs", "1", "--trainer.max_steps", "-1",
            "--trainer.default_root_dir", root_dir, "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.reload_dataloaders_every_n_epochs", "0", "--data.init_args.batch_size", str(batch_size),
            *extra]
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        return ZooCLI(args=args, run=False, subclass_mode_model=True, subclass_mode_data=True,
                      save_config_kwargs={"overwrite": True})


def random_batches(model: ZooModule, n: int, batch_size: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """``n`` batches of the model's input shape (standard normal inputs; labels or real targets)."""
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(batch_size if i == 0 else s for i, s in enumerate(model.input_shape()))
    batches = []
    for _ in range(n):
        x = torch.randn(*shape, generator=generator)
        if isinstance(model, Regressor):
            y = torch.randn(batch_size, generator=generator)
        else:
            y = torch.randint(0, model.hparams.num_classes, (batch_size,), generator=generator)
        batches.append((x, y))
    return batches


def split_optimizer(configured: Any) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and the (epoch) scheduler of a ``configure_optimizers`` result."""
    if isinstance(configured, dict):
        scheduler = configured.get("lr_scheduler")
        return configured["optimizer"], scheduler["scheduler"] if isinstance(scheduler, dict) else scheduler
    return configured, None


class TrainingStepsTimer(L.Callback):
    """Wall time from the first training batch's start to the last one's end (the loop's steps, no setup)."""

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.current.completed == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def plain_fit(model: ZooModule, train: DataLoader, val: DataLoader) -> float:
    """One epoch and one validation pass, written by hand; returns the seconds of the training steps."""
    optimizer, scheduler = split_optimizer(model.configure_optimizers())
    sparse = hasattr(model, "synchronize_duty_cycles")
    model.train()
    start = time.perf_counter()
    for x, y in train:
        loss = model.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if sparse:
            rezero_weights(model)
    steps_seconds = time.perf_counter() - start
    if sparse:
        decay_boost_strength(model)
    if scheduler is not None:
        scheduler.step()
    model.eval()
    with torch.no_grad():
        for x, y in val:
            model.loss(model(x), y)
    return steps_seconds


def zoo_fit(cli: ZooCLI, model: ZooModule, train: DataLoader, val: DataLoader) -> float:
    """``trainer.fit`` of the ``zoo fit`` path; returns the seconds of the training steps."""
    timer = TrainingStepsTimer()
    cli.trainer.callbacks.append(timer)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        cli.trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
    return timer.seconds


def run_case(entry: str, batch_size: int, samples: int, val_fraction: float, repeats: int) -> dict[str, Any]:
    steps = max(1, samples // batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        first = build_zoo_fit(entry, batch_size, tmp)
        initial = copy.deepcopy(first.model.state_dict())
        template = copy.deepcopy(first.model)
        train_batches = random_batches(template, steps, batch_size, seed=0)
        val_batches = random_batches(template, max(1, int(steps * val_fraction)), batch_size, seed=1)
        train = DataLoader(train_batches, batch_size=None)
        val = DataLoader(val_batches, batch_size=None)
        times: dict[str, list[float]] = {"plain": [], "zoo": [], "plain_steps": [], "zoo_steps": []}
        for i in range(repeats + 1):  # the first round warms up both paths and is not counted
            plain_model = copy.deepcopy(template)
            plain_model.load_state_dict(initial)
            start = time.perf_counter()
            plain_steps = plain_fit(plain_model, train, val)
            plain_seconds = time.perf_counter() - start
            cli = first if i == 0 else build_zoo_fit(entry, batch_size, str(Path(tmp) / f"run{i}"))
            cli.model.load_state_dict(initial)
            start = time.perf_counter()
            zoo_steps = zoo_fit(cli, cli.model, train, val)
            zoo_seconds = time.perf_counter() - start
            if i > 0:
                for key, value in (("plain", plain_seconds), ("zoo", zoo_seconds), ("plain_steps", plain_steps),
                                   ("zoo_steps", zoo_steps)):
                    times[key].append(value)
    ratios = [p / z for p, z in zip(times["plain"], times["zoo"])]
    step_ratios = [p / z for p, z in zip(times["plain_steps"], times["zoo_steps"])]
    plain, zoo = statistics.median(times["plain"]), statistics.median(times["zoo"])
    plain_steps, zoo_steps = statistics.median(times["plain_steps"]), statistics.median(times["zoo_steps"])
    return {
        "case": f"{entry} b{batch_size}", "steps": steps,
        "plain_sps": steps * batch_size / plain, "zoo_sps": steps * batch_size / zoo,
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "step_ratio": statistics.median(step_ratios), "step_ratio_min": min(step_ratios),
        "step_ratio_max": max(step_ratios),
        "overhead_ms": 1000 * (zoo_steps - plain_steps) / steps, "step_ms": 1000 * plain_steps / steps,
    }


def profile_case(entry: str, batch_size: int, samples: int, val_fraction: float, top: int) -> str:
    """The ``SimpleProfiler`` report of one ``zoo fit`` epoch, its ``top`` most expensive actions."""
    steps = max(1, samples // batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        cli = build_zoo_fit(entry, batch_size, tmp, ["--trainer.profiler", "simple"])
        batches = random_batches(cli.model, steps, batch_size, seed=0)
        val = random_batches(cli.model, max(1, int(steps * val_fraction)), batch_size, seed=1)
        zoo_fit(cli, cli.model, DataLoader(batches, batch_size=None), DataLoader(val, batch_size=None))
        report = cli.trainer.profiler.summary()
    lines = report.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("|  Action") or line.startswith("| Action")]
    body = lines[header[0] + 2:] if header else lines
    rows = [line for line in body if line.startswith("|") and "Total" not in line[:20]]
    return "\n".join(lines[:header[0] + 2] + rows[:top]) if header else report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated entry:batch_size pairs")
    parser.add_argument("--samples", type=int, default=54_000, help="training samples per timed epoch")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation batches per training batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed turns of each path (after one warm-up turn)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the reach is for one thread)")
    parser.add_argument("--profile", action="store_true", help="also print a SimpleProfiler report per case")
    parser.add_argument("--top", type=int, default=14, help="profiler rows to print")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.argv[1:] = []  # ZooCLI gets its arguments from build_zoo_fit
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available", summaries, "Seed set"
        logging.getLogger(name).setLevel(logging.WARNING)
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",") if c]
    print(f"zoo fit path vs plain loop, {args.threads} thread(s), {args.samples} training samples per epoch, "
          f"validation {args.val_fraction:.0%} of it, median of {args.repeats} turns (ratio: spread min-max)")
    print("| case | steps | plain samples/s | zoo fit samples/s | whole fit zoo/plain (spread) | training steps "
          "zoo/plain (spread) | overhead ms/step | plain ms/step |\n|---|---|---|---|---|---|---|---|")
    for entry, batch_size in cases:
        r = run_case(entry, batch_size, args.samples, args.val_fraction, args.repeats)
        print(f"| {r['case']} | {r['steps']} | {r['plain_sps']:,.0f} | {r['zoo_sps']:,.0f} | {r['ratio']:.3f} "
              f"({r['ratio_min']:.3f}-{r['ratio_max']:.3f}) | {r['step_ratio']:.3f} ({r['step_ratio_min']:.3f}-"
              f"{r['step_ratio_max']:.3f}) | {r['overhead_ms']:.2f} | {r['step_ms']:.2f} |", flush=True)
    if args.profile:
        for entry, batch_size in cases:
            print(f"\nSimpleProfiler, zoo fit path, {entry} b{batch_size}:")
            print(profile_case(entry, batch_size, args.samples, args.val_fraction, args.top), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
