"""Moving MNIST (Srivastava et al., 2015; the benchmark of Shi et al., 2015, section 4.1).

Each sequence shows ``num_digits`` digits bouncing inside a square frame: every digit starts at a random
position with a random direction at a fixed speed, and a velocity component flips sign when the digit would
leave the frame. Overlapping digits are combined by their pixel-wise maximum. The first ``frames_in`` frames are
the input, the next ``frames_out`` frames the target.

Two sources:

- ``source="generate"`` (default): sequences are generated from the digits of an MNIST-family datamodule's files
  (``digits="mnist"``: ``<root>/MNIST/raw``, e.g. MNIST-5k; ``"fashion_mnist"``: ``<root>/FashionMNIST/raw``).
  Training sequences use training digits; validation and test sequences use two disjoint halves of the test
  digits. Every sequence depends only on ``seed`` and its split, so the test set does not change with
  ``num_train``. Only the digit indices and trajectories are stored; frames are drawn when a sequence is read.
- ``source="torchvision"``: the 10,000 sequences of ``torchvision.datasets.MovingMNIST``
  (``<root>/MovingMNIST/mnist_test_seq.npy``), split by a seeded permutation into test, validation and training
  sequences (its own sample split; torchvision's ``split`` divides frames, not sequences).

Batches are ``(input_frames, future_frames)``: float tensors in [0, 1] of shapes ``(N, frames_in, 1, S, S)``
and ``(N, frames_out, 1, S, S)`` with ``S = image_size``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets

from datamodules._batched import Indices, as_index, check_batch_size, tensor_loader
from datamodules._paths import download_failed_error, missing_files_error, resolve_root
from datamodules._splits import SplitLoaders
from datamodules.mnist import FashionMNISTDataModule, MNISTDataModule
from zoo.errors import option

DigitSource = Literal["mnist", "fashion_mnist"]
SequenceSource = Literal["generate", "torchvision"]
DIGIT_DATAMODULES: dict[str, type[MNISTDataModule]] = {
    "mnist": MNISTDataModule,
    "fashion_mnist": FashionMNISTDataModule,
}
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}


def bouncing_trajectories(
    num_sequences: int, num_digits: int, num_frames: int, max_position: float, speed: float,
    generator: torch.Generator,
) -> Tensor:
    """Top-left corners of bouncing digits, ``(num_sequences, num_frames, num_digits, 2)`` as integer (row, col).

    Positions start uniformly in ``[0, max_position]``, directions uniformly in ``[0, 2 pi)``; each frame moves
    ``speed`` pixels and a component that leaves ``[0, max_position]`` is reflected back with its sign flipped.
    All sequences and digits are moved at once; the loop runs over frames only.
    """
    position = torch.rand(num_sequences, num_digits, 2, generator=generator) * max_position
    angle = torch.rand(num_sequences, num_digits, generator=generator) * (2 * math.pi)
    velocity = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1) * speed
    frames = []
    for _ in range(num_frames):
        frames.append(position)
        position = position + velocity
        below, above = position < 0, position > max_position
        position = torch.where(below, -position, torch.where(above, 2 * max_position - position, position))
        position = position.clamp(0, max_position)  # a step longer than the frame would bounce twice
        velocity = torch.where(below | above, -velocity, velocity)
    return torch.stack(frames, dim=1).round().long()


def render_frames(digits: Tensor, corners: Tensor, image_size: int) -> Tensor:
    """Paste ``digits`` ``(..., D, s, s)`` at ``corners`` ``(..., T, D, 2)`` into ``(..., T, S, S)`` frames.

    Leading dimensions (a batch of sequences) are optional. Overlaps keep the pixel-wise maximum (one
    ``scatter_reduce`` over all sequences, frames and digits).
    """
    *batch, num_frames, num_digits, _ = corners.shape
    size = digits.shape[-1]
    if corners.min() < 0 or corners.max() > image_size - size:
        raise ValueError(f"digit corners must lie in [0, {image_size - size}], got [{corners.min()}, {corners.max()}]")
    offsets = torch.arange(size)
    rows = corners[..., 0, None, None] + offsets[:, None]  # (..., T, D, s, 1)
    cols = corners[..., 1, None, None] + offsets[None, :]  # (..., T, D, 1, s)
    index = (rows * image_size + cols).reshape(*batch, num_frames, -1)
    values = digits.unsqueeze(-4).expand(*batch, num_frames, num_digits, size, size).reshape(*batch, num_frames, -1)
    canvas = digits.new_zeros(*batch, num_frames, image_size * image_size)
    canvas.scatter_reduce_(-1, index, values, reduce="amax")
    return canvas.view(*batch, num_frames, image_size, image_size)


class GeneratedMovingMNIST(Dataset):
    """Sequences drawn from stored digit indices and trajectories; item ``i`` is ``(T, 1, S, S)`` in [0, 1].

    ``__getitems__`` draws a whole batch of sequences at once.
    """

    def __init__(self, digits: Tensor, digit_index: Tensor, corners: Tensor, image_size: int) -> None:
        self.digits, self.digit_index, self.corners, self.image_size = digits, digit_index, corners, image_size

    def __len__(self) -> int:
        return len(self.digit_index)

    def __getitem__(self, index: int) -> Tensor:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Indices) -> Tensor:
        index = as_index(indices)
        frames = render_frames(self.digits[self.digit_index[index]], self.corners[index], self.image_size)
        return frames.unsqueeze(2)


class FrameSplit(Dataset):
    """Splits every sequence ``(T, C, H, W)`` of ``sequences`` into ``(first frames_in, next frames_out)``.

    ``sequences`` is a :class:`GeneratedMovingMNIST` or a tensor ``(N, T, C, H, W)`` (uint8 frames are scaled to
    [0, 1]); ``__getitems__`` splits a whole batch.
    """

    def __init__(self, sequences: Union[Dataset, Tensor], frames_in: int, frames_out: int) -> None:
        self.sequences, self.frames_in, self.frames_out = sequences, frames_in, frames_out

    def __len__(self) -> int:
        return len(self.sequences)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        inputs, future = self.__getitems__([index])
        return inputs[0], future[0]

    def __getitems__(self, indices: Indices) -> tuple[Tensor, Tensor]:
        index = as_index(indices)
        getitems = getattr(self.sequences, "__getitems__", None)
        frames = getitems(index) if getitems is not None else self.sequences.index_select(0, index)
        if frames.dtype == torch.uint8:
            frames = frames.float().div_(255.0)
        end = self.frames_in + self.frames_out
        return frames[:, : self.frames_in], frames[:, self.frames_in : end]


class MovingMNISTDataModule(SplitLoaders):
    """Moving MNIST sequences (see the module docstring).

    Args:
        root: data directory (default ``$ZOO_DATA_DIR``, else ``./data``) holding the digits' files
            (e.g. ``$ZOO_DATA_DIR/mnist-5k``) or ``MovingMNIST/mnist_test_seq.npy``.
        source: ``"generate"`` from digits, or ``"torchvision"`` to read torchvision's MovingMNIST file.
        digits: which digit files to generate from: ``"mnist"`` or ``"fashion_mnist"``.
        num_train, num_val, num_test: sequences per split (Shi et al.: 10,000 / 2,000 / 3,000). With
            ``source="torchvision"``, ``num_train=None`` takes all sequences left after validation and test.
        frames_in, frames_out: input and target frames per sequence (10 and 10).
        image_size: frame side in pixels (64).
        num_digits: digits per sequence (2).
        digit_size: side the 28x28 digits are resized to (28: unchanged).
        speed: pixels moved per frame (3.6: Srivastava et al.'s step of 0.1 of the 36-pixel range).
        seed: seed of the digit choice, the trajectories, the torchvision sample split and (mixed with
            ``--seed_everything``) of the shuffling, a function of the epoch.
        batch_size, num_workers: DataLoader settings.
        download: let torchvision download missing files (needs internet).
    """

    def __init__(
        self,
        root: Optional[str] = None,
        source: SequenceSource = "generate",
        digits: DigitSource = "mnist",
        num_train: Optional[int] = 10000,
        num_val: int = 2000,
        num_test: int = 3000,
        frames_in: int = 10,
        frames_out: int = 10,
        image_size: int = 64,
        num_digits: int = 2,
        digit_size: int = 28,
        speed: float = 3.6,
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size)
        if source not in ("generate", "torchvision"):
            raise ValueError(f"source must be 'generate' or 'torchvision', got {source!r}")
        if digits not in DIGIT_DATAMODULES:
            raise ValueError(f"digits must be one of {sorted(DIGIT_DATAMODULES)}, got {digits!r}")
        if frames_in < 1 or frames_out < 1:
            raise ValueError(f"frames_in and frames_out must be >= 1, got {frames_in} and {frames_out}")
        if not 1 <= digit_size <= image_size:
            raise ValueError(f"digit_size must be in [1, image_size={image_size}], got {digit_size}")
        if num_digits < 1 or speed < 0:
            raise ValueError(f"num_digits must be >= 1 and speed >= 0, got {num_digits} and {speed}")
        self.save_hyperparameters()
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None
        self.test_set: Optional[Dataset] = None
        self.digit_dataset_name = ""

    @property
    def root(self) -> Path:
        return resolve_root(self.hparams.root)

    @property
    def num_frames(self) -> int:
        return self.hparams.frames_in + self.hparams.frames_out

    # ------------------------------------------------------------------ generated sequences
    def _digit_images(self) -> dict[str, Tensor]:
        """Digits ``(N, s, s)`` in [0, 1] per split: training digits, and the test digits halved for val/test."""
        hp = self.hparams
        source = self._digit_datamodule()
        source.setup()
        self.digit_dataset_name = source.dataset_name
        test_digits = source.test_set.images
        order = torch.randperm(len(test_digits), generator=torch.Generator().manual_seed(hp.seed))
        half = len(test_digits) // 2
        images = {"train": source.train_set.images, "val": test_digits[order[:half]], "test": test_digits[order[half:]]}
        if hp.digit_size != images["train"].shape[-1]:
            size = (hp.digit_size, hp.digit_size)
            images = {k: F.interpolate(v, size=size, mode="bilinear", antialias=True).clamp_(0, 1)
                      for k, v in images.items()}
        return {k: v.squeeze(1) for k, v in images.items()}

    def _digit_datamodule(self) -> MNISTDataModule:
        """The MNIST-family datamodule whose files hold the digits (pixels in [0, 1], no validation split)."""
        hp = self.hparams
        return DIGIT_DATAMODULES[hp.digits](root=hp.root, download=hp.download, normalize=False, val_fraction=0.0)

    def generate(self, split: str, digits: Tensor, num_sequences: int) -> GeneratedMovingMNIST:
        """The ``num_sequences`` sequences of ``split``, drawn from ``digits`` with the split's own seed."""
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.seed * 3 + SPLIT_OFFSETS[split])
        digit_index = torch.randint(len(digits), (num_sequences, hp.num_digits), generator=generator)
        corners = bouncing_trajectories(
            num_sequences, hp.num_digits, self.num_frames, hp.image_size - hp.digit_size, hp.speed, generator
        )
        return GeneratedMovingMNIST(digits, digit_index, corners, hp.image_size)

    # ------------------------------------------------------------------ torchvision's file
    def _missing_file_error(self) -> FileNotFoundError:
        folder = self.root / datasets.MovingMNIST.__name__
        return missing_files_error(
            "MovingMNIST", folder, ["mnist_test_seq.npy"],
            f"pass {option('data', 'download', True)} (needs internet), copy mnist_test_seq.npy into {folder}, "
            f"or use {option('data', 'source', 'generate')} to draw sequences from MNIST digits.",
        )

    def _torchvision_sequences(self) -> dict[str, Tensor]:
        hp = self.hparams
        try:
            data = datasets.MovingMNIST(str(self.root), download=hp.download).data  # (10000, 20, 1, 64, 64) uint8
        except RuntimeError as err:
            raise self._missing_file_error() from err
        if data.shape[1] < self.num_frames or data.shape[-1] != hp.image_size:
            raise ValueError(
                f"MovingMNIST file holds sequences of {data.shape[1]} frames of {data.shape[-1]}px; frames_in + "
                f"frames_out = {self.num_frames} and image_size = {hp.image_size} must fit them"
            )
        num_train = len(data) - hp.num_val - hp.num_test if hp.num_train is None else hp.num_train
        if num_train < 1 or num_train + hp.num_val + hp.num_test > len(data):
            raise ValueError(
                f"MovingMNIST file holds {len(data)} sequences, not enough for num_train={hp.num_train}, "
                f"num_val={hp.num_val}, num_test={hp.num_test}; lower them"
            )
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(hp.seed))
        test_end = hp.num_test
        val_end = test_end + hp.num_val
        index = {"test": order[:test_end], "val": order[test_end:val_end], "train": order[val_end:val_end + num_train]}
        return {split: data[i] for split, i in index.items()}

    # ------------------------------------------------------------------ lightning hooks
    def prepare_data(self) -> None:
        if not self.hparams.download:
            return
        if self.hparams.source == "torchvision":
            try:
                datasets.MovingMNIST(str(self.root), download=True)
            except Exception as err:  # network failures come in many types
                raise download_failed_error(self._missing_file_error(), err) from err
        else:
            self._digit_datamodule().prepare_data()

    def setup(self, stage: Optional[str] = None) -> None:
        if self.test_set is not None:
            return
        hp = self.hparams
        if hp.source == "torchvision":
            sequences: dict[str, Union[Dataset, Tensor]] = self._torchvision_sequences()
            self.digit_dataset_name = "torchvision MovingMNIST"
        else:
            digits = self._digit_images()
            sizes = {"train": hp.num_train or 0, "val": hp.num_val, "test": hp.num_test}
            sequences = {split: self.generate(split, digits[split], n) for split, n in sizes.items()}
        self.train_set, self.val_set, self.test_set = (
            FrameSplit(sequences[split], hp.frames_in, hp.frames_out) for split in ("train", "val", "test")
        )

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = getattr(self, f"{split}_set")
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run for the {split} split")
        return tensor_loader(dataset, self.hparams.batch_size, shuffle, self.hparams.seed, self.hparams.num_workers)

    def describe(self) -> dict:
        """Dataset facts for a checkpoint manifest (call after ``setup``)."""
        hp = self.hparams
        if hp.source == "torchvision":
            name = "Moving MNIST (torchvision file)"
        else:
            name = f"Moving MNIST generated from {self.digit_dataset_name or hp.digits} digits"
        return {
            "dataset": name,
            "frames": f"{hp.frames_in} in -> {hp.frames_out} out, {hp.image_size}x{hp.image_size}",
            "train_size": len(self.train_set) if self.train_set is not None else None,
            "val_size": len(self.val_set) if self.val_set is not None else None,
            "test_size": len(self.test_set) if self.test_set is not None else None,
        }
