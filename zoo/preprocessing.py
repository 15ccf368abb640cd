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

from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from datamodules.images import (
    Binarize, CapAspect, CenterSquare, DamagedImageError, LightOnDark, MatchChannels, PadToSquare, image_files,
    read_image,
)

__all__ = ["DamagedImageError", "check_spec", "image_files", "image_transforms", "read_image"]

RESIZE_MODES = ("pad-to-square", "center-crop", "resize-crop")


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
    """The transform from an image of any size to the model's normalized float input ``(channels, H, W)``, for a
    manifest's ``preprocessing``: a uint8 tensor ``(C, H, W)`` or ``(H, W)`` (a batch ``(N, C, H, W)`` too), a PIL
    image or a ``(H, W[, C])`` numpy array, as torchvision's ``Weights.transforms()`` take them."""
    check_spec(spec)
    height, width = spec["input_size"]
    steps: list[nn.Module] = [v2.ToImage(), MatchChannels(spec["channels"])]
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
    return v2.Compose([*steps, v2.ToPureTensor()])
