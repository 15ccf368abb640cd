"""A user's extension of a zoo model, used by the tests: override one method, keep everything else."""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models import LeNet


class WideLeNet(LeNet):
    """LeNet with a wider, dropout-regularized head: only ``build_network`` changes."""

    def __init__(self, width: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build_network(self) -> nn.Module:
        network = super().build_network()
        head_start = [i for i, m in enumerate(network) if isinstance(m, nn.Flatten)][0] + 1
        width = self.hparams.width
        return nn.Sequential(
            *network[:head_start],
            nn.Linear(network[head_start].in_features, width),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(width, self.hparams.num_classes),
        )
