"""Draw samples from a PixelCNN pixel by pixel and save them as a PNG grid.

    python -m scripts.figures.sample_pixelcnn --entry pixelcnn_mnist5k --n 64 --out samples.png
    python -m scripts.figures.sample_pixelcnn --ckpt_path runs/.../best.ckpt --per_class 8 --out classes.png

``--entry`` loads shipped weights (``zoo.load``); ``--ckpt_path`` a Lightning checkpoint. ``--per_class k``
(class-conditional models) draws ``k`` samples of each class, one class per row. Sampling costs
``image_size ** 2`` network passes: 64 MNIST samples of the shipped model took 205 s on one shared CPU core.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import torch
from torchvision.utils import save_image

import zoo
from zoo.models.pixelcnn import PixelCNN


def load_model(entry: Optional[str], ckpt_path: Optional[str]) -> PixelCNN:
    model = PixelCNN.load_from_checkpoint(ckpt_path, map_location="cpu") if ckpt_path else zoo.load(entry)
    if not isinstance(model, PixelCNN):
        raise ValueError(f"entry {entry!r} is a {type(model).__name__}, not a PixelCNN")
    return model.eval()


def draw(model: PixelCNN, n: int, per_class: Optional[int], seed: int) -> tuple[torch.Tensor, int]:
    """Samples ``(M, 1, H, W)`` and the number of images per grid row."""
    generator = torch.Generator().manual_seed(seed)
    if per_class is None:
        return model.sample(n, generator=generator), 8
    if not model.hparams.conditional:
        raise ValueError("--per_class needs a class-conditional PixelCNN (conditional: true); use --n instead")
    labels = torch.arange(model.hparams.num_classes).repeat_interleave(per_class)
    return model.sample(len(labels), labels=labels, generator=generator), per_class


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--entry", default="pixelcnn_mnist5k", help="zoo entry with shipped weights")
    source.add_argument("--ckpt_path", help="a Lightning checkpoint of a PixelCNN instead of an entry")
    parser.add_argument("--n", type=int, default=64, help="number of samples (unconditional)")
    parser.add_argument("--per_class", type=int, help="samples per class (class-conditional models)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="pixelcnn_samples.png", help="PNG file to write")
    args = parser.parse_args(argv)

    model = load_model(args.entry, args.ckpt_path)
    start = time.perf_counter()
    samples, per_row = draw(model, args.n, args.per_class, args.seed)
    elapsed = time.perf_counter() - start
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_image(samples, args.out, nrow=per_row, padding=2, pad_value=0.5)
    print(f"wrote {len(samples)} samples to {args.out} in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
