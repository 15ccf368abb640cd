"""How an entry's inputs are prepared: the ``preprocessing`` of a manifest as torchvision transforms (v2).

A manifest's ``preprocessing`` (written by ``zoo export`` from the datamodule's ``input_spec()``) says what a
single image must become to be fed like the test images the metrics were measured on:

- ``input_size`` ``[H, W]``, ``channels`` (1 grey, 3 RGB) and ``value_range`` (pixels / 255, in [0, 1]);
- ``mean`` / ``std`` per channel (``null``: not normalized);
- ``polarity``: ``"light-on-dark"`` for MNIST-like data (an image whose border is light is inverted first, so a
  digit drawn dark on paper is classified like an MNIST digit), else ``null``;
- ``resize``: ``"pad-to-square"`` (pad with the background, then resize: digits), ``"center-crop"`` (the central
  square, then resize: CIFAR-10) or ``"resize-crop"`` (short side to ``size * 256 / 224``, then the central
  ``size``: torchvision's ImageNet evaluation transform);
- ``binarize`` (binarized MNIST only): how the test images were binarized.

:func:`image_transforms` turns it into a ``v2.Compose`` taking a uint8 image tensor ``(C, H, W)`` of any size and
channel count, like torchvision's ``Weights.transforms()``. :func:`read_image` decodes a PNG or JPEG file with
torchvision after checking its size, so a hostile file cannot make the zoo allocate gigabytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from zoo.errors import ZooError

#: image files ``zoo predict`` reads from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the largest image decoded (pixels); PIL's own decompression-bomb limit is 89 million.
MAX_PIXELS = 50_000_000
#: the longest side is cropped to at most this many times the shortest before any resize.
MAX_ASPECT = 4.0
RESIZE_MODES = ("pad-to-square", "center-crop", "resize-crop")


class ImageFileError(ZooError, ValueError):
    """An image file that cannot be read, or is too large to decode safely (the message names the file)."""


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as err:
        raise ImageFileError(f"cannot read the image {path}: {err}; give a PNG or JPEG file") from None


def read_image(path: Path, channels: int, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Decode a PNG or JPEG file into a uint8 tensor ``(channels, H, W)`` (grey or RGB, converted as needed).

    Raises:
        ImageFileError: the file is not a readable PNG/JPEG, or it declares more than ``max_pixels`` pixels.
    """
    width, height = image_size_of(path)
    if width * height > max_pixels:
        raise ImageFileError(f"{path} is {width}x{height} pixels, more than the {max_pixels:,} the zoo decodes; "
                             f"downscale it first")
    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0]
        raise ImageFileError(f"cannot decode the image {path} ({reason}): it is truncated or not a PNG/JPEG; "
                             f"replace it") from None


class MatchChannels(nn.Module):
    """Grey <-> RGB: a uint8 or float image ``(C, H, W)`` with 1, 3 or 4 channels -> ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ValueError(f"expected an image tensor (C, H, W) with 1, 3 or 4 channels, got {tuple(image.shape)}")
        image = image[:3]  # drop an alpha channel
        if image.shape[0] == self.channels:
            return image
        if self.channels == 3:
            return image.expand(3, -1, -1)
        return v2.functional.rgb_to_grayscale(image)


class LightOnDark(nn.Module):
    """Invert an image whose border (the outer tenth on each side) is lighter than mid-grey: the model was trained
    on light strokes over a dark background (MNIST, Fashion-MNIST)."""

    def forward(self, image: Tensor) -> Tensor:
        top = 255 if image.dtype == torch.uint8 else 1.0
        h, w = image.shape[-2:]
        band_h, band_w = max(1, h // 10), max(1, w // 10)
        border = torch.cat([image[..., :band_h, :].flatten(), image[..., -band_h:, :].flatten(),
                            image[..., :, :band_w].flatten(), image[..., :, -band_w:].flatten()])
        return top - image if border.float().mean() > top / 2 else image


class CapAspect(nn.Module):
    """Crop the central part of the longer side down to ``max_aspect`` times the shorter one (bounded resizes)."""

    def __init__(self, max_aspect: float = MAX_ASPECT) -> None:
        super().__init__()
        self.max_aspect = max_aspect

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        limit = int(min(h, w) * self.max_aspect)
        if max(h, w) <= limit:
            return image
        return v2.functional.center_crop(image, [min(h, limit), min(w, limit)])


class PadToSquare(nn.Module):
    """Pad the shorter side with zeros (the dark background, after :class:`LightOnDark`) to a square."""

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        return nn.functional.pad(image, (left, side - w - left, top, side - h - top))


class CenterSquare(nn.Module):
    """The central square of an image."""

    def forward(self, image: Tensor) -> Tensor:
        side = min(image.shape[-2:])
        return v2.functional.center_crop(image, [side, side])


def check_spec(spec: Any, source: str = "preprocessing") -> dict[str, Any]:
    """``spec`` if it is a complete preprocessing dictionary, else a ``ValueError`` naming the bad field."""
    if not isinstance(spec, dict):
        raise ValueError(f"{source} must be a dictionary, got {type(spec).__name__}")
    size, channels = spec.get("input_size"), spec.get("channels")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"{source}.input_size must be [height, width], got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"{source}.channels must be 1 or 3, got {channels!r}")
    if spec.get("resize") not in RESIZE_MODES:
        raise ValueError(f"{source}.resize must be one of {RESIZE_MODES}, got {spec.get('resize')!r}")
    for key in ("mean", "std"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, list) and len(value) == channels):
            raise ValueError(f"{source}.{key} must be null or a list of {channels} numbers, got {value!r}")
    return spec


def image_transforms(spec: dict[str, Any]) -> v2.Compose:
    """The transform from a uint8 image tensor ``(C, H, W)`` of any size to the model's normalized float input
    ``(channels, H, W)``, for a manifest's ``preprocessing``."""
    check_spec(spec)
    height, width = spec["input_size"]
    steps: list[nn.Module] = [MatchChannels(spec["channels"])]
    if spec.get("polarity") == "light-on-dark":
        steps.append(LightOnDark())
    steps.append(CapAspect())
    if spec["resize"] == "pad-to-square":
        steps += [PadToSquare(), v2.Resize([height, width], antialias=True)]
    elif spec["resize"] == "center-crop":
        steps += [CenterSquare(), v2.Resize([height, width], antialias=True)]
    else:
        steps += [v2.Resize(round(height * 256 / 224), antialias=True), v2.CenterCrop([height, width])]
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if spec.get("binarize"):
        steps.append(Binarize())
    if spec.get("mean") is not None:
        steps.append(v2.Normalize(list(spec["mean"]), list(spec["std"])))
    return v2.Compose(steps)


class Binarize(nn.Module):
    """Pixels in [0, 1] -> 0 or 1 (threshold 0.5)."""

    def forward(self, image: Tensor) -> Tensor:
        return (image > 0.5).to(image.dtype)


def image_files(paths: list[str]) -> list[Path]:
    """The files named, and the PNG/JPEG files under the folders named (sorted, recursively); an error names a path
    that does not exist or a folder without images."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                raise ImageFileError(f"{path} holds no PNG or JPEG file ({', '.join(IMAGE_SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise ImageFileError(f"{path} does not exist; name image files or folders of them")
    return found


def batch_of_images(files: list[Path], spec: dict[str, Any], transform: Optional[v2.Compose] = None) -> Tensor:
    """The model input ``(N, channels, H, W)`` of image files, prepared by :func:`image_transforms`."""
    transform = transform or image_transforms(spec)
    return torch.stack([transform(read_image(path, spec["channels"])) for path in files])
