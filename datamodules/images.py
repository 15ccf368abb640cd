"""Reading image files safely and the tensor transforms that fit any photo to a model's input.

Used by :class:`datamodules.ImageFolderDataModule` and by ``zoo predict`` (:mod:`zoo.preprocessing` builds a
manifest's preprocessing from these steps). :func:`read_image` checks the size the file declares before decoding
it with torchvision, so a hostile file cannot make the zoo allocate gigabytes; :class:`CapAspect` bounds the
work of a resize.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence, Union

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from datamodules._paths import DamagedImageError

#: image files read from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the largest image decoded (pixels); PIL's own decompression-bomb limit is 89 million.
MAX_PIXELS = 50_000_000
#: the longest side is cropped to at most this many times the shortest before any resize.
MAX_ASPECT = 4.0


#: JPEG start-of-frame markers, whose segment holds the image's height and width.
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG or JPEG file's header declares, read from its bytes; ``None`` if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in _JPEG_FRAMES:
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding its pixels (PIL for formats other than PNG/JPEG)."""
    with open(path, "rb") as f:
        size = declared_size(f.read(1 << 16))
    if size is not None:
        return size
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:
        raise DamagedImageError(f"{path} declares more pixels than the {MAX_PIXELS:,} the zoo decodes; "
                                f"downscale it first") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DamagedImageError(f"cannot read the image {path}: {err}; give a PNG or JPEG file") from None


def read_image(path: Path, channels: int, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Decode a PNG or JPEG file into a uint8 tensor ``(channels, H, W)`` (grey or RGB, converted as needed; a
    16-bit PNG scaled to 8 bits), after checking the size its header declares.

    Raises:
        DamagedImageError: the file is not a readable PNG/JPEG, or it declares more than ``max_pixels`` pixels.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DamagedImageError(f"cannot read the image {path}: {err.strerror}") from None
    size = declared_size(raw)
    width, height = size if size is not None else image_size_of(path)
    if width * height > max_pixels:
        raise DamagedImageError(f"{path} is {width}x{height}: more pixels than the {max_pixels:,} the zoo "
                                f"decodes; downscale it first")
    try:
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        image = decode_image(data, mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except RuntimeError as err:
        # torchvision's message starts with the C++ function and source line: keep what the decoder says
        reason = re.sub(r"^\w+, \S+:\d+, ", "", str(err).strip().splitlines()[0])
        raise DamagedImageError(f"cannot decode the image {path} ({reason}): it is truncated or not a "
                                f"PNG/JPEG; replace it") from None
    return v2.functional.to_dtype(image, torch.uint8, scale=True)  # 16-bit PNGs decode as uint16


class MatchChannels(nn.Module):
    """Grey <-> RGB: uint8 or float images ``(..., C, H, W)`` with 1, 3 or 4 channels -> ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, image: Tensor) -> Tensor:
        if not isinstance(image, Tensor):
            raise TypeError(f"expected an image (a PIL image, a numpy array or a tensor (C, H, W)), got "
                            f"{type(image).__name__}")
        if image.ndim < 3 or image.shape[-3] not in (1, 3, 4):
            raise ValueError(f"expected image tensors (..., C, H, W) with 1, 3 or 4 channels, got "
                             f"{tuple(image.shape)}")
        image = image[..., :3, :, :]  # drop an alpha channel
        if image.shape[-3] == self.channels:
            return image
        if self.channels == 3:
            return image.expand(*image.shape[:-3], 3, *image.shape[-2:])
        return v2.functional.rgb_to_grayscale(image)


class LightOnDark(nn.Module):
    """Invert each image whose border (the outer tenth on each side) is lighter than mid-grey: the model was trained
    on light strokes over a dark background (MNIST, Fashion-MNIST). Images ``(..., C, H, W)``."""

    def forward(self, image: Tensor) -> Tensor:
        top = 255 if image.dtype == torch.uint8 else 1.0
        h, w = image.shape[-2:]
        band_h, band_w = max(1, h // 10), max(1, w // 10)
        bands = (image[..., :band_h, :], image[..., -band_h:, :], image[..., :, :band_w], image[..., :, -band_w:])
        total = torch.int64 if image.dtype == torch.uint8 else image.dtype
        sums = sum(band.sum(dim=(-3, -2, -1), dtype=total) for band in bands)
        border = sums / sum(band.shape[-3] * band.shape[-2] * band.shape[-1] for band in bands)
        light = (border > top / 2)[..., None, None, None]
        return torch.where(light, top - image, image)


class CapAspect(nn.Module):
    """Crop the central part of the longer side down to ``max_aspect`` times the shorter one (bounded resizes)."""

    def __init__(self, max_aspect: float = MAX_ASPECT) -> None:
        super().__init__()
        self.max_aspect = max_aspect

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        if not h or not w:  # every later step would fail on it with a reshape error
            raise ValueError(f"the image is {h}x{w} pixels (height x width): it holds no pixels; give an image of "
                             f"at least 1x1, as (C, H, W) or (H, W)")
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


class Binarize(nn.Module):
    """Pixels in [0, 1] -> 0 or 1 (threshold 0.5)."""

    def forward(self, image: Tensor) -> Tensor:
        return (image > 0.5).to(image.dtype)


def image_files(paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> list[Path]:
    """The files named, and the PNG/JPEG files under the folders named (sorted, recursively); ``paths`` is a list
    of files and folders, or one of them. An error names a path that does not exist or a folder without images."""
    if isinstance(paths, (str, os.PathLike)):  # one path, not a sequence of its characters
        paths = [paths]
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = sorted(Path(folder, file) for folder, _, files in os.walk(path) for file in files
                            if os.path.splitext(file)[1].lower() in IMAGE_SUFFIXES)
            if not inside:
                raise DamagedImageError(f"{path} holds no PNG or JPEG file ({', '.join(IMAGE_SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise DamagedImageError(f"{path} does not exist; name image files or folders of them")
    return found
