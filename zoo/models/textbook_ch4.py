"""Chapter 4 of "深度学习入门之PyTorch" (Liao Xingyu, 2017): convolutional networks for MNIST-sized images.

- :class:`BookCNN` (section 4.3): four 3x3 convolutions of 16, 32, 64, 128 channels, each with BatchNorm and
  ReLU, max-pooling after the second and the fourth, then 2048 -> 1024 -> 128 -> 10.
- :class:`LeNet` (LeCun et al., 1998, as in section 4.4): Conv(1, 6, 3, pad 1) -> pool -> Conv(6, 16, 5) -> pool
  -> 400 -> 120 -> 84 -> 10, with ReLU activations.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models.base import ImageClassifier


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    """Conv (no padding) -> BatchNorm2d -> ReLU, the book's repeated unit."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def mlp_head(sizes: list[int], dropout: float = 0.0) -> list[nn.Module]:
    """Linear layers of the given sizes with ReLU (and optional dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return layers


class BookCNN(ImageClassifier):
    """The book's 4-convolution network for 28x28 images (128 * 4 * 4 = 2048 features).

    Args:
        channels: output channels of the four convolutions.
        hidden: sizes of the fully connected hidden layers.
        dropout: dropout between the fully connected layers (the book: none).
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int] = (16, 32, 64, 128),
        hidden: tuple[int, ...] = (1024, 128),
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def build_network(self) -> nn.Module:
        hp = self.hparams
        c1, c2, c3, c4 = hp.channels
        size = ((hp.image_size - 4) // 2 - 4) // 2
        return nn.Sequential(
            *conv_bn_relu(hp.in_channels, c1),
            *conv_bn_relu(c1, c2),
            nn.MaxPool2d(2),
            *conv_bn_relu(c2, c3),
            *conv_bn_relu(c3, c4),
            nn.MaxPool2d(2),
            nn.Flatten(),
            *mlp_head([c4 * size * size, *hp.hidden, hp.num_classes], hp.dropout),
        )


class LeNet(ImageClassifier):
    """LeNet-5 as the book writes it for 28x28 inputs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build_network(self) -> nn.Module:
        hp = self.hparams
        size = (hp.image_size // 2 - 4) // 2
        return nn.Sequential(
            nn.Conv2d(hp.in_channels, 6, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            *mlp_head([16 * size * size, 120, 84, hp.num_classes]),
        )
