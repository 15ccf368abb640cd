"""Autoencoders and the VAE of chapter 6 of "深度学习入门之PyTorch" (Liao Xingyu, 2017).

Each model is one small class on the bases of :mod:`zoo.models.generative` (which documents the pixel range:
images in [0, 1] in and out; tanh networks work in [-1, 1] inside).

- :class:`MLPAutoencoder` (section 6.2): 784-128-64-12-3, mirrored, ReLU, tanh output.
- :class:`ConvAutoencoder` (section 6.2): the book's strided convolutions to an 8x2x2 code and back.
- :class:`VAE` (section 6.3): 784-400-20 (Kingma & Welling, 2014, as in the PyTorch example).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.layers.heads import mlp
from zoo.models.generative import Autoencoder, VariationalAutoencoder


class MLPAutoencoder(Autoencoder):
    """Fully connected autoencoder: encoder ``hidden``, code ``latent_dim``, decoder mirrored, tanh output.

    Args:
        hidden: encoder hidden sizes after the input (the book: 128, 64, 12).
    """

    def __init__(self, hidden: tuple[int, ...] = (128, 64, 12), latent_dim: int = 3, **kwargs: Any) -> None:
        super().__init__(latent_dim=latent_dim, **kwargs)

    def sizes(self) -> list[int]:
        c, h, w = self.image_shape
        return [c * h * w, *self.hparams.hidden, self.hparams.latent_dim]

    def build_encoder(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), *mlp(self.sizes()))

    def build_decoder(self) -> nn.Module:
        return nn.Sequential(*mlp(self.sizes()[::-1]), nn.Tanh(), nn.Unflatten(1, self.image_shape))


class ConvAutoencoder(Autoencoder):
    """The book's convolutional autoencoder for 28x28 images: code 8x2x2 (``latent_dim`` 32), tanh output."""

    def __init__(self, latent_dim: int = 32, **kwargs: Any) -> None:
        super().__init__(latent_dim=latent_dim, **kwargs)
        if latent_dim != 32 or self.hparams.image_size != 28:
            raise ValueError(f"ConvAutoencoder's layers fit 28x28 images and a 32-unit code, got image_size="
                             f"{self.hparams.image_size}, latent_dim={latent_dim}")

    def build_encoder(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(self.hparams.in_channels, 16, 3, stride=3, padding=1), nn.ReLU(),  # 16x10x10
            nn.MaxPool2d(2, stride=2),  # 16x5x5
            nn.Conv2d(16, 8, 3, stride=2, padding=1), nn.ReLU(),  # 8x3x3
            nn.MaxPool2d(2, stride=1),  # 8x2x2
            nn.Flatten(),
        )

    def build_decoder(self) -> nn.Module:
        return nn.Sequential(
            nn.Unflatten(1, (8, 2, 2)),
            nn.ConvTranspose2d(8, 16, 3, stride=2), nn.ReLU(),  # 16x5x5
            nn.ConvTranspose2d(16, 8, 5, stride=3, padding=1), nn.ReLU(),  # 8x15x15
            nn.ConvTranspose2d(8, self.hparams.in_channels, 2, stride=2, padding=1), nn.Tanh(),  # 1x28x28
        )


class VAE(VariationalAutoencoder):
    """784-400-(20 mu, 20 logvar) encoder, 20-400-784 decoder of Bernoulli logits, ReLU.

    Args:
        hidden: the hidden layer size of encoder and decoder.
        latent_dim: the size of the code ``z`` (and of ``mu`` and ``logvar``).
    """

    def __init__(self, hidden: int = 400, latent_dim: int = 20, **kwargs: Any) -> None:
        super().__init__(latent_dim=latent_dim, **kwargs)

    def build_encoder(self) -> nn.Module:
        c, h, w = self.image_shape
        return nn.Sequential(nn.Flatten(), *mlp([c * h * w, self.hparams.hidden, 2 * self.hparams.latent_dim]))

    def build_decoder(self) -> nn.Module:
        c, h, w = self.image_shape
        return nn.Sequential(*mlp([self.hparams.latent_dim, self.hparams.hidden, c * h * w]),
                             nn.Unflatten(1, self.image_shape))
