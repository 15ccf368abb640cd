"""Binarized MNIST-family images for likelihood models with a Bernoulli output (PixelCNN, NADE, VAEs).

Grey levels in [0, 1] become pixels in {0, 1} in one of two ways:

- ``"stochastic"`` (default; Salakhutdinov & Murray, 2008): each pixel is 1 with probability equal to its grey
  level. Training images are resampled every time they are drawn (dynamic binarization, which acts as data
  augmentation), batch-wise on the batch's device with draws from (seed, epoch, step); the validation and test images are sampled once from a seeded generator, so every evaluation
  sees the same binary images. This is *dynamic* binarization, the protocol of the re-implementations' figures
  (about 81.5 nats for Gated PixelCNN, 78.6 for PixelSNAIL). The PixelRNN paper's 81.30 is on *static*
  binarization (Larochelle & Murray's one fixed binarization of training and test images), not this protocol.
- ``"threshold"``: pixel = grey level > 0.5, the same for every split. Deterministic and simple, but an easier
  distribution (sharper strokes), so its NLLs are not comparable with the published ones.

Batches are ``(x, y)``: ``x`` float ``(N, 1, 28, 28)`` with values in {0, 1}, ``y`` long ``(N,)``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import Tensor

from datamodules.mnist import FashionMNISTDataModule, MNISTDataModule

Binarization = Literal["stochastic", "threshold"]


def binarize(images: Tensor, binarization: Binarization, generator: Optional[torch.Generator] = None) -> Tensor:
    """Images in [0, 1] -> {0, 1}: Bernoulli samples of the grey levels, or grey level > 0.5."""
    if binarization == "stochastic":
        return torch.bernoulli(images, generator=generator)
    return (images > 0.5).to(images.dtype)


class BinarizedMNISTDataModule(MNISTDataModule):
    """MNIST (``<root>/MNIST/raw``) binarized; every option of :class:`MNISTDataModule` except normalization
    and pixel noise.

    Args:
        binarization: ``"stochastic"`` (resampled for training, sampled once with ``seed`` for val/test) or
            ``"threshold"`` (> 0.5); see the module docstring.
        normalize: must stay ``False`` (binary pixels are not normalized).
        noise: must stay 0 (pixel noise is not defined for binary images).
        **kwargs: :class:`MNISTDataModule` arguments (``root``, ``batch_size``, ``val_fraction``, ``seed``, ...).
    """

    def __init__(
        self, binarization: Binarization = "stochastic", normalize: bool = False, noise: float = 0.0, **kwargs: Any
    ) -> None:
        if binarization not in ("stochastic", "threshold"):
            raise ValueError(f"binarization must be 'stochastic' or 'threshold', got {binarization!r}")
        if normalize or noise:
            raise ValueError(
                f"{type(self).__name__} binarizes images in [0, 1]; it takes normalize=False and noise=0, got "
                f"normalize={normalize}, noise={noise}"
            )
        super().__init__(normalize=False, noise=0.0, **kwargs)

    @property
    def dataset_name(self) -> str:
        how = {"stochastic": "dynamic binarization: training images redrawn, test images drawn once",
               "threshold": "threshold 0.5"}[self.hparams.binarization]
        return f"{super().dataset_name}, binarized ({how})"

    def input_spec(self) -> dict:
        """MNIST's input spec, with the binarization of the test images (``"threshold"`` or ``"stochastic"``)."""
        return {**super().input_spec(), "binarize": self.hparams.binarization}

    def _noisy(self, images: Tensor, split: str) -> Tensor:
        """The split's images in [0, 1], binarized now unless they are training images resampled per draw."""
        images = super()._noisy(images, split)
        if split == "train" and self.hparams.binarization == "stochastic":
            return images
        generator = torch.Generator().manual_seed(self.hparams.seed + {"train": 0, "val": 1, "test": 2}[split])
        return binarize(images, self.hparams.binarization, generator)

    def train_batch_transform(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """The ``augment`` jitter of grey images, then (stochastic binarization) a fresh Bernoulli draw."""
        images = super().train_batch_transform(images, generator)
        if self.hparams.binarization != "stochastic":
            return images
        return binarize(images, "stochastic", generator)


class BinarizedFashionMNISTDataModule(BinarizedMNISTDataModule):
    """Fashion-MNIST (``<root>/FashionMNIST/raw``) binarized like :class:`BinarizedMNISTDataModule`."""

    dataset_class = FashionMNISTDataModule.dataset_class
    mean = FashionMNISTDataModule.mean
    std = FashionMNISTDataModule.std
