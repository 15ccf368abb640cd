"""Reading image files safely and the tensor transforms that fit any photo to a model's input.

Used by :class:`datamodules.ImageFolderDataModule` and by ``zoo predict`` (:mod:`zoo.preprocessing` builds a
manifest's preprocessing from these steps). :func:`read_image` checks the size the file declares before decoding
it with torchvision, so a hostile file cannot make the zoo allocate gigabytes; :class:`CapAspect` bounds the
work of a resize.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from datamodules._paths import CorruptDatasetError

#: image files read from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the largest image decoded (pixels); PIL's own decompression-bomb limit is 89 million.
MAX_PIXELS = 50_000_000
#: the longest side is cropped to at most this many times the shortest before any resize.
MAX_ASPECT = 4.0


class ImageFileError(CorruptDatasetError, ValueError):
    """An image file that cannot be read, or is too large to decode safely (the message names the file)."""


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:
        raise ImageFileError(f"{path} declares more pixels than the {MAX_PIXELS:,} the zoo decodes; downscale it "
                             f"first") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ImageFileError(f"cannot read the image {path}: {err}; give a PNG or JPEG file") from None


def read_image(path: Path, channels: int, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Decode a PNG or JPEG file into a uint8 tensor ``(channels, H, W)`` (grey or RGB, converted as needed).

    Raises:
        ImageFileError: the file is not a readable PNG/JPEG, or it declares more than ``max_pixels`` pixels.
    """
    width, height = image_size_of(path)
    if width * height > max_pixels:
        raise ImageFileError(f"{path} is {width}x{height}: more pixels than the {max_pixels:,} the zoo decodes; "
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
