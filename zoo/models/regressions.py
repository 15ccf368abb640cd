"""Regressions: chapter 3 of "深度学习入门之PyTorch" (Liao Xingyu, 2017).

- :class:`LinearRegression` (section 3.2.4): y = w x + b fitted to the book's 15 points by gradient descent on the
  mean squared error; it converges to the least-squares solution.
- :class:`PolynomialRegression` (section 3.2.5): y = b + w . (x, x^2, ..., x^d), recovering a cubic from random
  batches.
- :class:`LogisticRegression` (section 3.3): p(y = 1 | x) = sigmoid(w . x + b) on 2-D points, trained with the
  binary cross-entropy.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from zoo.models.base import Classifier, Regressor


class AffineRegression(Regressor):
    """y = b + x . w on ``n_inputs`` features ``x`` ``(N, n_inputs)``; predictions ``(N,)``."""

    @property
    def n_inputs(self) -> int:
        raise NotImplementedError

    def build_network(self) -> nn.Module:
        return nn.Linear(self.n_inputs, 1)

    def input_shape(self) -> tuple[Optional[int], ...]:
        return (None, self.n_inputs)

    def coefficients(self) -> Tensor:
        """``(b, w_1, ..., w_d)``: the intercept, then the weight of each input."""
        return torch.cat([self.network.bias.detach(), self.network.weight.detach().flatten()])


class LinearRegression(AffineRegression):
    """y = w . x + b on ``in_features`` inputs (1 for the book's points).

    Args:
        in_features: number of inputs.
        **kwargs: :class:`~zoo.models.base.ZooModule` optimizer arguments.
    """

    def __init__(self, in_features: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @property
    def n_inputs(self) -> int:
        return self.hparams.in_features


class PolynomialRegression(AffineRegression):
    """y = b + sum_i w_i x^i, i = 1..``degree``, from the features ``(x, x^2, ..., x^degree)`` (the book's
    ``make_features``, :func:`datamodules.toy_regression.polynomial_features`).

    Args:
        degree: the polynomial's degree (the book: 3).
        **kwargs: :class:`~zoo.models.base.ZooModule` optimizer arguments.
    """

    def __init__(self, degree: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @property
    def n_inputs(self) -> int:
        return self.hparams.degree


class LogisticRegression(Classifier):
    """Logistic regression p(y = 1 | x) = sigmoid(w . x + b) on ``in_features`` inputs.

    ``forward`` returns the two-class logits ``(0, w . x + b)``: their softmax is ``(1 - p, p)``, so the inherited
    cross-entropy equals the binary cross-entropy of ``p``, and accuracy and probabilities come from the classifier
    base unchanged.
    """

    def __init__(self, in_features: int = 2, **kwargs: Any) -> None:
        kwargs.pop("num_classes", None)
        super().__init__(num_classes=2, **kwargs)

    def build_network(self) -> nn.Module:
        return nn.Linear(self.hparams.in_features, 1)

    def input_shape(self) -> tuple[Optional[int], ...]:
        return (None, self.hparams.in_features)

    def forward(self, x: Tensor) -> Tensor:
        log_odds = super().forward(x)
        return torch.cat([torch.zeros_like(log_odds), log_odds], dim=1)

    def probability(self, x: Tensor) -> Tensor:
        """p(y = 1 | x), shape ``(N,)``."""
        return torch.sigmoid(super().forward(x)).squeeze(1)
