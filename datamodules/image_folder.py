"""Your own photos in class folders, prepared like CIFAR-10, so a shipped CIFAR-10 entry fine-tunes on them.

Layout (torchvision's ``ImageFolder`` one, per split)::

    root/train/<class>/*.png|jpg|jpeg      required
    root/val/<class>/*                     optional: else ``val_fraction`` of each training class, seeded
    root/test/<class>/*                    optional: else the validation images are the test images

The class names are the folder names under ``train/``, sorted (label 0 is the first). Every image is decoded once
by torchvision (:func:`datamodules.images.read_image`: a damaged or unsupported file is named in the error), its
central square resized to ``image_size`` (32: CIFAR-10's) square RGB and held as uint8, so batches, shuffling, augmentation and exact resume work
as for :class:`~datamodules.CIFAR10DataModule`, and the preprocessing is the shipped CIFAR-10 weights' one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor
from torchvision.transforms import v2

from datamodules._paths import DatasetNotFoundError, class_folders, missing_files_error
from datamodules.cifar10 import Augment, BatchedImageDataset, CIFAR10DataModule, Normalization
from datamodules.images import IMAGE_SUFFIXES, CapAspect, CenterSquare, MatchChannels, read_image
from zoo.errors import option

SPLIT_FOLDERS = ("train", "val", "test")


class ImageFolderDataModule(CIFAR10DataModule):
    """Labelled photos in ``root/{train,val,test}/<class>/`` as square RGB batches ``(x, y)`` (see the module).

    Args:
        root: the folder holding ``train/`` (and optionally ``val/`` and ``test/``).
        val_fraction: share of each training class held out for validation when there is no ``val/`` folder.
        min_classes: the fewest class folders under ``train/`` accepted: 2 for a classifier; 1 lets an unconditional
            generative model (gan_mnist, vae_mnist, ...) train on one folder of images.
        image_size: side of the square images (32, the shipped CIFAR-10 weights' size; a generative model trained
            on the folder takes ``--model.init_args.image_size`` of the same value and ``in_channels`` 3).
        batch_size, num_workers, seed, augment, normalize, drop_last: as for
            :class:`~datamodules.CIFAR10DataModule` (the defaults normalize with CIFAR-10's mean and std, as the
            shipped CIFAR-10 weights expect; ``normalize: none`` keeps the pixels in [0, 1], as the generative
            models read them).
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        min_classes: int = 2,
        image_size: int = 32,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        augment: Augment = "standard",
        normalize: Union[Normalization, bool, None] = None,
        drop_last: bool = False,
    ) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if min_classes < 1:
            raise ValueError(f"min_classes must be at least 1, got {min_classes}")
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        super().__init__(root=root, batch_size=batch_size, num_workers=num_workers, val_size=0, seed=seed,
                         augment=augment, normalize=normalize, drop_last=drop_last)
        self.classes = ()
        self.image_size = image_size
        self.prepare = v2.Compose([MatchChannels(3), CapAspect(), CenterSquare(),
                                   v2.Resize([self.image_size, self.image_size], antialias=True)])

    # ------------------------------------------------------------------ files
    def prepare_data(self) -> None:
        pass  # nothing to download: the photos are yours

    def class_folders(self, split: str) -> dict[str, list[Path]]:
        """The image files of each class folder under ``root/split`` (:func:`datamodules._paths.class_folders`;
        ``{}`` when the split folder is absent)."""
        return {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
                for d in class_folders(self.root / split)}

    def _read(self, files: list[Path]) -> Tensor:
        return torch.stack([self.prepare(read_image(path, channels=3)) for path in files])

    def _labelled(self, by_class: dict[str, list[Path]], split: str) -> tuple[list[Path], list[int]]:
        unknown = sorted(set(by_class) - set(self.classes))
        if unknown:
            raise ValueError(f"{self.root / split} has class folders {unknown} that train/ lacks ({list(self.classes)});"
                             f" give every split the same class folders")
        files, labels = [], []
        for name, found in by_class.items():
            files += found
            labels += [self.classes.index(name)] * len(found)
        if not files:
            raise missing_files_error("images", self.root / split, ["<class>/*.jpg"],
                                      f"put the {split} images in one folder per class")
        return files, labels

    def _dataset(self, files: list[Path], labels: list[int], with_index: bool = False) -> BatchedImageDataset:
        return BatchedImageDataset(self._read(files), torch.tensor(labels, dtype=torch.long), with_index=with_index)

    # ------------------------------------------------------------------ splits
    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        train = self.class_folders("train")
        empty = [name for name, files in train.items() if not files]
        needed = self.hparams.min_classes
        if not empty and 0 < len(train) < needed:
            raise DatasetNotFoundError(
                f"found {len(train)} class folder{'s' if len(train) > 1 else ''} under {self.root / 'train'}: "
                + ", ".join(f"'{name}' ({len(files)} images)" for name, files in train.items())
                + f"; {'a classifier needs at least two classes' if needed == 2 else f'min_classes is {needed}'}: "
                f"put each class's images in its own folder under train/"
                + (". To train an unconditional generative model on one folder of images, pass "
                   f"{option('data', 'min_classes', 1)}" if len(train) == 1 else ""))
        if not train or empty:
            raise missing_files_error(
                "an image folder dataset", self.root, ["train/<class A>/*.jpg", "train/<class B>/*.jpg"],
                f"put each class's PNG/JPEG images in its own folder under train/ (at least "
                f"{self.hparams.min_classes} class{'es' if self.hparams.min_classes > 1 else ''}"
                f"{'; empty: ' + ', '.join(empty) if empty else ''})")
        self.classes = tuple(train)
        files, labels = self._labelled(train, "train")
        if self.class_folders("val"):
            val_files, val_labels = self._labelled(self.class_folders("val"), "val")
        else:  # a seeded share of each class
            generator = torch.Generator().manual_seed(self.hparams.seed)
            keep, val_files, val_labels = [], [], []
            for label in range(len(self.classes)):
                members = [i for i, y in enumerate(labels) if y == label]
                order = torch.randperm(len(members), generator=generator).tolist()
                n_val = max(1, round(len(members) * self.hparams.val_fraction)) if len(members) > 1 else 0
                val_files += [files[members[i]] for i in order[:n_val]]
                val_labels += [label] * n_val
                keep += [members[i] for i in order[n_val:]]
            files, labels = [files[i] for i in sorted(keep)], [labels[i] for i in sorted(keep)]
        self.train_set = self._dataset(files, labels, with_index=True)
        self.val_set = self._dataset(val_files, val_labels)
        test = self.class_folders("test")
        self.test_set = self._dataset(*self._labelled(test, "test")) if test else self.val_set
        flips = torch.Generator().manual_seed(self.hparams.seed + 1)
        self._flip_bits = torch.rand(len(files), generator=flips) < 0.5

    # ------------------------------------------------------------------ what a checkpoint and a manifest keep
    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def state_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.classes = tuple(state_dict.get("classes", self.classes))

    def describe(self) -> dict:
        return {
            "dataset": f"image folders ({self.root.name}: {', '.join(self.classes)})",
            "train_size": len(self.train_set) if self.train_set is not None else None,
            "val_size": len(self.val_set) if self.val_set is not None else None,
            "test_size": len(self.test_set) if self.test_set is not None else None,
            "test_split": "test" if self.class_folders("test") else "val (no test/ folder)",
        }
