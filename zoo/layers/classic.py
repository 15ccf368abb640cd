"""Blocks of the classic CNN families (textbook chapter 4.5) that torchvision does not export in a reusable form."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv ("same" padding, no bias) -> BatchNorm2d -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InceptionBlock(nn.Module):
    """The Inception block of GoogLeNet (Szegedy et al., 2015, Figure 2b), with batch norm after each convolution.

    Four branches on the same input, concatenated on channels: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5;
    3x3 max-pool (stride 1) -> 1x1 projection. Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int, ch5x5_reduce: int, ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1x1 = conv_bn_relu(in_channels, ch1x1, 1)
        self.branch3x3 = nn.Sequential(conv_bn_relu(in_channels, ch3x3_reduce, 1), conv_bn_relu(ch3x3_reduce, ch3x3, 3))
        self.branch5x5 = nn.Sequential(conv_bn_relu(in_channels, ch5x5_reduce, 1), conv_bn_relu(ch5x5_reduce, ch5x5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)
