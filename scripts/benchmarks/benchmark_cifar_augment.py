"""Speed of CIFAR10DataModule's whole-batch loading and batch-wise augmentation against torchvision's per-image
pipeline, at the same batch size, in samples per second.

Both produce the same kind of training batch, normalized float (N, 3, 32, 32) and labels:

- zoo: the datamodule's train loader (one tensor gather per batch, uint8) and ``on_after_batch_transfer``
  (crop offsets and flips drawn for the whole batch, tensor operations on the batch's device);
- torchvision: a map-style dataset that applies a ``transforms.v2.Compose`` to each uint8 image tensor, the same
  augmentation written with v2 transforms (``book``: Resize 40 -> RandomHorizontalFlip -> RandomCrop 32;
  ``standard``: RandomCrop 32 padding 4 -> RandomHorizontalFlip; then ToDtype + Normalize), and default collate.

The two are timed in turns over whole passes of ``--batches`` batches (``scripts/benchmarks/benchmark_timing.py``),
and the ratio zoo / torchvision printed (> 1: the batch-wise pipeline is faster). The images are the real CIFAR-10 when
``ZOO_DATA_DIR`` holds them, else random images of the same size.

    OMP_NUM_THREADS=1 python -m scripts.benchmarks.benchmark_cifar_augment [--batch-size 128] [--batches 40] \\
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from datamodules import CIFAR10DataModule, data_dir
from scripts.benchmarks.benchmark_timing import median_seconds_in_turns
from tests.helpers import write_cifar10  # the tests' CIFAR-10 writer, for random images when the real ones are absent


class PerImageDataset(Dataset):
    """uint8 images transformed one by one, as a torchvision pipeline does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def torchvision_pipeline(augment: str, mean: tuple[float, ...], std: tuple[float, ...]) -> v2.Compose:
    geometric = {
        "book": [v2.Resize(40, antialias=True), v2.RandomHorizontalFlip(), v2.RandomCrop(32)],
        "standard": [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()],
    }[augment]
    return v2.Compose([*geometric, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def datamodule(batch_size: int, augment: str) -> CIFAR10DataModule:
    root = data_dir()
    if not (root / "cifar-10-batches-py" / "data_batch_1").exists():
        root = write_cifar10(Path(tempfile.mkdtemp()), per_batch=2000)
        print(f"(no CIFAR-10 under {data_dir()}: random images)")
    dm = CIFAR10DataModule(root=str(root), batch_size=batch_size, augment=augment, val_size=0)
    dm.setup("fit")
    return dm


def one_pass(loader: DataLoader, batches: int, transfer=None) -> None:
    for batch in itertools.islice(loader, batches):
        if transfer is not None:
            transfer(batch, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed pass")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}, {args.batches} batches per pass, "
          f"median of {args.rounds} rounds")
    print(f"{'augment':<10}{'zoo samples/s':>16}{'torchvision samples/s':>24}{'ratio':>8}")
    for augment in ("book", "standard"):
        dm = datamodule(args.batch_size, augment)
        zoo_loader = dm.train_dataloader()
        per_image = PerImageDataset(dm.train_set.images, dm.train_set.labels,
                                    torchvision_pipeline(augment, *dm.normalization))
        tv_loader = DataLoader(per_image, batch_size=args.batch_size, shuffle=True)
        seconds = median_seconds_in_turns(
            {"zoo": lambda: one_pass(zoo_loader, args.batches, dm.on_after_batch_transfer),
             "torchvision": lambda: one_pass(tv_loader, args.batches)},
            rounds=args.rounds, calls=1, warmup=1,
        )
        samples = args.batch_size * args.batches
        zoo_rate, tv_rate = samples / seconds["zoo"], samples / seconds["torchvision"]
        print(f"{augment:<10}{zoo_rate:>16,.0f}{tv_rate:>24,.0f}{zoo_rate / tv_rate:>7.1f}x")


if __name__ == "__main__":
    main()
