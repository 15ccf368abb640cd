"""Kaggle "Dogs vs. Cats" (2013) photos for the transfer learning of textbook chapter 7 ("深度学习入门之PyTorch").

Two on-disk layouts are read, with JPEG (or PNG) decoding by ``torchvision.io``:

- ``folders``: one folder per class, ``<root>/train/{cat,dog}/*.jpg`` and ``<root>/val/{cat,dog}/*.jpg`` (what
  the book makes by moving files), optionally ``<root>/test/{cat,dog}/*.jpg``. The classes are the folders under
  ``train/`` (sorted), so photos of your own classes (``train/{daisy,rose,tulip}/``) are read the same way, with
  ``val/`` and ``test/`` optional.
- ``kaggle``: Kaggle's flat ``<root>/train/cat.N.jpg`` and ``<root>/train/dog.N.jpg``.

The test split selects nothing: it is ``test/`` when there is one; else the book's ``val/`` folder (with neither,
or in the kaggle layout: a seeded ``test_fraction`` of each class) is held out as the test split; the validation
split that picks the best epoch is ``val/`` beside a ``test/``, else a seeded ``val_fraction`` of each class of the
training photos. ``predict_dir`` names a folder of the user's own photos for ``zoo predict``. Batches are
``(x, y, path)``: images ``(N, 3, S, S)`` normalized with the backbone's mean and std, labels (the index in
``class_names``: 0 cat, 1 dog; -1 for unlabelled files) and the file paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from datamodules._batched import sample_loader
from datamodules._paths import class_folders, missing_files_error, resolve_root
from datamodules._splits import SplitLoaders
from datamodules.images import read_image
from zoo.errors import option

CLASSES = ("cat", "dog")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")  # compared in lower case
Layout = Literal["auto", "folders", "kaggle"]


class PhotoFiles(Dataset):
    """JPEG/PNG files with labels; items are ``(finish(prepare(image)), label, path)``.

    ``prepare`` is the deterministic uint8 part of the transform (resize, crop); with ``keep_prepared`` its
    results stay in memory, so later epochs decode nothing (for frozen backbones, whose features are cached).
    """

    def __init__(self, files: Sequence[Path], labels: Sequence[int], prepare: Callable[[Tensor], Tensor],
                 finish: Callable[[Tensor], Tensor], keep_prepared: bool = False):
        if len(files) != len(labels):
            raise ValueError(f"got {len(files)} files but {len(labels)} labels")
        self.files, self.labels, self.prepare, self.finish = list(files), list(labels), prepare, finish
        self.prepared: Optional[dict[int, Tensor]] = {} if keep_prepared else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int, str]:
        path = self.files[index]
        if self.prepared is not None and index in self.prepared:
            image = self.prepared[index]
        else:
            image = self.prepare(read_image(path, 3))
            if self.prepared is not None:
                self.prepared[index] = image
        return self.finish(image), self.labels[index], str(path)


def photos_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def eval_resize(image_size: int) -> v2.Compose:
    """Resize the short side to ``image_size * 256 / 224`` and center-crop ``image_size`` (torchvision's ImageNet
    evaluation transform)."""
    return v2.Compose([v2.Resize(round(image_size * 256 / 224), antialias=True), v2.CenterCrop(image_size)])


def to_normalized_float(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def train_augmentation(image_size: int) -> v2.Compose:
    """Random resized crop (scale 0.35-1) and horizontal flip."""
    return v2.Compose([v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
                       v2.RandomHorizontalFlip()])


class DogsVsCatsDataModule(SplitLoaders):
    """Cats (label 0) and dogs (label 1), or the classes of your own folders, from JPEG or PNG files, in the
    ``folders`` or the ``kaggle`` layout.

    Args:
        root: dataset directory (``$ZOO_DATA_DIR`` may appear in it, e.g. ``$ZOO_DATA_DIR/dogs-vs-cats-3k``).
        layout: ``"folders"``, ``"kaggle"`` or ``"auto"`` (folders when ``train/`` holds two class folders or more).
        image_size: side of the square network input (224 for ImageNet backbones; smaller is cheaper on CPUs).
        augment: random resized crop + flip on training images (off: the evaluation transform everywhere, which
            frozen backbones with cached features need).
        mean, std: the backbone's input normalization (default: ImageNet's, as torchvision's weights use).
        val_fraction: share of each class of the training photos held out for validation (seeded by ``seed``).
        test_fraction: share of each class of the training photos held out as the test split when there is
            neither ``test/`` nor ``val/`` (always in the kaggle layout).
        seed: seed of the splits.
        batch_size, num_workers: DataLoader settings.
        predict_dir: a folder of photos to classify with ``zoo predict`` (default: the test split).
        keep_images: keep the resized and cropped uint8 images of non-augmented splits in memory after the first
            epoch (about 150 KB per image at 224 px), so that a head trained on cached features decodes no photo
            after its first epoch.
    """

    def __init__(
        self,
        root: Optional[str] = None,
        layout: Layout = "auto",
        image_size: int = 224,
        augment: bool = True,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        predict_dir: Optional[str] = None,
        keep_images: bool = False,
    ) -> None:
        super().__init__()
        if layout not in ("auto", "folders", "kaggle"):
            raise ValueError(f"layout must be 'auto', 'folders' or 'kaggle', got {layout!r}")
        if not (0.0 < val_fraction < 1.0 and 0.0 < test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
            raise ValueError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, got "
                             f"{val_fraction} and {test_fraction}")
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        self.save_hyperparameters()
        self.classes: tuple[str, ...] = CLASSES  # the folders layout reads them from train/ at setup
        self.splits: dict[str, tuple[list[Path], list[int]]] = {}
        self.datasets: dict[str, PhotoFiles] = {}

    @property
    def root(self) -> Path:
        return resolve_root(self.hparams.root)

    def class_folders(self, split: str) -> list[str]:
        """The names of the class folders under ``root/split`` (:func:`datamodules._paths.class_folders`)."""
        return [folder.name for folder in class_folders(self.root / split)]

    def resolved_layout(self) -> str:
        """The layout of ``root``; a missing dataset raises an error naming the expected files."""
        train = self.root / "train"
        folders = len(self.class_folders("train")) >= 2
        kaggle = train.is_dir() and any(train.glob("cat.*.jpg")) and any(train.glob("dog.*.jpg"))
        wanted = self.hparams.layout
        if wanted in ("auto", "folders") and folders:
            return "folders"
        if wanted in ("auto", "kaggle") and kaggle:
            return "kaggle"
        expected = {
            "folders": ["train/cat/*.jpg", "train/dog/*.jpg", "val/cat/*.jpg", "val/dog/*.jpg"],
            "kaggle": ["train/cat.N.jpg", "train/dog.N.jpg"],
        }
        listed = expected["folders"] + expected["kaggle"] if wanted == "auto" else expected[wanted]
        raise missing_files_error(
            "Dogs vs. Cats", self.root, listed,
            "download the Kaggle 'Dogs vs. Cats' train.zip (kaggle.com/c/dogs-vs-cats) and unzip it into the root "
            "(kaggle layout), or put the photos in class folders train/{cat,dog}/ and val/{cat,dog}/ (or your own "
            "classes: train/<class>/, two or more)",
        )

    def _folder_split(self, split: str) -> tuple[list[Path], list[int]]:
        extra = sorted(set(self.class_folders(split)) - set(self.classes))
        if extra:
            raise ValueError(f"{self.root / split} has class folders {extra} that train/ lacks ({list(self.classes)});"
                             f" give every split the same class folders")
        files, labels = [], []
        for label, name in enumerate(self.classes):
            found = photos_in(self.root / split / name) if (self.root / split / name).is_dir() else []
            if not found:
                raise missing_files_error("Dogs vs. Cats", self.root, [f"{split}/{name}/*.jpg"],
                                          f"put the {split} photos of class {name!r} in {split}/{name}/")
            files += found
            labels += [label] * len(found)
        return files, labels

    def _held_out(self, files: Sequence[Path], labels: Sequence[int], fraction: float, salt: int
                  ) -> tuple[tuple[list[Path], list[int]], tuple[list[Path], list[int]]]:
        """(kept, held out): a seeded ``fraction`` of each class of ``files`` held out, in file order."""
        generator = torch.Generator().manual_seed(self.hparams.seed * 1000 + salt)
        kept: tuple[list[Path], list[int]] = ([], [])
        held: tuple[list[Path], list[int]] = ([], [])
        for label in range(len(self.classes)):  # per class, so both parts keep the class balance
            members = [i for i, y in enumerate(labels) if y == label]
            order = torch.randperm(len(members), generator=generator).tolist()
            chosen = {members[i] for i in order[:round(len(members) * fraction)]}
            for i in members:
                part = held if i in chosen else kept
                part[0].append(files[i])
                part[1].append(label)
        return kept, held

    def _kaggle_files(self) -> tuple[list[Path], list[int]]:
        files, labels = [], []
        for label, name in enumerate(CLASSES):
            found = sorted(self.root.joinpath("train").glob(f"{name}.*.jpg"))
            files += found
            labels += [label] * len(found)
        return files, labels

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        if self.resolved_layout() == "folders":
            self.classes = tuple(self.class_folders("train"))
            train = self._folder_split("train")
            has_val, has_test = (self.root / "val").is_dir(), (self.root / "test").is_dir()
            if has_val and has_test:
                self.splits = {"train": train, "val": self._folder_split("val"), "test": self._folder_split("test")}
                return
            if has_test or has_val:  # without test/, the book's val/ is held out as the test split
                test = self._folder_split("test" if has_test else "val")
            else:
                train, test = self._held_out(*train, hp.test_fraction, salt=1)
        else:
            self.classes = CLASSES
            train, test = self._held_out(*self._kaggle_files(), hp.test_fraction, salt=1)
        train, val = self._held_out(*train, hp.val_fraction, salt=2)
        self.splits = {"train": train, "val": val, "test": test}

    def photo_files(self, files: Sequence[Path], labels: Sequence[int], split: str) -> PhotoFiles:
        hp = self.hparams
        finish = to_normalized_float(hp.mean, hp.std)
        if split == "train" and hp.augment:
            return PhotoFiles(files, labels, nn.Identity(), v2.Compose([train_augmentation(hp.image_size), finish]))
        return PhotoFiles(files, labels, eval_resize(hp.image_size), finish,
                         keep_prepared=hp.keep_images and split != "predict")

    def dataset(self, split: str) -> PhotoFiles:
        """The ``train``, ``val`` or ``test`` split as a dataset of ``(image, label, path)``."""
        self.setup()
        key = split
        if key not in self.datasets:  # one per split, so images kept in memory survive the epochs
            self.datasets[key] = self.photo_files(*self.splits[key], split=split)
        return self.datasets[key]

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return sample_loader(self.dataset(split), self.hparams.batch_size, shuffle, None, seed=self.hparams.seed,
                             num_workers=self.hparams.num_workers)

    def predict_dataloader(self) -> DataLoader:
        """The user's photos in ``predict_dir`` (labels -1), else the test split."""
        if self.hparams.predict_dir is None:
            return self._loader("test")
        directory = resolve_root(self.hparams.predict_dir)
        files = photos_in(directory) if directory.is_dir() else []
        if not files:
            raise missing_files_error("photos to classify", directory, ["*.jpg"],
                                      f"point {option('data', 'predict_dir')} at a folder holding .jpg/.jpeg/.png "
                                      "files", in_root=False)
        dataset = self.photo_files(files, [-1] * len(files), "predict")
        return DataLoader(dataset, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def state_dict(self) -> dict:
        """The class names, kept in a ``zoo fit`` checkpoint so that ``zoo predict <run>.ckpt`` names the classes."""
        return {"classes": list(self.classes)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.classes = tuple(state_dict.get("classes", self.classes))

    def input_spec(self) -> dict:
        """What a photo must become to be fed like the evaluation images (see :mod:`zoo.preprocessing`): RGB, short
        side to ``image_size * 256 / 224``, the central ``image_size`` square, pixels / 255, normalized."""
        size = self.hparams.image_size
        return {"input_size": [size, size], "channels": 3, "value_range": [0.0, 1.0], "mean": list(self.hparams.mean),
                "std": list(self.hparams.std), "polarity": None, "resize": "resize-crop"}

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest."""
        self.setup()
        name = "Dogs vs. Cats" if self.classes == CLASSES else f"{len(self.classes)} classes"
        return {
            "dataset": f"{name} ({self.root.name}, {self.resolved_layout()} layout)",
            "train_size": len(self.splits["train"][0]),
            "val_size": len(self.splits["val"][0]),
            "test_size": len(self.splits["test"][0]),
            "test_split": "test (held out: selects no epoch)",
        }
