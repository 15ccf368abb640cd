"""Multilayer-perceptron heads: the stacks of ``nn.Linear`` layers that end the zoo's networks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn


def relu() -> nn.Module:
    return nn.ReLU(inplace=True)


def mlp(sizes: Sequence[int], activation: Callable[[], nn.Module] = relu, dropout: float = 0.0,
        dropout_before_linear: bool = False) -> list[nn.Module]:
    """Linear layers of ``sizes`` (input, hidden..., output) with ``activation()`` between them, none after the last.

    ``dropout`` goes after each hidden activation (the book's heads), or, with ``dropout_before_linear``, before
    every Linear layer (AlexNet's and VGG's classifiers, Krizhevsky et al., 2012, section 4.2).
    """
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if dropout and dropout_before_linear:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout and not dropout_before_linear:
                layers.append(nn.Dropout(dropout))
    return layers
