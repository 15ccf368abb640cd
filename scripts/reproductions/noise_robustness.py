"""Noise robustness of dense and sparse nets: the tables of "How Can We Be So Dense?" (Ahmad & Scheinkman, 2019).

For every model, the test set is re-read with ``int(784 * eta)`` pixels of each image set to ``mean + 2 * std``
(the datamodules' ``noise`` option) and the accuracy measured, under both protocols:

- ``paper``: noise on the [0, 1] pixels, then Normalize; eta = 0, 0.05, ..., 0.5. The *noise score* is the
  number of correct test images summed over the 11 levels (at most 110,000 for a 10,000-image test set).
- ``blog``: Normalize, then the same value; eta = 0, 0.1, ..., 0.8.

It prints both tables, writes ``noise_robustness.csv`` and ``noise_robustness.png`` (accuracy against eta) to
``--out``, and with ``--export`` writes the shipped weights + manifest with ``noise_score`` and ``acc_eta_0.5``.

Models come from, per entry: a Lightning checkpoint (``--ckpt ENTRY=PATH``), a fresh training run (``--fit``:
``zoo fit -c ENTRY`` plus ``--fit_args``), or else the zoo's shipped weights.

Examples::

    # the shipped Fashion-MNIST pair
    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.noise_robustness \\
        sparse_cnn2_fashion_mnist dense_cnn2_fashion_mnist
    # full MNIST on your machine: train both with the paper's recipe, then the tables (paper Fig. 2 / Table 1)
    ZOO_DATA_DIR=~/data python -m scripts.reproductions.noise_robustness sparse_cnn2_mnist dense_cnn2_mnist \\
        --fit --out runs/noise
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch

from zoo import export, hub, registry
from zoo.models.base import ZooModule

PAPER_LEVELS = [round(0.05 * i, 2) for i in range(11)]
BLOG_LEVELS = [round(0.1 * i, 1) for i in range(9)]
PROTOCOL_LEVELS = {"paper": PAPER_LEVELS, "blog": BLOG_LEVELS}


@dataclass
class Subject:
    """One model under test, with the datamodule class and arguments of its (clean) test set."""

    entry: str
    model: ZooModule
    datamodule_class: type
    datamodule_args: dict[str, Any]
    ckpt_path: Optional[str] = None
    fit_command: str = ""


def from_checkpoint(entry: str, ckpt_path: str, fit_command: str = "") -> Subject:
    """Load ``entry``'s model and datamodule arguments from a Lightning checkpoint of a ``zoo fit`` run."""
    info = registry.get(entry)
    model_cls = hub.import_trusted(info.model_class, ZooModule)
    model = model_cls.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    dm_args = hub.plain_hparams(checkpoint.get("datamodule_hyper_parameters", {}))
    dm_cls = hub.import_trusted(info.datamodule_class, L.LightningDataModule)
    return Subject(entry, model.eval(), dm_cls, dm_args, ckpt_path, fit_command)


def from_model(entry: str, model: ZooModule, datamodule: L.LightningDataModule, fit_command: str = "") -> Subject:
    """A loaded model, tested on the (clean) test set of ``datamodule``'s class and arguments."""
    return Subject(entry, model.eval(), type(datamodule), dict(datamodule.hparams), fit_command=fit_command)


def from_shipped(entry: str) -> Subject:
    """Load ``entry``'s shipped weights and the datamodule recorded in its manifest."""
    return from_model(entry, hub.load(entry), hub.build_datamodule(entry), fit_command=entry_command(entry))


def entry_command(entry: str) -> str:
    manifest = registry.get(entry).manifest()
    return manifest.command if manifest is not None else ""


def fit(entry: str, out_dir: Path, fit_args: str) -> Subject:
    """Train ``entry`` with ``zoo fit`` and load the best checkpoint."""
    root = out_dir / "runs" / entry
    command = ["zoo", "fit", "-c", entry, "--trainer.default_root_dir", str(root), *shlex.split(fit_args)]
    print("running:", shlex.join(command), flush=True)
    subprocess.run([sys.executable, "-m", *command], check=True)  # command[0] is the `zoo` package
    checkpoints = sorted(root.glob("**/checkpoints/best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise FileNotFoundError(f"`{shlex.join(command)}` left no best-*.ckpt under {root}")
    return from_checkpoint(entry, str(checkpoints[-1]), fit_command=shlex.join(command))


def noisy_test_loader(subject: Subject, eta: float = 0.0, protocol: str = "paper", batch_size: int = 1000) -> Any:
    """The test loader of ``subject``'s datamodule with noise level ``eta`` under ``protocol`` (0: the clean set)."""
    args = {**subject.datamodule_args, "noise": eta, "noise_protocol": protocol, "noise_split": "test",
            "batch_size": batch_size}
    datamodule = subject.datamodule_class(**args)
    datamodule.setup("test")
    return datamodule.test_dataloader()


@torch.no_grad()
def correct_on_noisy_test_set(subject: Subject, eta: float, protocol: str, batch_size: int = 1000) -> tuple[int, int]:
    """(correct, total) of ``subject.model`` on its test set with noise level ``eta`` under ``protocol``."""
    model = subject.model.eval()
    correct = total = 0
    for x, y in noisy_test_loader(subject, eta, protocol, batch_size):
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += len(y)
    return correct, total


def noise_curves(subjects: list[Subject], protocols: tuple[str, ...] = tuple(PROTOCOL_LEVELS)) -> list[dict[str, Any]]:
    """One row per (entry, protocol, eta): correct, total, accuracy."""
    rows = []
    for subject in subjects:
        for protocol in protocols:
            for eta in PROTOCOL_LEVELS[protocol]:
                correct, total = correct_on_noisy_test_set(subject, eta, protocol)
                rows.append({"entry": subject.entry, "protocol": protocol, "eta": eta, "correct": correct,
                             "total": total, "accuracy": correct / total})
                print(f"  {subject.entry:<28} {protocol:<6} eta={eta:<5} acc={correct / total:.4f}", flush=True)
    return rows


def noise_score(rows: list[dict[str, Any]], entry: str) -> int:
    """The paper's noise score: correct test images summed over the 11 paper-protocol levels."""
    return sum(r["correct"] for r in rows if r["entry"] == entry and r["protocol"] == "paper")


def manifest_metrics(rows: list[dict[str, Any]], entry: str) -> dict[str, float]:
    """The figures a sparse/dense entry's manifest holds beside its test metrics (paper protocol)."""
    return {"noise_score": float(noise_score(rows, entry)), "acc_eta_0.5": accuracy_at(rows, entry, "paper", 0.5)}


def accuracy_at(rows: list[dict[str, Any]], entry: str, protocol: str, eta: float) -> float:
    return next(r["accuracy"] for r in rows if (r["entry"], r["protocol"], r["eta"]) == (entry, protocol, eta))


def format_table(rows: list[dict[str, Any]], protocol: str) -> str:
    """Accuracy (%) per entry and eta; the paper table ends with the noise score."""
    levels = PROTOCOL_LEVELS[protocol]
    entries = list(dict.fromkeys(r["entry"] for r in rows))
    width = max(len(e) for e in entries) + 2
    header = "entry".ljust(width) + "".join(f"{eta:>7}" for eta in levels)
    header += "  noise score" if protocol == "paper" else ""
    lines = [f"{protocol} protocol: test accuracy (%) against eta", header]
    for entry in entries:
        line = entry.ljust(width) + "".join(f"{100 * accuracy_at(rows, entry, protocol, eta):7.2f}" for eta in levels)
        if protocol == "paper":
            line += f"  {noise_score(rows, entry):>11,}"
        lines.append(line)
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, protocol in zip(axes, PROTOCOL_LEVELS):
        for entry in dict.fromkeys(r["entry"] for r in rows):
            points = [(r["eta"], 100 * r["accuracy"]) for r in rows if (r["entry"], r["protocol"]) == (entry, protocol)]
            ax.plot(*zip(*points), marker="o", label=entry)
        ax.set_title(f"{protocol} protocol")
        ax.set_xlabel("noise level eta (fraction of pixels)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        entry, sep, rest = value.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects ENTRY=VALUE, got {value!r}")
        pairs[entry] = rest
    return pairs


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="+", help="zoo entries, e.g. sparse_cnn2_mnist5k dense_cnn2_mnist5k")
    parser.add_argument("--ckpt", action="append", default=[], metavar="ENTRY=PATH", help="a Lightning checkpoint")
    parser.add_argument("--command", action="append", default=[], metavar="ENTRY=CMD",
                        help="the exact `zoo fit` command that trained --ckpt (recorded by --export)")
    parser.add_argument("--fit", action="store_true", help="train entries without --ckpt with `zoo fit -c ENTRY`")
    parser.add_argument("--fit_args", default="", help="extra `zoo fit` arguments for --fit (quoted)")
    parser.add_argument("--export", action="store_true", help="export checkpoints with noise score to checkpoints/")
    parser.add_argument("--out", default="noise_robustness", help="directory of the CSV, the PNG and --fit runs")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpts, commands = parse_pairs(args.ckpt, "--ckpt"), parse_pairs(args.command, "--command")
    subjects = []
    for entry in args.entries:
        registry.get(entry)  # fails early, listing the entries, on a typo
        if entry in ckpts:
            subjects.append(from_checkpoint(entry, ckpts[entry], commands.get(entry, "")))
        elif args.fit:
            subjects.append(fit(entry, out, args.fit_args))
        else:
            subjects.append(from_shipped(entry))

    rows = noise_curves(subjects)
    print()
    print(format_table(rows, "paper"))
    print()
    print(format_table(rows, "blog"))
    write_csv(rows, out / "noise_robustness.csv")
    plot(rows, out / "noise_robustness.png")
    print(f"\nwrote {out / 'noise_robustness.csv'} and {out / 'noise_robustness.png'}")

    if args.export:
        for subject in subjects:
            if subject.ckpt_path is None:
                print(f"{subject.entry}: shipped weights, nothing to export")
                continue
            extra = manifest_metrics(rows, subject.entry)
            notes = "noise_score and acc_eta_0.5 (paper protocol) measured by scripts/reproductions/noise_robustness.py"
            manifest = export.export(subject.entry, subject.ckpt_path, fit_command=subject.fit_command,
                                     extra_metrics=extra, notes=notes, overwrite=True)  # --export: re-ship
            print(f"exported {subject.entry}: {manifest.metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
