"""MNIST-family datamodules (MNIST, Fashion-MNIST, the embedded MNIST-mini) with the pixel-noise protocols.

The images are read once with torchvision's datasets and kept as tensors; a batch is one gather of them
(``datamodules._batched``), shuffled by a permutation of (seed, epoch), and the ``augment`` jitter is applied to
whole training batches on their device in ``on_after_batch_transfer``, with draws from (seed, epoch, step).
Pixel noise follows "How Can We Be So Dense?" (Ahmad & Scheinkman, 2019, section 4): ``int(784 * eta)``
distinct random pixels of each image are set to ``mean + 2 * std``.

- ``noise_protocol="paper"``: pixels in [0, 1] get the value, then the image is normalized.
- ``noise_protocol="blog"``: the image is normalized first, then the pixels get the same value.
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import math
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision import datasets

from datamodules._batched import (
    TensorBatchDataset, check_batch_size, run_seed, step_generator, tensor_loader, training_position,
)
from datamodules._paths import (CorruptDatasetError, LabelOutOfRangeError, download_failed_error, missing_files_error,
                                resolve_root)
from datamodules._splits import SplitLoaders
from zoo.errors import option

NoiseProtocol = Literal["paper", "blog"]
NoiseSplit = Literal["test", "val", "train", "all"]


def add_pixel_noise(images: Tensor, eta: float, value: float, generator: torch.Generator) -> Tensor:
    """Return a copy of ``images`` (N, C, H, W) with ``int(H * W * eta)`` distinct pixels per image set to ``value``.

    The same pixel positions are used across channels. The positions depend only on ``generator``'s state.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"noise level eta must be in [0, 1], got {eta}")
    n, c, h, w = images.shape
    k = int(h * w * eta)
    noisy = images.clone()
    if k == 0 or n == 0:
        return noisy
    positions = torch.rand(n, h * w, generator=generator).argsort(dim=1)[:, :k]
    flat = noisy.view(n, c, h * w)
    flat.scatter_(2, positions.unsqueeze(1).expand(n, c, k), value)
    return noisy


def idx_file_problem(path: Path) -> Optional[str]:
    """What is wrong with the uncompressed IDX file ``path`` (LeCun et al.'s MNIST format), or ``None``.

    The header is ``0x00 0x00 <type> <ndim>`` then ``ndim`` big-endian 32-bit sizes; the MNIST files hold unsigned
    bytes (type ``0x08``), so the file is the header plus the product of the sizes in bytes, exactly, and at least
    one item (image or label).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic[:2] == b"\x1f\x8b":
            return "it is gzip-compressed, and torchvision reads the uncompressed file: uncompress it (gunzip)"
        if len(magic) < 4 or magic[:3] != b"\x00\x00\x08":
            return f"it does not start like an IDX file of unsigned bytes (first bytes {magic.hex() or 'none'})"
        sizes = f.read(4 * magic[3])
    if len(sizes) < 4 * magic[3]:
        return f"it is {size} bytes long, shorter than its own header"
    dims = [int.from_bytes(sizes[i : i + 4], "big") for i in range(0, len(sizes), 4)]
    if not dims or not dims[0]:
        return f"it holds no items: its header gives the sizes {dims}"
    expected = 4 + len(sizes) + math.prod(dims)
    if size != expected:
        cut = "it is cut short" if size < expected else "it has trailing bytes"
        return f"{cut}: {size:,} bytes where its header (sizes {dims}) needs {expected:,}"
    return None



def random_affine(
    images: Tensor, degrees: float, translate: float, fill: float, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Rotate each image of ``images`` (N, C, H, W) by an angle uniform in ``[-degrees, degrees]`` about its centre
    and shift it by a whole number of pixels, uniform up to ``translate`` of its size, nearest-neighbour, ``fill``
    outside: torchvision's ``RandomAffine(degrees, translate=(t, t), fill=fill)``, drawn for the whole batch at once
    (one ``affine_grid`` + ``grid_sample``) on the images' device.
    """
    n, _, h, w = images.shape
    device = images.device
    angle = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(degrees)
    shift = (torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * translate
    pixels = (shift * torch.tensor([w, h], device=device)).round()  # torchvision rounds the shift to pixels
    cos, sin = angle.cos(), angle.sin()
    offset = pixels * 2 / torch.tensor([w, h], device=device)  # in affine_grid's [-1, 1] coordinates
    # output -> input coordinates: rotate back by the angle after undoing the shift
    rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], dim=1)  # (N, 2, 2)
    theta = torch.cat([rotation, -(rotation @ offset.unsqueeze(-1))], dim=2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(images[:, :1]), grid, mode="nearest", align_corners=False) > 0
    return torch.where(inside, moved, torch.full_like(moved, fill))  # pixels copied exactly, ``fill`` outside


class ImageTensorDataset(TensorBatchDataset):
    """Images ``(N, C, H, W)`` and labels ``(N,)`` held in memory; a batch is one gather (``__getitems__``)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels")
        super().__init__(images, labels)

    @property
    def images(self) -> Tensor:
        return self.tensors[0]

    @property
    def labels(self) -> Tensor:
        return self.tensors[1]


class MNISTDataModule(SplitLoaders):
    """MNIST digits (28x28 grey) from torchvision's on-disk layout ``<root>/MNIST/raw/*-ubyte``.

    Batches are ``(x, y)``: ``x`` float ``(N, 1, 28, 28)`` (normalized unless ``normalize=False``), ``y`` long ``(N,)``.

    Args:
        root: data directory (default ``$ZOO_DATA_DIR``, else ``./data``); ``$ZOO_DATA_DIR`` may appear in it.
        download: fetch the files with torchvision when they are missing.
        batch_size: batch size of every loader.
        num_workers: DataLoader workers.
        val_fraction: fraction of the training file held out for validation (seeded split).
        seed: seed of the train/val split and of the pixel noise.
        normalize: subtract the dataset mean and divide by its std.
        noise: pixel-noise level eta in [0, 1] (0: no noise).
        noise_protocol: ``"paper"`` or ``"blog"`` (see the module docstring).
        noise_split: which split gets the noise: ``"test"`` (default), ``"val"``, ``"train"`` or ``"all"``.
        augment: random affine jitter (10 degrees, 10 % shift) on training images, batch-wise on the device.
        first_epoch_batch_size: a different batch size for epoch 0 only (the sparse nets use 4); needs
            ``Trainer(reload_dataloaders_every_n_epochs=1)``.
        first_epoch_shuffle: ``False``: epoch 0 visits the training images in the file's order (as the authors'
            sparse-net harness, whose batch-4 loader of epoch 0 does not shuffle), every later epoch is shuffled;
            needs ``Trainer(reload_dataloaders_every_n_epochs=1)``.
    """

    dataset_class: type[datasets.MNIST] = datasets.MNIST
    mean: float = 0.1307
    std: float = 0.3081
    num_classes: int = 10

    def __init__(
        self,
        root: Optional[str] = None,
        download: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        normalize: bool = True,
        noise: float = 0.0,
        noise_protocol: NoiseProtocol = "paper",
        noise_split: NoiseSplit = "test",
        augment: bool = False,
        first_epoch_batch_size: Optional[int] = None,
        first_epoch_shuffle: bool = True,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size)
        check_batch_size(first_epoch_batch_size, "first_epoch_batch_size", optional=True)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if noise_protocol not in ("paper", "blog"):
            raise ValueError(f"noise_protocol must be 'paper' or 'blog', got {noise_protocol!r}")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        self.save_hyperparameters()
        self.train_set: Optional[ImageTensorDataset] = None
        self.val_set: Optional[ImageTensorDataset] = None
        self.test_set: Optional[ImageTensorDataset] = None
        self.train_file_size = 0
        self.train_file_index: Optional[Tensor] = None  # each training image's index in the training file

    # ------------------------------------------------------------------ files
    @property
    def root(self) -> Path:
        return resolve_root(self.hparams.root)

    @property
    def noise_value(self) -> float:
        """The value a noisy pixel gets: ``mean + 2 * std`` (0.1307 + 2 * 0.3081 = 0.7469 for MNIST)."""
        return self.mean + 2 * self.std

    @property
    def dataset_name(self) -> str:
        """``MNIST``, or ``MNIST-5k`` for a training file of 5,000 images (never reported as MNIST)."""
        name = self.dataset_class.__name__
        full = 60000
        if self.train_file_size and self.train_file_size != full:
            n = self.train_file_size
            name += f"-{n // 1000}k" if n % 1000 == 0 else f" ({n} training images)"
        return name

    def _raw_files(self) -> list[str]:
        return [Path(url).stem for url, _ in self.dataset_class.resources]

    def _missing_error(self) -> FileNotFoundError:
        raw = Path(self.root) / self.dataset_class.__name__ / "raw"
        return missing_files_error(
            self.dataset_class.__name__,
            raw,
            self._raw_files(),
            f"pass {option('data', 'download', True)} (needs internet), or copy the uncompressed IDX files "
            f"into {raw}, or point ZOO_DATA_DIR / {option('data', 'root')} at a directory holding "
            f"{self.dataset_class.__name__}/raw/.",
        )

    def _split_files(self, train: bool) -> list[Path]:
        """The images and labels files of the training (``train=True``) or test part."""
        raw = Path(self.root) / self.dataset_class.__name__ / "raw"
        return [raw / name for name in self._raw_files() if name.startswith("train" if train else "t10k")]

    @property
    def _replace_fix(self) -> str:
        return (f"How to fix: delete it and pass {option('data', 'download', True)} (needs internet), or copy the "
                f"uncompressed IDX file again from a good copy of {self.dataset_class.__name__}.")

    def _damaged_error(self, path: Path, problem: str) -> CorruptDatasetError:
        return CorruptDatasetError(f"{path} is damaged: {problem}. {self._replace_fix}")

    def _load(self, train: bool, download: bool = False) -> tuple[Tensor, Tensor]:
        try:
            ds = self.dataset_class(str(self.root), train=train, download=download)
        except Exception as err:  # torchvision reads IDX files without naming them: a short one fails in a reshape
            if isinstance(err, RuntimeError) and "not found" in str(err).lower():
                raise self._missing_error() from err
            for path in self._split_files(train):
                problem = idx_file_problem(path) if path.is_file() else None
                if problem:
                    raise self._damaged_error(path, problem) from err
            raise
        images_file, labels_file = self._split_files(train)
        if len(ds.data) != len(ds.targets):
            raise self._damaged_error(
                labels_file, f"it holds {len(ds.targets):,} labels for the {len(ds.data):,} images of {images_file}"
            )
        outside = torch.nonzero(ds.targets >= self.num_classes).flatten()  # IDX labels are unsigned bytes
        if len(outside):
            first = int(outside[0])
            raise LabelOutOfRangeError(
                f"{labels_file} holds the label {int(ds.targets[first])} (image {first}; {len(outside)} labels in "
                f"all) outside {self.dataset_class.__name__}'s classes 0-{self.num_classes - 1}: it is not a "
                f"{self.dataset_class.__name__} labels file. {self._replace_fix}"
            )
        images = ds.data.unsqueeze(1).float().div_(255.0)
        return images, ds.targets.long()

    def prepare_data(self) -> None:
        if self.hparams.download:
            try:
                for train in (True, False):
                    self.dataset_class(str(self.root), train=train, download=True)
            except Exception as err:  # network failures come in many types
                raise download_failed_error(self._missing_error(), err) from err

    # ------------------------------------------------------------------ splits
    def _noisy(self, images: Tensor, split: str) -> Tensor:
        """Normalize ``images`` in [0, 1] and add the configured noise if ``split`` gets it."""
        hp = self.hparams
        gets_noise = hp.noise > 0 and hp.noise_split in (split, "all")
        generator = torch.Generator().manual_seed(hp.seed + {"train": 0, "val": 1, "test": 2}[split])
        if gets_noise and hp.noise_protocol == "paper":
            images = add_pixel_noise(images, hp.noise, self.noise_value, generator)
        if hp.normalize:
            images = (images - self.mean) / self.std
        if gets_noise and hp.noise_protocol == "blog":
            images = add_pixel_noise(images, hp.noise, self.noise_value, generator)
        return images

    def train_batch_transform(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Training images of one batch, on their device, -> what the model sees (the ``augment`` jitter)."""
        if not self.hparams.augment:
            return images
        background = (0.0 - self.mean) / self.std if self.hparams.normalize else 0.0
        return random_affine(images, degrees=10, translate=0.1, fill=background, generator=generator)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        position = training_position(self.trainer)
        if position is None:
            return batch
        images, labels = batch
        generator = step_generator(run_seed(self.hparams.seed), *position, device=images.device)
        return self.train_batch_transform(images, generator), labels

    def setup(self, stage: Optional[str] = None) -> None:
        hp = self.hparams
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self._load(train=True)
            self.train_file_size = len(images)
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(hp.seed))
            n_val = int(round(len(images) * hp.val_fraction))
            val_idx, train_idx = order[:n_val], order[n_val:]
            self.train_file_index = train_idx
            self.train_set = ImageTensorDataset(self._noisy(images[train_idx], "train"), labels[train_idx])
            self.val_set = ImageTensorDataset(self._noisy(images[val_idx], "val"), labels[val_idx])
        if stage in (None, "test", "predict") and self.test_set is None:
            images, labels = self._load(train=False)
            self.test_set = ImageTensorDataset(self._noisy(images, "test"), labels)
            if not self.train_file_size:
                self.train_file_size = self._train_file_size()

    def _train_file_size(self) -> int:
        path = Path(self.root) / self.dataset_class.__name__ / "raw" / self._raw_files()[0]
        if not path.exists():
            return 0
        with open(path, "rb") as f:
            header = f.read(8)
        return int.from_bytes(header[4:8], "big")

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool = False, batch_size: Optional[int] = None,
                order: Optional[Tensor] = None) -> DataLoader:
        dataset = getattr(self, f"{split}_set")
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run for the {split} split")
        return tensor_loader(dataset, batch_size or self.hparams.batch_size, shuffle, self.hparams.seed,
                             self.hparams.num_workers, order=order)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        first_epoch = self.trainer is None or self.trainer.current_epoch == 0
        first_epoch_options = [text for text, given in (
            (option("data", "first_epoch_batch_size", hp.first_epoch_batch_size), hp.first_epoch_batch_size),
            (option("data", "first_epoch_shuffle", False), not hp.first_epoch_shuffle)) if given]
        reload_every = getattr(self.trainer, "reload_dataloaders_every_n_epochs", 1)
        if first_epoch_options and reload_every != 1:
            verb = "changes" if len(first_epoch_options) == 1 else "change"
            raise ValueError(
                f"{' and '.join(first_epoch_options)} {verb} epoch 0 only, so the training loader must be rebuilt "
                f"after it, but the Trainer rebuilds it every {reload_every} epochs (0: never), and every epoch "
                f"would run as epoch 0. How to fix: pass {option('trainer', 'reload_dataloaders_every_n_epochs', 1)}."
            )
        batch_size = hp.first_epoch_batch_size if first_epoch and hp.first_epoch_batch_size else hp.batch_size
        file_order = None
        if first_epoch and not hp.first_epoch_shuffle and self.train_file_index is not None:
            file_order = torch.argsort(self.train_file_index)  # training-set positions sorted by file index
        return self._loader("train", shuffle=True, batch_size=batch_size, order=file_order)

    @property
    def class_names(self) -> list[str]:
        """The names of the labels 0-9 (torchvision's ``classes`` without MNIST's "0 - zero" spelling)."""
        names = list(self.dataset_class.classes)
        return [name.split(" - ")[0] for name in names]

    def input_spec(self) -> dict:
        """What a single image must become to be fed like this datamodule's test images (see
        :mod:`zoo.preprocessing`): 28x28 grey, light strokes on a dark background, pixels / 255, then normalized."""
        normalized = self.hparams.normalize
        return {
            "input_size": [28, 28], "channels": 1, "value_range": [0.0, 1.0],
            "mean": [self.mean] if normalized else None, "std": [self.std] if normalized else None,
            "polarity": "light-on-dark", "resize": "pad-to-square",
        }

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest (call after ``setup``)."""
        return {
            "dataset": self.dataset_name,
            "train_file_size": self.train_file_size,
            "train_size": len(self.train_set) if self.train_set is not None else None,
            "val_size": len(self.val_set) if self.val_set is not None else None,
            "test_size": len(self.test_set) if self.test_set is not None else None,
        }


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al., 2017) from ``<root>/FashionMNIST/raw/*-ubyte``; same options as MNIST."""

    dataset_class = datasets.FashionMNIST
    mean = 0.2860
    std = 0.3530


class EmbeddedMNISTDataModule(MNISTDataModule):
    """MNIST-mini, shipped inside the package so the quick-start runs offline.

    1,000 real MNIST training images (100 per class, taken from MNIST-5k) and the first 1,000 images of the
    real MNIST test set, in torchvision's layout. Too small for reportable figures: use it to try the zoo.
    ``root`` is ignored: the package's gzip files are unpacked once into the user cache
    (``$XDG_CACHE_HOME/lightning-zoo`` or ``~/.cache/lightning-zoo``, a folder named for their content) and
    reused by every later run; where that cache cannot be written, into a temporary folder removed at exit.
    """

    _extracted: Optional[Path] = None
    #: its data comes with the package: no ``root`` chooses where it is read from
    embedded_data = True

    @property
    def root(self) -> Path:
        if EmbeddedMNISTDataModule._extracted is None or not EmbeddedMNISTDataModule._extracted.exists():
            EmbeddedMNISTDataModule._extracted = self._unpack()
        return EmbeddedMNISTDataModule._extracted

    def _unpack(self) -> Path:
        """A folder holding ``MNIST/raw/<the four IDX files>``, unpacked from the package.

        The cached folder is built under a temporary name beside it and renamed into place whole, so a killed
        process or a concurrent one never leaves or reads a half-written folder; one whose files do not have the
        unpacked sizes is replaced.
        """
        package = resources.files("datamodules") / "embedded" / "mnist-mini"
        packed = {name: (package / f"{name}.gz").read_bytes() for name in self._raw_files()}
        unpacked = {name: gzip.decompress(data) for name, data in packed.items()}
        key = hashlib.sha256(b"".join(packed[name] for name in sorted(packed))).hexdigest()[:16]

        def write(folder: Path) -> None:
            raw = folder / "MNIST" / "raw"
            raw.mkdir(parents=True)
            for name, data in unpacked.items():
                (raw / name).write_bytes(data)

        def complete(folder: Path) -> bool:
            raw = folder / "MNIST" / "raw"
            return all((raw / name).is_file() and (raw / name).stat().st_size == len(data)
                       for name, data in unpacked.items())

        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lightning-zoo"
        folder = cache / f"mnist-mini-{key}"
        try:
            if complete(folder):
                return folder
            cache.mkdir(parents=True, exist_ok=True)
            building = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache))
            try:
                write(building)
                if folder.exists() and not complete(folder):  # a damaged earlier copy
                    shutil.rmtree(folder)
                os.rename(building, folder)
            except OSError:
                shutil.rmtree(building, ignore_errors=True)
                if not complete(folder):  # else another process renamed its copy into place first
                    raise
            return folder
        except OSError:  # a read-only or missing home: a private copy for this process
            folder = Path(tempfile.mkdtemp(prefix="zoo-mnist-mini-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            write(folder)
            return folder

    @property
    def dataset_name(self) -> str:
        return "MNIST-mini (embedded)"
