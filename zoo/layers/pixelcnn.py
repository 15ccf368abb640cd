"""Gated residual PixelCNN blocks of PixelCNN++ (Salimans et al., 2017) and PixelSNAIL (Chen et al., 2018).

An autoregressive image model factorizes p(x) = prod_i p(x_i | x_<i) over the pixels in raster order
(van den Oord et al., 2016, eq. 1), so the network's output at pixel (i, j) may depend only on the pixels above
row i and on the pixels left of (i, j) in row i. PixelCNN++ (section 2.4) gets this without the blind spot of
masked convolutions from two streams:

- the *up* stream ``u`` of :class:`DownShiftedConv2d` (each output sees only the rows above it), and
- the *up-left* stream ``ul`` of :class:`DownRightShiftedConv2d` (each output sees the rows above and the
  pixels to its left), which takes ``u`` as the auxiliary input ``a`` of its :class:`GatedResidualBlock`.

Every tensor is ``(N, C, H, W)``. All convolutions are weight-normalized (Salimans & Kingma, 2016):
``w = g * v / ||v||``, via :func:`torch.nn.utils.parametrizations.weight_norm`. The data-dependent
initialization of PixelCNN++ is not used; the last convolution of each residual block starts scaled by 0.1 (its
``init_scale``) so that the residual stream starts close to the identity.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

KernelSize = Union[int, tuple[int, int]]


def concat_elu(x: Tensor) -> Tensor:
    """``elu(cat(x, -x))`` over channels (PixelCNN++, section 2.4): ``(N, C, H, W) -> (N, 2C, H, W)``."""
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x: Tensor) -> Tensor:
    """Move every row one down, a zero row entering at the top: output row i is input row i - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: Tensor) -> Tensor:
    """Move every column one right, a zero column entering on the left: output column j is input column j - 1."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


def weight_norm_conv2d(in_channels: int, out_channels: int, kernel_size: KernelSize = 1, **kwargs) -> nn.Conv2d:
    """A ``nn.Conv2d`` with weight normalization ``w = g * v / ||v||`` (Salimans & Kingma, 2016, eq. 2).

    With ``kernel_size=1`` this is the network-in-network layer ``nin`` of PixelCNN++ (a linear map of channels).
    """
    return weight_norm(nn.Conv2d(in_channels, out_channels, kernel_size, **kwargs))


def _pair(kernel_size: KernelSize) -> tuple[int, int]:
    return (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)


class _ShiftedConv2d(nn.Module):
    """A weight-normalized convolution after zero padding ``(left, right, top, bottom)``; keeps H and W."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.padding = padding
        self.conv = weight_norm_conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.padding))


class DownShiftedConv2d(_ShiftedConv2d):
    """Convolution whose output at row i sees input rows ``i - kh + 1 .. i`` only (PixelCNN++'s down_shifted_conv2d).

    The ``(kh, kw)`` kernel (``kw`` odd) is padded ``kh - 1`` rows on top and ``(kw - 1) / 2`` columns on each
    side, none below. Follow it by :func:`down_shift` to see strictly the rows above.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: KernelSize = (2, 3)) -> None:
        kh, kw = _pair(kernel_size)
        if kw % 2 != 1:
            raise ValueError(
                f"DownShiftedConv2d needs an odd kernel width, got kernel_size={(kh, kw)}; use e.g. (2, 3)"
            )
        super().__init__(in_channels, out_channels, (kh, kw), ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0))


class DownRightShiftedConv2d(_ShiftedConv2d):
    """Convolution whose output at (i, j) sees input rows ``i - kh + 1 .. i`` and columns ``j - kw + 1 .. j``.

    PixelCNN++'s down_right_shifted_conv2d: the ``(kh, kw)`` kernel is padded ``kh - 1`` rows on top and
    ``kw - 1`` columns on the left.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: KernelSize = (2, 2)) -> None:
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), (kw - 1, 0, kh - 1, 0))


class GatedResidualBlock(nn.Module):
    """Gated residual block of PixelCNN++ (``gated_resnet``, section 2.4) and PixelSNAIL (section 3)::

        c1 = conv(concat_elu(x))            [+ nin(concat_elu(a))   if an auxiliary input a is given]
        c1 = dropout(concat_elu(c1))
        c2 = conv(c1)                       (2 * channels)  [+ linear(h) broadcast over H x W   if h is given]
        a', b = split(c2)
        return x + a' * sigmoid(b)

    Args:
        channels: channels C of ``x`` and of the output.
        conv_class: the convolution, :class:`DownShiftedConv2d` (up stream) or :class:`DownRightShiftedConv2d`
            (up-left stream), or any ``conv_class(in, out, kernel_size)`` keeping H and W.
        kernel_size: its kernel, ``(2, 3)`` for down-shifted and ``(2, 2)`` for down-right-shifted.
        aux_channels: channels of the auxiliary input ``a`` (0: the block takes none).
        condition_dim: size of the condition vector ``h`` (0: the block takes none).
        dropout: dropout probability on ``c1``.

    Shapes: ``x`` ``(N, C, H, W)``, ``a`` ``(N, aux_channels, H, W)``, ``h`` ``(N, condition_dim)``; output as ``x``.
    """

    def __init__(
        self,
        channels: int,
        conv_class: type[nn.Module] = DownShiftedConv2d,
        kernel_size: KernelSize = (2, 3),
        aux_channels: int = 0,
        condition_dim: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels, self.aux_channels, self.condition_dim = channels, aux_channels, condition_dim
        self.conv_in = conv_class(2 * channels, channels, kernel_size)
        self.aux_nin = weight_norm_conv2d(2 * aux_channels, channels, 1) if aux_channels else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv_class(2 * channels, 2 * channels, kernel_size)
        self.condition = nn.Linear(condition_dim, 2 * channels, bias=False) if condition_dim else None
        with torch.no_grad():  # PixelCNN++'s init_scale=0.1 for the gate's convolution: start near identity
            for g in self._weight_norm_gains(self.conv_out):
                g.mul_(0.1)

    @staticmethod
    def _weight_norm_gains(module: nn.Module) -> list[Tensor]:
        return [p for name, p in module.named_parameters() if name.endswith("parametrizations.weight.original0")]

    def _check(self, t: Tensor, name: str, expected: tuple, reference: Tensor) -> None:
        ok = t.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, t.shape))
        if not ok or t.shape[0] != reference.shape[0]:
            shape = "(N, " + ", ".join(str(e) if e is not None else "*" for e in expected[1:]) + ")"
            raise ValueError(
                f"GatedResidualBlock expects {name} of shape {shape} with N={reference.shape[0]} and the H, W of x "
                f"{tuple(reference.shape[2:])}, got {tuple(t.shape)}"
            )

    def forward(self, x: Tensor, a: Optional[Tensor] = None, h: Optional[Tensor] = None) -> Tensor:
        self._check(x, "x", (None, self.channels, None, None), x)
        c1 = self.conv_in(concat_elu(x))
        if (a is None) != (self.aux_nin is None):
            raise ValueError(
                f"this GatedResidualBlock was built with aux_channels={self.aux_channels}, so it "
                f"{'needs' if self.aux_nin is not None else 'takes no'} auxiliary input a"
            )
        if a is not None:
            self._check(a, "a", (None, self.aux_channels, *x.shape[2:]), x)
            c1 = c1 + self.aux_nin(concat_elu(a))
        c1 = self.dropout(concat_elu(c1))
        c2 = self.conv_out(c1)
        if (h is None) != (self.condition is None):
            raise ValueError(
                f"this GatedResidualBlock was built with condition_dim={self.condition_dim}, so it "
                f"{'needs' if self.condition is not None else 'takes no'} condition h"
            )
        if h is not None:
            self._check(h, "h", (None, self.condition_dim), x)
            c2 = c2 + self.condition(h)[:, :, None, None]
        value, gate = c2.chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


class PixelCNNNetwork(nn.Module):
    """Two-stream PixelCNN++ network at one resolution (no down/up-sampling), for images of ``in_channels``.

    The input ``x`` in [0, 1] is scaled to [-1, 1] and gets a channel of ones (so the zero padding differs from
    the image, as in PixelCNN++). Then (section 2.4 and Fig. 2 of PixelCNN++)::

        u  = down_shift(DownShiftedConv(2, 3)(x))
        ul = down_shift(DownShiftedConv(1, 3)(x)) + right_shift(DownRightShiftedConv(2, 1)(x))
        repeat num_blocks times:  u = gated_u(u, h);  ul = gated_ul(ul, a=u, h)
        logits = nin(concat_elu(ul))

    so ``logits[:, :, i, j]`` depends only on pixels before (i, j) in raster order (and on rows up to i only,
    which lets sampling feed just those rows).

    Args:
        in_channels: image channels.
        out_channels: output channels per pixel (1 Bernoulli logit for a binary image).
        channels: width of both streams.
        num_blocks: gated residual blocks per stream (each one widens the view by 2 rows up).
        condition_dim: size of the condition vector ``h`` (0: unconditional).
        dropout: dropout in the blocks.

    Shapes: ``x`` ``(N, in_channels, H, W)``, ``h`` ``(N, condition_dim)`` -> ``(N, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: int = 32,
        num_blocks: int = 5,
        condition_dim: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        padded_in = in_channels + 1  # the images and a channel of ones, which marks the zero padding
        self.up_in = DownShiftedConv2d(padded_in, channels, (2, 3))
        self.up_left_in_above = DownShiftedConv2d(padded_in, channels, (1, 3))
        self.up_left_in_left = DownRightShiftedConv2d(padded_in, channels, (2, 1))
        self.up_blocks = nn.ModuleList(
            GatedResidualBlock(channels, DownShiftedConv2d, (2, 3), condition_dim=condition_dim, dropout=dropout)
            for _ in range(num_blocks)
        )
        self.up_left_blocks = nn.ModuleList(
            GatedResidualBlock(channels, DownRightShiftedConv2d, (2, 2), aux_channels=channels,
                               condition_dim=condition_dim, dropout=dropout)
            for _ in range(num_blocks)
        )
        self.head = weight_norm_conv2d(2 * channels, out_channels, 1)

    def forward(self, x: Tensor, h: Optional[Tensor] = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PixelCNNNetwork expects images x of shape (N, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}; check the images, or the network's in_channels={self.in_channels}")
        x = torch.cat([2 * x - 1, torch.ones_like(x[:, :1])], dim=1)
        u = down_shift(self.up_in(x))
        ul = down_shift(self.up_left_in_above(x)) + right_shift(self.up_left_in_left(x))
        for up_block, up_left_block in zip(self.up_blocks, self.up_left_blocks):
            u = up_block(u, h=h)
            ul = up_left_block(ul, a=u, h=h)
        return self.head(concat_elu(ul))
