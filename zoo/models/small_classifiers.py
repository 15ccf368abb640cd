"""Small image classifiers for MNIST-sized images: chapters 3 and 4 of "深度学习入门之PyTorch" (Liao Xingyu, 2017).

- :class:`MLP` (section 3.4, "Batch_Net"): 784-300-100-10, each hidden layer Linear -> BatchNorm1d -> ReLU.
- :class:`BookCNN` (section 4.3): four 3x3 convolutions of 16, 32, 64, 128 channels, each with BatchNorm and
  ReLU, max-pooling after the second and the fourth, then 2048 -> 1024 -> 128 -> 10.
- :class:`LeNet` (LeCun et al., 1998, as in section 4.4): Conv(1, 6, 3, pad 1) -> pool -> Conv(6, 16, 5) -> pool
  -> 400 -> 120 -> 84 -> 10, with ReLU activations.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.layers.heads import mlp
from zoo.models.base import ImageClassifier


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    """Conv (no padding) -> BatchNorm2d -> ReLU, the book's repeated unit."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class MLP(ImageClassifier):
    """Multilayer perceptron on flattened images.

    Args:
        hidden: sizes of the hidden layers (the book: 300, 100).
        batch_norm: BatchNorm1d after every hidden Linear (the book's ``Batch_Net``).
        **kwargs: :class:`~zoo.models.base.ImageClassifier` arguments (``num_classes``, ``lr``, ...).
    """

    def __init__(self, hidden: tuple[int, ...] = (300, 100), batch_norm: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build_network(self) -> nn.Module:
        hp = self.hparams
        sizes = [hp.in_channels * hp.image_size**2, *hp.hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Linear(fan_in, fan_out))
            if hp.batch_norm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(sizes[-1], hp.num_classes))
        return nn.Sequential(*layers)


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
            *mlp([c4 * size * size, *hp.hidden, hp.num_classes], dropout=hp.dropout),
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
            *mlp([16 * size * size, 120, 84, hp.num_classes]),
        )
