"""Sparse CNN-2 of "How Can We Be So Dense?" trained by Numenta's own code, to compare with the zoo's on one machine.

The zoo's ``sparse_cnn2_mnist`` stays below the paper's Table 1 (``paper_table1.py``). This script takes the zoo
out of the loop: it imports ``MNISTSparseCNN`` (the paper's Sparse CNN-2 as its defaults), ``rezero_weights`` and
``update_boost_strength`` from a checkout of Numenta's ``nupic.torch`` (``--nupic_torch DIR``; the code of their
public rerun, ``examples/sparse_mnist.ipynb``, is commit 871f4ea of 2019-06-26) and trains the model with that
notebook's loop, plain PyTorch without Lightning:

- torchvision's MNIST, all 60,000 training images, ``Normalize(0.1307, 0.3081)``; ``DataLoader`` shuffling;
- SGD lr 0.02, momentum 0; ``StepLR(gamma=0.8)`` stepped after each epoch; epoch 0 at batch 4, then batch 64;
- after each epoch ``rezero_weights`` and ``update_boost_strength``, then the clean test set (batches of 1,000);
- the seed goes to ``random``, ``numpy`` and ``torch`` before the model is built, as the notebook's ``SEED``.

Every epoch's clean test accuracy is kept; the noise score (correct test images summed over the paper protocol's
eta = 0, 0.05, ..., 0.5: ``int(784 * eta)`` distinct pixels of the [0, 1] image set to 0.1307 + 2 * 0.3081, then
normalized, the draws of the notebook's ``RandomNoise`` from a ``RandomState`` of its own per seed) is measured
for every epoch that could be the best test epoch and for the last. The table gives ``--statistic last`` or
``best_test`` (each seed's first best test epoch, population SD, as ``paper_table1.py``). One JSON per seed
(``<runs>/seed<k>.json``, rewritten after each epoch) keeps the figures; finished seeds are not trained again,
and a seed stopped mid-run resumes exactly after its last finished epoch from ``<runs>/seed<k>.state.pt`` (the
weights and buffers, the optimizer and scheduler, the global random generators (``zoo.resume``'s), and the
plain-number attributes of every layer, where nupic.torch keeps the boost strength and the samples seen).
Each seed first prints the model it trains: ``MNISTSparseCNN``'s defaults are the paper's at 871f4ea and differ
in later commits (sparse conv weights, other k), so check that print against the paper's Sparse CNN-2.
Example (``git clone https://github.com/numenta/nupic.torch && git -C nupic.torch checkout 871f4ea``)::

    ZOO_DATA_DIR=<data dir> OMP_NUM_THREADS=1 python -m scripts.reproductions.authors_sparse_cnn2 \\
        --nupic_torch nupic.torch --runs runs/authors --seeds 0-9
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import datasets

from datamodules._paths import resolve_root
from datamodules.mnist import MNISTDataModule
from scripts.reproductions.compare_seeds import parse_seeds
from scripts.reproductions.noise_robustness import PAPER_LEVELS
from scripts.reproductions.paper_table1 import PAPER_TABLE1, STATISTICS, spread
from zoo import resume

MEAN, STD = MNISTDataModule.mean, MNISTDataModule.std
NOISE_VALUE = MEAN + 2 * STD
LR, LR_GAMMA, FIRST_EPOCH_BATCH, BATCH, TEST_BATCH = 0.02, 0.8, 4, 64, 1000


def import_nupic_torch(checkout: Path) -> tuple[Any, Any, Any]:
    """``(MNISTSparseCNN, rezero_weights, update_boost_strength)`` from a nupic.torch checkout (its ``src/`` layout
    or the 2019 one with ``nupic/`` at the top)."""
    top = next((p for p in (checkout / "src", checkout) if (p / "nupic" / "torch").is_dir()), None)
    if top is None:
        raise SystemExit(f"--nupic_torch {checkout}: no nupic/torch package there (nor under src/). How to fix: "
                         "git clone https://github.com/numenta/nupic.torch and pass the clone's folder")
    sys.path.insert(0, str(top))
    from nupic.torch.models import MNISTSparseCNN
    from nupic.torch.modules import rezero_weights, update_boost_strength
    return MNISTSparseCNN, rezero_weights, update_boost_strength


def mnist_tensors(root: Path, train: bool) -> tuple[Tensor, Tensor]:
    """MNIST images in [0, 1], ``(N, 1, 28, 28)`` float32, and their labels."""
    try:
        ds = datasets.MNIST(str(root), train=train)
    except RuntimeError as err:
        raise SystemExit(f"MNIST not found under {root}: {err} How to fix: point ZOO_DATA_DIR at a folder "
                         "holding MNIST/raw/ (the IDX files)") from None
    return ds.data.float().div(255).unsqueeze(1), ds.targets


def noisy_test_sets(images: Tensor, seed: int) -> dict[float, Tensor]:
    """The normalized test images at every paper-protocol eta (the draws: ``RandomState(1000 + seed)``)."""
    rng = np.random.RandomState(1000 + seed)
    sets = {}
    for eta in PAPER_LEVELS:
        flat = images.clone().view(len(images), -1)
        count = int(flat.shape[1] * eta)
        for row in flat:
            row[rng.permutation(flat.shape[1])[:count]] = NOISE_VALUE
        sets[eta] = (flat.view_as(images) - MEAN) / STD
    return sets


def count_correct(model: nn.Module, images: Tensor, labels: Tensor) -> int:
    model.eval()
    with torch.no_grad():
        return sum(int(model(images[i:i + TEST_BATCH]).argmax(1).eq(labels[i:i + TEST_BATCH]).sum())
                   for i in range(0, len(images), TEST_BATCH))


def module_numbers(model: nn.Module) -> dict[str, dict[str, float]]:
    """The ``int`` and ``float`` attributes of every submodule, by name: nupic.torch keeps the boost strength and
    the samples seen there, not in buffers, so a resumed run needs them besides the state dict."""
    return {name: {key: value for key, value in vars(module).items() if type(value) in (int, float)}
            for name, module in model.named_modules()}


def save_progress(out: Path, record: dict[str, Any], state: dict[str, Any]) -> None:
    """Replace ``out``'s training state (``.state.pt``, with the record inside), then ``out`` (the figures); a run
    stopped between the two resumes from the state, whose record is the newer."""
    for path, write in ((out.with_suffix(".state.pt"), lambda p: torch.save(state, p)),
                        (out, lambda p: p.write_text(json.dumps(record)))):
        partial = path.with_name(path.name + ".partial")
        write(partial)
        resume.atomic_replace(str(partial), str(path))


def load_state(path: Path, seed: int, epochs: int) -> dict[str, Any]:
    """The training state :func:`save_progress` wrote at ``path``, checked to be ``seed``'s run of ``epochs``."""
    try:
        state = torch.load(path, weights_only=True)
        record = state["record"]
    except Exception as err:
        raise SystemExit(f"{path} is not a training state this script wrote (torch.load with weights_only: "
                         f"{type(err).__name__}). How to fix: delete it to train this seed again from its "
                         "start") from None
    if (record["seed"], record["epochs"]) != (seed, epochs):
        raise SystemExit(f"{path} holds seed {record['seed']} of {record['epochs']} epochs, not seed {seed} of "
                         f"{epochs}: pass another --runs folder, or delete the file to train this seed from its start")
    return state


def train_seed(nupic: tuple[Any, Any, Any], mnist: dict[bool, tuple[Tensor, Tensor]], seed: int, epochs: int,
               out: Path) -> dict[str, Any]:
    """Train one seed with the notebook's loop on ``mnist`` (``train`` -> :func:`mnist_tensors`), from its saved
    state if ``out``'s ``.state.pt`` exists; ``out`` gets the figures and the state after every epoch."""
    MNISTSparseCNN, rezero_weights, update_boost_strength = nupic
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    (train_images, train_labels), (test_images, test_labels) = mnist[True], mnist[False]
    train_set = torch.utils.data.TensorDataset((train_images - MEAN) / STD, train_labels)
    model = MNISTSparseCNN()
    print(model, flush=True)  # its defaults are the paper's at 871f4ea and change in later commits: show them
    test_sets = noisy_test_sets(test_images, seed)
    sgd = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=LR_GAMMA)
    loaders = [torch.utils.data.DataLoader(train_set, batch_size=size, shuffle=True)
               for size in (FIRST_EPOCH_BATCH, BATCH)]
    record: dict[str, Any] = {"seed": seed, "epochs": epochs, "torch": str(torch.__version__), "history": []}
    state_path = out.with_suffix(".state.pt")
    if state_path.exists():
        state = load_state(state_path, seed, epochs)
        model.load_state_dict(state["model"])
        for name, module in model.named_modules():
            for key, value in state["module_numbers"].get(name, {}).items():
                setattr(module, key, value)
        sgd.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        resume.restore_rng_states(state["rng"])
        record = state["record"]
        print(f"seed {seed}: resuming after epoch {len(record['history']) - 1} from {state_path}", flush=True)
    history = record["history"]
    start = time.time() - (history[-1]["seconds"] if history else 0)
    for epoch in range(len(history), epochs):
        model.train()
        for data, target in loaders[min(epoch, 1)]:
            sgd.zero_grad()
            F.nll_loss(model(data), target).backward()
            sgd.step()
        scheduler.step()
        model.apply(rezero_weights)
        model.apply(update_boost_strength)
        clean = count_correct(model, test_sets[0.0], test_labels)
        figures: dict[str, Any] = {"epoch": epoch, "acc": 100 * clean / len(test_labels)}
        if figures["acc"] >= max((h["acc"] for h in history), default=0) or epoch == epochs - 1:
            correct = {eta: count_correct(model, images, test_labels) for eta, images in test_sets.items()}
            figures.update(noise_score=sum(correct.values()), per_eta={str(e): c for e, c in correct.items()})
        figures["seconds"] = round(time.time() - start)
        history.append(figures)
        print(json.dumps(figures), flush=True)
        save_progress(out, record, {
            "record": record, "model": model.state_dict(), "module_numbers": module_numbers(model),
            "optimizer": sgd.state_dict(), "scheduler": scheduler.state_dict(), "rng": resume.collect_rng_states(),
        })
    return record


def seed_figures(record: dict[str, Any], statistic: str) -> dict[str, Any]:
    """One seed's figures: its last epoch, or its first best test epoch (``epoch`` added)."""
    history = record["history"]
    if statistic == "last":
        return history[-1]
    accuracies = [h["acc"] for h in history]
    return history[accuracies.index(max(accuracies))]


def table(records: list[dict[str, Any]], statistic: str) -> str:
    """A Markdown row of ``paper_table1.py``'s form for the seeds' figures."""
    name, paper_acc, paper_score = PAPER_TABLE1["sparse_cnn2_mnist"]
    figures = [seed_figures(r, statistic) for r in records]
    sd = STATISTICS[statistic]
    per_seed = ", ".join(f"{f['acc']:.2f} / {f['noise_score']:,}" + (f" (epoch {f['epoch']})"
                         if statistic == "best_test" else "") for f in figures)
    header = "| net | seeds | test acc % | paper | noise score | paper | per seed: acc / score |\n|" + "---|" * 7
    row = (f"| {name}, nupic.torch | {len(figures)} | {spread([f['acc'] for f in figures], sd)} | {paper_acc:.2f} | "
           f"{spread([f['noise_score'] for f in figures], sd, digits=0)} | {paper_score:,} | {per_seed} |")
    return header + "\n" + row


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nupic_torch", type=Path, required=True, help="a checkout of numenta/nupic.torch")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the per-seed seed<k>.json files")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-9"), help="e.g. 0-9 or 0,3,7")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per seed (the paper's 10)")
    parser.add_argument("--statistic", choices=list(STATISTICS), default="best_test",
                        help="best_test: each seed's best test epoch, as the paper's Table 1; last: the last epoch")
    parser.add_argument("--data", default=None, help="data folder holding MNIST/raw/ (default: ZOO_DATA_DIR)")
    args = parser.parse_args(argv)
    nupic = import_nupic_torch(args.nupic_torch)
    root = resolve_root(args.data)
    args.runs.mkdir(parents=True, exist_ok=True)
    records, mnist = [], {}
    for seed in args.seeds:
        path = args.runs / f"seed{seed}.json"
        record = json.loads(path.read_text()) if path.exists() else None
        if record is not None and record["epochs"] != args.epochs:
            raise SystemExit(f"{path} is a run of {record['epochs']} epochs, not --epochs {args.epochs}: pass "
                             f"--epochs {record['epochs']}, or another --runs folder for runs of {args.epochs}")
        if record is None or len(record["history"]) < args.epochs:
            print(f"seed {seed}: training {args.epochs} epochs", flush=True)
            mnist = mnist or {train: mnist_tensors(root, train) for train in (True, False)}  # read once, if needed
            record = train_seed(nupic, mnist, seed, args.epochs, path)
        records.append(record)
    print(f"\nSparse CNN-2 trained by nupic.torch, MNIST test set ({args.statistic}; paper: mean of 10 seeds at their "
          "best test epoch)")
    print(table(records, args.statistic))
    return 0


if __name__ == "__main__":
    sys.exit(main())
