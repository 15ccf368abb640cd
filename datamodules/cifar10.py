"""CIFAR-10 (Krizhevsky, 2009) held as uint8 tensors, loaded in whole batches and augmented batch-wise on the device.

The files are torchvision's layout, ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``.
Batches leave the loader as uint8 ``(N, 3, 32, 32)``; :meth:`CIFAR10DataModule.on_after_batch_transfer` turns
them into normalized floats on the batch's device and, for training batches, applies the augmentation with tensor
operations over the whole batch (one random crop offset and one flip bit per image, no per-image Python):

- ``"book"`` ("深度学习入门之PyTorch", ch. 4): Resize 40 -> random horizontal flip -> RandomCrop 32, with the
  book's ``Normalize(0.5, 0.5)``;
- ``"standard"`` (He et al., 2016, section 4.2): RandomCrop 32 with zero padding 4 -> random horizontal flip;
- ``"airbench"`` (Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"): random translation by up to
  2 pixels with reflect padding and *alternating* flips: every image gets a seeded flip bit, inverted every other
  epoch, so each image is seen flipped and unflipped in consecutive epochs;
- ``"none"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.datasets.vision import VisionDataset

from datamodules import _safe_pickle
from datamodules._batched import (
    Indices, as_index, check_batch_size, run_seed, step_generator, tensor_loader, training_position,
)
from datamodules._paths import (CorruptDatasetError, LabelOutOfRangeError, download_failed_error, missing_files_error,
                                resolve_root)
from datamodules._splits import SplitLoaders
from datamodules.mnist import ImageTensorDataset
from zoo.errors import option

Augment = Literal["none", "book", "standard", "airbench"]
Normalization = Literal["cifar10", "half", "none"]

#: per-channel mean and std of the 50,000 CIFAR-10 training images (pixels in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class LocalCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR-10 dataset, read from any good copy of the batch files without running code from them.

    torchvision checks the md5 of each batch file. Copies rebuilt from the original pixels (whose
    ``filenames`` field may differ) hold the same images and labels but other bytes, so this reader checks
    what each file holds instead (:func:`read_batch_file`); ``download=True`` still verifies the downloaded
    archive's md5. torchvision unpickles the files with ``pickle.load``, which calls any global a file names;
    this reader admits only the globals of numpy arrays (:mod:`datamodules._safe_pickle`).
    """

    def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
        # torchvision's CIFAR10.__init__, with the batches read by read_batch_file
        VisionDataset.__init__(self, root)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        folder = Path(self.root) / self.base_folder
        entries = [read_batch_file(folder / name) for name, _ in (self.train_list if train else self.test_list)]
        self.data = np.vstack([entry["data"] for entry in entries]).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        self.targets = [int(label) for entry in entries for label in entry["labels"]]
        self._load_meta()

    def _check_integrity(self) -> bool:
        return batch_files_present(Path(self.root) / self.base_folder)

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        self.classes = read_meta_file(path) if path.is_file() else list(CIFAR10_CLASSES)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


def batch_files_present(folder: Path, train: Optional[bool] = None) -> bool:
    """Whether ``folder`` holds the training (``train=True``), test (``False``) or all (``None``) batch files."""
    parts = {True: LocalCIFAR10.train_list, False: LocalCIFAR10.test_list}
    names = [name for part in ([True, False] if train is None else [train]) for name, _ in parts[part]]
    return all((folder / name).is_file() for name in names)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _replace() -> str:
    """How to replace a bad CIFAR-10 file (the end of each damaged-file message)."""
    return ("Replace it with the file from the official archive (cifar-10-python.tar.gz): delete it and pass "
            f"{option('data', 'download', True)}, or copy a good one.")


def _unpickle(path: Path) -> Any:
    """``path`` unpickled with only the globals of numpy arrays admitted (``UnsafePickleError`` names any other)."""
    try:
        return _safe_pickle.load(path, "a CIFAR-10 batch file", _replace())
    except _safe_pickle.UnsafePickleError:
        raise
    except Exception as err:  # a damaged pickle fails in many ways: truncated, bad opcodes, ...
        raise CorruptDatasetError(
            f"{path} is not a readable CIFAR-10 batch file ({type(err).__name__}: {err}); it is truncated or "
            f"damaged. {_replace()}"
        ) from err


def read_meta_file(path: Path) -> list[str]:
    """The class names of ``batches.meta``; :class:`CorruptDatasetError` names ``path`` unless it holds them."""
    entry = _unpickle(path)
    names = entry.get("label_names") if isinstance(entry, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != len(CIFAR10_CLASSES):
        raise CorruptDatasetError(
            f"{path} does not hold the CIFAR-10 metadata: expected a dict whose 'label_names' lists the "
            f"{len(CIFAR10_CLASSES)} class names, got {type(entry).__name__}"
            f"{' without label_names' if isinstance(entry, dict) and names is None else ''}. {_replace()}"
        )
    return list(names)


def read_batch_file(path: Path) -> dict[str, Any]:
    """A CIFAR-10 batch: a dict whose ``data`` are uint8 rows ``(N, 3072)`` and ``labels`` N classes in 0-9.

    Raises :class:`CorruptDatasetError` naming ``path`` and the fix for anything else, and
    :class:`LabelOutOfRangeError` (a ``ValueError`` too) for a label outside 0-9.
    """
    entry = _unpickle(path)
    if not isinstance(entry, dict):
        raise CorruptDatasetError(
            f"{path} does not hold CIFAR-10 images: expected a dict with 'data' and 'labels', got "
            f"{type(entry).__name__}. {_replace()}"
        )
    data, labels = np.asarray(entry.get("data")), entry.get("labels")
    if data.ndim != 2 or data.shape[1] != 3072 or not len(data) or labels is None or len(labels) != len(data):
        raise CorruptDatasetError(
            f"{path} does not hold CIFAR-10 images: expected 'data' of shape (N, 3072), N >= 1, and N 'labels', "
            f"got data {data.shape} and {None if labels is None else len(labels)} labels. {_replace()}"
        )
    if data.dtype != np.uint8:
        raise CorruptDatasetError(
            f"{path} does not hold CIFAR-10 images: expected uint8 pixels, got {data.dtype}. {_replace()}"
        )
    classes = np.asarray(labels)
    if classes.dtype.kind not in "iu":
        raise CorruptDatasetError(
            f"{path} does not hold CIFAR-10 labels: expected integers, got {classes.dtype} values. {_replace()}"
        )
    outside = np.flatnonzero((classes < 0) | (classes >= len(CIFAR10_CLASSES)))
    if outside.size:
        raise LabelOutOfRangeError(
            f"{path} holds the label {classes[outside[0]]} (image {outside[0]}; {outside.size} labels in all) "
            f"outside CIFAR-10's classes 0-{len(CIFAR10_CLASSES) - 1}. {_replace()}"
        )
    return {"data": data, "labels": classes}


class BatchedImageDataset(ImageTensorDataset):
    """uint8 images ``(N, C, H, W)`` and labels ``(N,)``; the DataLoader fetches whole batches by indexing.

    With ``with_index=True`` a batch is ``(images, labels, indices)``: per-image augmentation state (the
    alternating flip) is looked up by index on the device.
    """

    def __init__(self, images: Tensor, labels: Tensor, with_index: bool = False) -> None:
        super().__init__(images, labels)
        self.with_index = with_index

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Indices) -> tuple[Tensor, ...]:
        index = as_index(indices)
        batch = super().__getitems__(index)
        return (*batch, index) if self.with_index else batch


def random_crop(images: Tensor, size: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """One random ``size x size`` window of each image of ``images`` (N, C, H, W), by one gather."""
    n, c, h, w = images.shape
    device = images.device
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=device)
    offsets = torch.arange(size, device=device)
    rows, cols = top[:, None] + offsets, left[:, None] + offsets  # (N, size) each
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, size * size).expand(n, c, size * size)
    return images.reshape(n, c, h * w).gather(2, flat).view(n, c, size, size)


def flip_where(images: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right the images whose entry of the boolean ``flip`` (N,) is set."""
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class CIFAR10DataModule(SplitLoaders):
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` with a seeded train/val split and batch-wise augmentation.

    Batches reaching the model are ``(x, y)``: ``x`` float ``(N, 3, 32, 32)`` normalized (in [0, 1] with
    ``normalize: none``), ``y`` long ``(N,)``.

    Args:
        root: data directory (default ``$ZOO_DATA_DIR``, else ``./data``).
        download: fetch the archive with torchvision when the files are missing.
        batch_size: batch size of every loader.
        num_workers: DataLoader workers (batches are one tensor gather: 0 is usually fastest).
        val_size: training images held out for validation (seeded; 5,000 leaves 45,000 for training).
        seed: seed of the split, of the alternating-flip bits, and (mixed with ``--seed_everything``) of the
            shuffling (a function of the epoch) and of the augmentation's draws (a function of epoch and step).
        augment: ``"none"``, ``"book"``, ``"standard"`` or ``"airbench"`` (module docstring).
        normalize: ``"cifar10"`` (the training set's per-channel mean and std), ``"half"`` (the book's
            ``Normalize(0.5, 0.5)``) or ``"none"``/``false`` (pixels stay in [0, 1], as the generative models read
            them; MNISTDataModule's ``normalize: false``); default: ``"half"`` with ``augment="book"``, else
            ``"cifar10"``.
        drop_last: drop the last incomplete training batch (the fast recipes do).
    """

    num_classes = 10
    image_size = 32

    def __init__(
        self,
        root: Optional[str] = None,
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int = 5000,
        seed: int = 0,
        augment: Augment = "standard",
        normalize: Union[Normalization, bool, None] = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size)
        if augment not in ("none", "book", "standard", "airbench"):
            raise ValueError(f"augment must be 'none', 'book', 'standard' or 'airbench', got {augment!r}")
        if normalize not in (None, True, False, "cifar10", "half", "none"):
            raise ValueError(f"normalize must be 'cifar10', 'half' or 'none' (false: pixels in [0, 1]), got {normalize!r}")
        if not 0 <= val_size < 50000:
            raise ValueError(f"val_size must be in [0, 50000), got {val_size}")
        self.save_hyperparameters()
        self.train_set: Optional[BatchedImageDataset] = None
        self.val_set: Optional[BatchedImageDataset] = None
        self.test_set: Optional[BatchedImageDataset] = None
        self.classes: tuple[str, ...] = CIFAR10_CLASSES
        self._flip_bits: Optional[Tensor] = None

    # ------------------------------------------------------------------ files
    @property
    def root(self) -> Path:
        return resolve_root(self.hparams.root)

    @property
    def normalized(self) -> bool:
        """Whether batches are normalized (``normalize`` is not ``"none"``/``false``: pixels then stay in [0, 1])."""
        return self.hparams.normalize not in ("none", False)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per channel used to normalize the pixels in [0, 1] (0 and 1 when not normalized)."""
        kind = self.hparams.normalize
        if kind in (None, True):
            kind = "half" if self.hparams.augment == "book" else "cifar10"
        if kind in ("none", False):
            return (0.0,) * 3, (1.0,) * 3
        return ((0.5,) * 3, (0.5,) * 3) if kind == "half" else (CIFAR10_MEAN, CIFAR10_STD)

    def _missing_error(self) -> FileNotFoundError:
        folder = self.root / LocalCIFAR10.base_folder
        expected = [name for name, _ in LocalCIFAR10.train_list + LocalCIFAR10.test_list] + ["batches.meta"]
        return missing_files_error(
            "CIFAR-10", folder, expected,
            f"pass {option('data', 'download', True)} (needs internet), or copy the python-version batch files "
            f"(cifar-10-python.tar.gz, extracted) into {folder}, or point ZOO_DATA_DIR / {option('data', 'root')} "
            f"at a directory holding cifar-10-batches-py/.",
        )

    def prepare_data(self) -> None:
        if self.hparams.download and not batch_files_present(self.root / LocalCIFAR10.base_folder):
            try:
                LocalCIFAR10(str(self.root), train=True, download=True)
            except Exception as err:  # network failures come in many types
                raise download_failed_error(self._missing_error(), err) from err

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        """uint8 images ``(N, 3, 32, 32)`` and labels of one part; a damaged or planted file is named."""
        if not batch_files_present(self.root / LocalCIFAR10.base_folder, train):
            raise self._missing_error()
        dataset = LocalCIFAR10(str(self.root), train=train)
        self.classes = tuple(dataset.classes)
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)

    # ------------------------------------------------------------------ splits
    def setup(self, stage: Optional[str] = None) -> None:
        hp = self.hparams
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self._load(train=True)
            if hp.val_size >= len(images):
                raise ValueError(
                    f"val_size={hp.val_size} leaves no training images: the training files hold {len(images)}; "
                    f"set {option('data', 'val_size')} below {len(images)}"
                )
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(hp.seed))
            val_idx, train_idx = order[: hp.val_size], order[hp.val_size :]
            self.train_set = BatchedImageDataset(images[train_idx], labels[train_idx], with_index=True)
            self.val_set = BatchedImageDataset(images[val_idx], labels[val_idx])
            flips = torch.Generator().manual_seed(hp.seed + 1)
            self._flip_bits = torch.rand(len(train_idx), generator=flips) < 0.5
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = BatchedImageDataset(*self._load(train=False))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = getattr(self, f"{split}_set")
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run for the {split} split")
        return tensor_loader(dataset, self.hparams.batch_size, shuffle, self.hparams.seed, self.hparams.num_workers,
                             drop_last=self.hparams.drop_last and split == "train")

    # ------------------------------------------------------------------ batch-wise transforms
    def normalize(self, images: Tensor) -> Tensor:
        """Float images in [0, 1] ``(N, 3, H, W)`` -> normalized, on the same device (as they are without)."""
        if not self.normalized:
            return images
        mean, std = (torch.tensor(v, device=images.device).view(1, 3, 1, 1) for v in self.normalization)
        return (images - mean) / std

    def augment(self, images: Tensor, indices: Tensor, epoch: int, generator: torch.Generator) -> Tensor:
        """Augment a batch of uint8 images ``(N, 3, S, S)`` (``indices``: their training-set rows); returns uint8.

        Crops, flips and the book's resize work on the uint8 pixels, as torchvision's v2 transforms do on uint8
        image tensors; the caller converts to float and normalizes afterwards.
        """
        kind, n, size = self.hparams.augment, len(images), images.shape[-1]
        if kind == "none":
            return images
        if kind == "airbench":
            flip = self._flip_bits.to(images.device)[indices] ^ bool(epoch % 2)
            padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
            return flip_where(random_crop(padded, size, generator), flip)
        flip = torch.rand(n, generator=generator, device=images.device) < 0.5
        if kind == "book":
            channels_last = images.contiguous(memory_format=torch.channels_last)  # the fast uint8 resize kernel
            larger = size * 5 // 4  # the book's 40 for 32
            resized = F.interpolate(channels_last, size=(larger, larger), mode="bilinear", antialias=True).contiguous()
            return random_crop(flip_where(resized, flip), size, generator)
        padded = F.pad(images, (4, 4, 4, 4))  # zero padding: black pixels, as RandomCrop(32, padding=4)
        return flip_where(random_crop(padded, size, generator), flip)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if len(batch) == 3:  # a training batch: (uint8 images, labels, indices)
            images, labels, indices = batch
            epoch, step = training_position(self.trainer) or (0, 0)
            generator = step_generator(run_seed(self.hparams.seed), epoch, step, images.device)
            return self.normalize(self.augment(images, indices, epoch, generator).float() / 255.0), labels
        images, labels = batch
        return self.normalize(images.float() / 255.0), labels

    @property
    def class_names(self) -> list[str]:
        return list(CIFAR10_CLASSES)

    def input_spec(self) -> dict:
        """What a single image must become to be fed like the test images (see :mod:`zoo.preprocessing`):
        ``image_size`` square RGB (the central square of a larger photo), pixels / 255, normalized per channel
        (unless ``normalize`` is ``"none"``)."""
        mean, std = (list(v) if self.normalized else None for v in self.normalization)
        return {"input_size": [self.image_size] * 2, "channels": 3, "value_range": [0.0, 1.0], "mean": mean,
                "std": std, "polarity": None, "resize": "center-crop"}

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest (call after ``setup``)."""
        return {
            "dataset": "CIFAR-10",
            "train_size": len(self.train_set) if self.train_set is not None else None,
            "val_size": len(self.val_set) if self.val_set is not None else None,
            "test_size": len(self.test_set) if self.test_set is not None else None,
            "augment": self.hparams.augment,
            "normalize": dict(zip(("mean", "std"), self.normalization)),
        }

