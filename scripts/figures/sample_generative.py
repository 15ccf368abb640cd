"""Pictures of a generative zoo model (textbook ch. 6): a sample grid, and for autoencoders a latent strip.

    python -m scripts.figures.sample_generative gan_mnist --out docs/gan_mnist.png
    python -m scripts.figures.sample_generative vae_mnist --out docs/vae_mnist.png --strip docs/vae_mnist_strip.png
    python -m scripts.figures.sample_generative ae_mlp_mnist --scatter docs/ae_mlp_codes.png
    python -m scripts.figures.sample_generative gan_mnist --ckpt_path runs/.../last.ckpt --out grid.png

The entry's shipped weights are loaded (``zoo.load``) unless ``--ckpt_path`` names a Lightning checkpoint.
Class-conditional models get one row per class. ``--strip`` (autoencoders, VAE) decodes codes interpolated
linearly between the codes of pairs of real test images (one pair per row, the real images at both ends).
``--scatter`` (a model with a 2- or 3-unit code) plots the codes of test images coloured by class. Test images
come from the entry's datamodule (``ZOO_DATA_DIR``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import torch
from torchvision.utils import save_image

import zoo
from zoo import hub, registry
from zoo.hub import import_trusted
from zoo.evaluation import real_images
from zoo.models.generative import Autoencoder, GenerativeModel


def load_model(entry: str, ckpt_path: Optional[str]) -> GenerativeModel:
    if ckpt_path:
        cls = import_trusted(registry.get(entry).model_class, GenerativeModel)
        model = cls.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    else:
        model = zoo.load(entry)
    if not isinstance(model, GenerativeModel):
        raise ValueError(f"entry {entry!r} is a {type(model).__name__}, not a generative model")
    return model.eval()


def test_images(entry: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The real test images in [0, 1] and their labels, from the entry's (or its config's) datamodule."""
    if registry.get(entry).manifest() is not None:
        datamodule = hub.build_datamodule(entry)
    else:
        section = registry.get(entry).config["data"]
        datamodule = import_trusted(section["class_path"], object)(**section.get("init_args", {}))
    images = real_images(datamodule, "test")
    return images, datamodule.test_set.labels


def sample_grid(model: GenerativeModel, per_row: int, rows: int, seed: int) -> tuple[torch.Tensor, int]:
    generator = torch.Generator().manual_seed(seed)
    if model.hparams.conditional:
        labels = torch.arange(model.hparams.num_classes).repeat_interleave(per_row)
        return model.sample(len(labels), labels=labels, generator=generator), per_row
    return model.sample(per_row * rows, generator=generator), per_row


@torch.no_grad()
def interpolation_strip(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor, steps: int) -> torch.Tensor:
    """Rows ``(pairs * (steps + 2), C, H, W)``: image a, decodes of the codes from a to b, image b."""
    first = torch.stack([images[labels == k][0] for k in range(model.hparams.num_classes)])
    second = first.roll(-1, dims=0)  # digit k to digit k + 1
    codes_a, codes_b = model.encode(first), model.encode(second)
    weights = torch.linspace(0, 1, steps).view(1, steps, 1)
    codes = codes_a.unsqueeze(1) * (1 - weights) + codes_b.unsqueeze(1) * weights
    decoded = model.decode(codes.flatten(0, 1)).view(len(first), steps, *first.shape[1:])
    return torch.cat([first.unsqueeze(1), decoded, second.unsqueeze(1)], dim=1).flatten(0, 1)


@torch.no_grad()
def code_scatter(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor, out: str, n: int = 3000) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes = model.encode(images[:n]).numpy()
    if codes.shape[1] not in (2, 3):
        raise ValueError(f"--scatter needs a 2- or 3-unit code, this model's code has {codes.shape[1]} units")
    fig = plt.figure(figsize=(5, 4.5))
    ax = fig.add_subplot(projection="3d" if codes.shape[1] == 3 else None)
    points = ax.scatter(*codes.T, c=labels[:n].numpy(), cmap="tab10", s=3)
    fig.colorbar(points, ax=ax, ticks=range(10), label="class")
    ax.set_title(f"codes of {n} test images")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", help="a generative zoo entry (e.g. gan_mnist, vae_mnist)")
    parser.add_argument("--ckpt_path", help="a Lightning checkpoint of the entry's model instead of shipped weights")
    parser.add_argument("--out", help="PNG file of the sample grid")
    parser.add_argument("--per_row", type=int, default=10, help="samples per row (per class when conditional)")
    parser.add_argument("--rows", type=int, default=6, help="rows of an unconditional grid")
    parser.add_argument("--strip", help="PNG file of a latent interpolation strip (autoencoders)")
    parser.add_argument("--steps", type=int, default=8, help="decoded points between the ends of a strip row")
    parser.add_argument("--scatter", help="PNG file of a scatter of the codes (2- or 3-unit codes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = load_model(args.entry, args.ckpt_path)
    written = []
    if args.out:
        samples, per_row = sample_grid(model, args.per_row, args.rows, args.seed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_image(samples, args.out, nrow=per_row, padding=2, pad_value=0.5)
        written.append(args.out)
    if args.strip or args.scatter:
        if not isinstance(model, Autoencoder):
            raise ValueError(f"--strip and --scatter need an autoencoder; {args.entry} is a {type(model).__name__}")
        images, labels = test_images(args.entry)
        if args.strip:
            save_image(interpolation_strip(model, images, labels, args.steps), args.strip, nrow=args.steps + 2,
                       padding=2, pad_value=0.5)
            written.append(args.strip)
        if args.scatter:
            code_scatter(model, images, labels, args.scatter)
            written.append(args.scatter)
    if not written:
        parser.error("nothing to write: give --out, --strip or --scatter")
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    main()
