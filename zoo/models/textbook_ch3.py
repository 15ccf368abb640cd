"""Chapter 3 of "深度学习入门之PyTorch" (Liao Xingyu, 2017): the multilayer perceptron with BatchNorm.

The network is 784-300-100-10; each hidden layer is Linear -> BatchNorm1d -> ReLU (section 3.4, "Batch_Net").
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models.base import ImageClassifier


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
