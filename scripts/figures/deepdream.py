"""DeepDream (textbook chapter 7, "深度学习入门之PyTorch"; Mordvintsev et al., Google, 2015).

Gradient ascent on the image to raise the norm of one layer's activations, over octaves as the book does: blur
the image, downscale it by ``octave_scale``, dream on it recursively, upscale the result and blend it with the
image (0.6 of the dream), then dream at this size. VGG-16 features are the default network; any torchvision
CNN (``--model resnet18 --weights IMAGENET1K_V1 --layer layer3``) or a shipped zoo entry (``--model zoo:<entry>``)
works, with the layer named as in ``model.named_modules()``.

Offline, with the ImageNet MobileNet V2 of the shared data::

    ZOO_DATA_DIR=<data dir> python -m scripts.figures.deepdream \\
        --image $ZOO_DATA_DIR/dogs-vs-cats-3k/val/dog/dog.9.jpg \\
        --model mobilenet_v2 --weights '$ZOO_DATA_DIR/weights/mobilenet_v2_imagenet_dequantized_int8.pth' \\
        --layer features.10 --size 256 --iterations 10 --lr 0.01 --out docs/deepdream_mobilenet_v2.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.io import ImageReadMode, decode_image, write_png
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.transforms.v2 import functional as TF

from zoo.hub import entry_normalization
from zoo.layers.backbones import IMAGENET_MEAN, IMAGENET_STD, torchvision_model

BLEND = 0.6  # the book's ImageChops.blend(image, dreamed octave, 0.6)


class LayerObjective(nn.Module):
    """The L2 norm of ``layer``'s activations for an image in [0, 1] (normalized with the network's mean/std)."""

    def __init__(self, network: nn.Module, layer: str, mean: Sequence[float], std: Sequence[float],
                 channels: int = 3) -> None:
        super().__init__()
        names = [name for name, _ in network.named_modules() if name]
        if layer not in names:
            raise ValueError(f"{type(network).__name__} has no layer {layer!r}; layers: {', '.join(names[:40])}"
                             + (" ..." if len(names) > 40 else ""))
        self.extractor = create_feature_extractor(network.eval(), {layer: "activation"}).requires_grad_(False)
        self.channels = channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: Tensor) -> Tensor:
        x = TF.rgb_to_grayscale(image) if self.channels == 1 else image
        return self.extractor((x - self.mean) / self.std)["activation"].norm()


def load_objective(model: str, weights: Optional[str], layer: str) -> LayerObjective:
    """A torchvision model (weights: torchvision name, state dict file or None) or ``zoo:<entry>``."""
    if not model.startswith("zoo:"):
        return LayerObjective(torchvision_model(model, weights), layer, IMAGENET_MEAN, IMAGENET_STD)
    from zoo import hub

    entry = model[4:]
    net = hub.load(entry)
    mean, std = entry_normalization(entry)
    return LayerObjective(getattr(net, "network", net), layer, mean, std, channels=net.hparams.get("in_channels", 3))


def dream(image: Tensor, objective: Callable[[Tensor], Tensor], iterations: int, lr: float,
          history: Optional[list[float]] = None) -> Tensor:
    """``iterations`` steps of normalized gradient ascent on ``objective`` from ``image`` ((1, 3, H, W) in
    [0, 1]); the objective before each step is appended to ``history``."""
    image = image.detach().clone()
    for _ in range(iterations):
        image.requires_grad_(True)
        value = objective(image)
        (grad,) = torch.autograd.grad(value, image)
        if history is not None:
            history.append(float(value.detach()))
        with torch.no_grad():
            image = (image + lr * grad / (grad.abs().mean() + 1e-8)).clamp(0.0, 1.0)
    return image.detach()


def octave_sizes(height: int, width: int, octave_scale: float, num_octaves: int) -> list[tuple[int, int]]:
    """The image sizes dreamt on, smallest first: the input downscaled ``num_octaves`` times by ``octave_scale``
    (a size that would fall under 1 pixel stays as it is, as in the book)."""
    sizes = [(height, width)]
    for _ in range(num_octaves):
        h, w = sizes[-1]
        if h / octave_scale >= 1 and w / octave_scale >= 1:
            h, w = int(h / octave_scale), int(w / octave_scale)
        sizes.append((h, w))
    return sizes[::-1]


def deep_dream(image: Tensor, objective: Callable[[Tensor], Tensor], iterations: int = 20, lr: float = 0.02,
               octave_scale: float = 1.4, num_octaves: int = 4, sizes: Optional[list[tuple[int, int]]] = None,
               history: Optional[list[float]] = None) -> Tensor:
    """The book's recursive octaves: blur, downscale, recurse, upscale, blend 0.6, then dream at this size.

    ``image`` is (1, 3, H, W) in [0, 1]; the result has the same size and range. ``sizes`` collects the sizes
    dreamt on, in order.
    """
    if num_octaves > 0:
        height, width = image.shape[-2:]
        (small_h, small_w), _ = octave_sizes(height, width, octave_scale, 1)
        smaller = TF.resize(TF.gaussian_blur(image, kernel_size=9, sigma=2.0), [small_h, small_w], antialias=True)
        smaller = deep_dream(smaller, objective, iterations, lr, octave_scale, num_octaves - 1, sizes, history)
        upscaled = F.interpolate(smaller, size=(height, width), mode="bilinear", align_corners=False)
        image = (1 - BLEND) * image + BLEND * upscaled.clamp(0.0, 1.0)
    if sizes is not None:
        sizes.append(tuple(image.shape[-2:]))
    return dream(image, objective, iterations, lr, history)


def read_image(path: Path, size: Optional[int]) -> Tensor:
    image = decode_image(str(path), mode=ImageReadMode.RGB)
    if size is not None:
        image = TF.resize(image, [size, size], antialias=True)
    return TF.to_dtype(image, torch.float32, scale=True)[None]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, help="the picture to dream on (JPEG or PNG)")
    parser.add_argument("--model", default="vgg16", help="torchvision model name, or zoo:<entry>")
    parser.add_argument("--weights", default="IMAGENET1K_V1",
                        help="torchvision weights name or a state dict file ($ZOO_DATA_DIR may appear in it)")
    parser.add_argument("--layer", default="features.22", help="module name whose activation norm is raised")
    parser.add_argument("--size", type=int, default=None, help="resize the picture to size x size first")
    parser.add_argument("--iterations", type=int, default=20, help="gradient steps per octave")
    parser.add_argument("--lr", type=float, default=0.02, help="step size (the gradient is scaled to mean 1)")
    parser.add_argument("--octaves", type=int, default=4, help="number of downscalings")
    parser.add_argument("--octave_scale", type=float, default=1.4)
    parser.add_argument("--out", default="dream.png", help="output PNG")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    objective = load_objective(args.model, args.weights or None, args.layer)
    image = read_image(Path(args.image), args.size)
    sizes: list[tuple[int, int]] = []
    history: list[float] = []
    started = time.perf_counter()
    result = deep_dream(image, objective, args.iterations, args.lr, args.octave_scale, args.octaves, sizes, history)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(TF.to_dtype(result[0], torch.uint8, scale=True), str(out))
    print(f"octave sizes {sizes}; objective {history[0]:.1f} -> {history[-1]:.1f} (last octave "
          f"{history[-args.iterations]:.1f} -> {history[-1]:.1f}); {time.perf_counter() - started:.1f} s; "
          f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
