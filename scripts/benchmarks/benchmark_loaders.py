"""Loader throughput of the MNIST-family datamodules: the per-sample path they had against the batched one.

The per-sample path is what the datamodules did before batched loading: a ``Dataset`` whose ``__getitem__``
returns one image (after a per-image transform: torchvision's ``RandomAffine`` for ``augment``, a Bernoulli draw
for stochastic binarization), ``DataLoader(shuffle=True)`` and the default collate. The batched path is the
datamodule's own training loader (``datamodules._batched``: one gather per batch from an epoch-seeded
permutation, a ``StatefulDataLoader``) followed by its batch-wise transform (``train_batch_transform``, as
``on_after_batch_transfer`` runs it). Both are timed over whole epochs, in turns, in one process:

    OMP_NUM_THREADS=1 ZOO_DATA_DIR=<data dir> python -m scripts.benchmarks.benchmark_loaders --runs 5

prints samples/s of each path and their ratio: the median of the runs and, in brackets, their min-max spread. Without real MNIST
under ``ZOO_DATA_DIR`` it uses the embedded MNIST-mini (800 training images: the figures are then noisier).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from datamodules import BinarizedMNISTDataModule, EmbeddedMNISTDataModule, MNISTDataModule
from datamodules._batched import step_generator
from datamodules.binarized_mnist import binarize


class PerSampleDataset(Dataset):
    """The datamodules' former dataset: one image per ``__getitem__``, with an optional per-image transform."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Optional[Callable[[Tensor], Tensor]] = None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), self.labels[index]


def per_sample_transform(dm: MNISTDataModule) -> Optional[Callable[[Tensor], Tensor]]:
    """The per-image transforms the datamodules applied before (RandomAffine, then a Bernoulli resample)."""
    steps: list[Callable[[Tensor], Tensor]] = []
    if dm.hparams.augment:
        background = (0.0 - dm.mean) / dm.std if dm.hparams.normalize else 0.0
        steps.append(v2.RandomAffine(degrees=10, translate=(0.1, 0.1), fill=background))
    if isinstance(dm, BinarizedMNISTDataModule) and dm.hparams.binarization == "stochastic":
        steps.append(lambda image: binarize(image, "stochastic"))
    return v2.Compose(steps) if steps else None


def epoch_per_sample(dm: MNISTDataModule) -> int:
    dataset = PerSampleDataset(dm.train_set.images, dm.train_set.labels, per_sample_transform(dm))
    seen = 0
    for images, labels in DataLoader(dataset, batch_size=dm.hparams.batch_size, shuffle=True):
        seen += len(labels)
    return seen


def epoch_batched(dm: MNISTDataModule) -> int:
    seen = 0
    for step, (images, labels) in enumerate(dm.train_dataloader()):
        dm.train_batch_transform(images, step_generator(dm.hparams.seed, 0, step, images.device))
        seen += len(labels)
    return seen


def measure(fn: Callable[[MNISTDataModule], int], dm: MNISTDataModule) -> float:
    started = time.perf_counter()
    seen = fn(dm)
    return seen / (time.perf_counter() - started)


def datamodule(kind: str, real: bool, root: Optional[str], batch_size: int, subset: Optional[int]) -> MNISTDataModule:
    options = dict(batch_size=batch_size)
    dm: MNISTDataModule
    if kind == "binarized":  # real MNIST or the embedded files, binarized
        dm = BinarizedMNISTDataModule(root=root if real else str(EmbeddedMNISTDataModule().root), **options)
    elif real:
        dm = MNISTDataModule(root=root, augment=kind == "augment", **options)
    else:
        dm = EmbeddedMNISTDataModule(augment=kind == "augment", **options)
    dm.setup("fit")
    if subset:
        dm.train_set.tensors = tuple(t[:subset] for t in dm.train_set.tensors)
    return dm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="epochs timed per path (in turns); at least 3")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment-subset", type=int, default=10000,
                        help="training images of the augment and binarized rows (the per-image transforms are slow)")
    args = parser.parse_args()
    root = os.environ.get("ZOO_DATA_DIR")
    real = bool(root) and (Path(root) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch_size}, "
          f"{'MNIST from ' + str(root) if real else 'embedded MNIST-mini (no real MNIST under ZOO_DATA_DIR)'}")
    print(f"{'training loader':<36}{'images':>7}{'per-sample samples/s':>28}{'batched samples/s':>32}"
          f"{'ratio':>20}")
    for kind in ("plain", "augment", "binarized"):
        dm = datamodule(kind, real, root, args.batch_size, None if kind == "plain" else args.augment_subset)
        old, new = [], []
        epoch_per_sample(dm), epoch_batched(dm)  # warm-up
        for _ in range(max(args.runs, 3)):
            old.append(measure(epoch_per_sample, dm))
            new.append(measure(epoch_batched, dm))
        name = {"plain": "MNISTDataModule", "augment": "MNISTDataModule augment=true",
                "binarized": "BinarizedMNISTDataModule stochastic"}[kind]

        def shown(values: list[float]) -> str:
            return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

        ratios = [b / a for a, b in zip(old, new)]
        ratio = f"{statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f})"
        print(f"{name:<36}{len(dm.train_set):>7}{shown(old):>28}{shown(new):>32}{ratio:>20}")


if __name__ == "__main__":
    main()
