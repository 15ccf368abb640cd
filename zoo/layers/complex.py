"""Deep Complex Networks (Trabelsi et al., ICLR 2018): complex-valued layers on native ``torch.complex64`` tensors.

Every layer takes and returns complex tensors; weights and biases are complex parameters.

- :class:`ComplexConv2d`, :class:`ComplexLinear` (section 3.2):
  ``(W_r + iW_i)(x_r + ix_i) = (W_r x_r - W_i x_i) + i(W_r x_i + W_i x_r)``, plus ONE complex bias ``b`` (adding a
  bias inside each of two real sub-layers, as some libraries do, gives ``(b_r - b_i) + i(b_r + b_i)``).
  The convolution's product is computed with real operations (:func:`complex_product`), and so is the linear
  layer's under autocast (else PyTorch's complex matrix product is faster), so they run in bfloat16 under autocast
  while the tensors between layers stay complex64.
- :class:`ComplexBatchNorm1d`, :class:`ComplexBatchNorm2d` (section 3.5): whitening by the inverse
  square root of each channel's 2x2 real/imaginary covariance, then a symmetric 2x2 scale and a complex shift.
- Activations (section 3.4): :class:`CReLU`, :class:`ModReLU` (Arjovsky et al., 2016), :class:`ZReLU`
  (Guberman, 2016); :class:`ComplexDropout` with one mask for both parts; :class:`ComplexMagnitude` (``|z|``).
- Initialisation (section 3.6): :func:`complex_he_init_`, :func:`complex_glorot_init_`: modulus ~ Rayleigh(sigma),
  phase ~ U(-pi, pi), so that ``Var(W) = E|W|^2 = 2 sigma^2`` equals ``2 / fan_in`` (He) or
  ``2 / (fan_in + fan_out)`` (Glorot).
- :class:`LearnedImaginaryInput` (section 3.7): a real image ``x`` becomes ``x + i f(x)`` with a learned ``f``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

ComplexInit = Literal["he", "glorot"]
#: ``"block"``: one real product with the block weight [[W_r, -W_i], [W_i, W_r]];
#: ``"gauss"``: three real products (Gauss/Karatsuba), 25 % fewer multiplications.
ProductMethod = Literal["block", "gauss"]
ConvMethod = Literal["auto", "block", "gauss"]
#: ``"native"``: PyTorch's complex64 matrix product (one complex GEMM: fastest, but autocast leaves it complex64).
LinearMethod = Literal["auto", "block", "gauss", "native"]

#: ``ComplexConv2d(method="auto")`` uses ``"gauss"`` (3 real convolutions) from this many multiply-adds per real
#: convolution on, ``"block"`` (1 convolution of twice the channels) below: small convolutions are bound by call
#: overhead, large ones by arithmetic. Measured crossover on a 1-thread CPU: block wins at 26 M, gauss at 151 M
#: (``scripts/benchmarks/benchmark_complex.py``).
GAUSS_MIN_MACS = 64_000_000
IntPair = Union[int, tuple[int, int]]


def check_complex(z: Tensor, layer: str, ndims: Optional[tuple[int, ...]] = None) -> None:
    """Raise if ``z`` is not a complex tensor (``TypeError``) or has a number of dimensions not in ``ndims``."""
    if not z.is_complex():
        raise TypeError(
            f"{layer} expects a complex tensor (torch.complex64), got {z.dtype}; make one with "
            f"torch.complex(real, imag), or lift a real image with LearnedImaginaryInput"
        )
    if ndims is not None and z.ndim not in ndims:
        shapes = " or ".join(f"{n}-d" for n in ndims)
        raise ValueError(f"{layer} expects a {shapes} input, got shape {tuple(z.shape)}")


def check_channels(z: Tensor, expected: int, layer: str, dim: int = 1) -> None:
    """Raise ``ValueError`` if ``z`` has no dimension ``dim`` or ``z.shape[dim]`` is not ``expected``."""
    if z.ndim <= (dim if dim >= 0 else -dim - 1):
        raise ValueError(
            f"{layer} expects {expected} channels/features in dimension {dim} of a batch, got shape "
            f"{tuple(z.shape)}; for one sample, add the batch dimension: z[None]"
        )
    if z.shape[dim] != expected:
        raise ValueError(
            f"{layer} expects {expected} channels/features in dimension {dim}, got shape {tuple(z.shape)}; "
            f"check the previous layer's output size"
        )


# ---------------------------------------------------------------------------------------------- complex product
def planar_parts(z: Tensor) -> tuple[Tensor, Tensor]:
    """The real and imaginary parts of complex ``z`` as two dense real tensors, made in one pass.

    Each part keeps ``z``'s own memory order (contiguous, or channels-last). Convolutions need dense inputs; the
    strided views of :func:`real_imag` would be copied by every convolution that reads them, in the forward and
    again in the backward pass.
    """
    memory_order = sorted(range(z.ndim), key=lambda dim: -z.stride(dim))  # outermost dimension first
    planar = torch.view_as_real(z).permute(z.ndim, *memory_order).contiguous()
    return planar.permute(0, *[1 + memory_order.index(dim) for dim in range(z.ndim)]).unbind(0)


def real_imag(z: Tensor) -> tuple[Tensor, Tensor]:
    """The real and imaginary parts of complex ``z`` as two real views (one cheap backward, unlike ``.real``)."""
    return torch.view_as_real(z).unbind(-1)


class _ComplexFromParts(torch.autograd.Function):
    """``torch.complex(real, imag)`` whose backward passes the gradient's parts on as dense tensors.

    ``torch.complex``'s own backward passes strided views of the interleaved complex gradient, and elementwise
    kernels on those are slower (complex batch norm's forward + backward: 7 % faster with dense gradients).
    """

    @staticmethod
    def forward(ctx: Any, real: Tensor, imag: Tensor) -> Tensor:
        return torch.complex(real, imag)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        return planar_parts(grad)


def complex_from_parts(real: Tensor, imag: Tensor) -> Tensor:
    """``torch.complex(real, imag)``, with dense gradients for both parts (see :class:`_ComplexFromParts`)."""
    return _ComplexFromParts.apply(real, imag)


def interleaved(z: Tensor, dim: int) -> Tensor:
    """Complex ``z`` with ``C`` channels in ``dim`` as a real tensor with ``2C``: ``[Re z_0, Im z_0, Re z_1, ...]``.

    A view, no copy, when ``dim`` is innermost in ``z``'s memory (the features of a contiguous ``(N, C)``, the
    channels of a channels-last ``(N, C, H, W)``): complex64 stores each value's two parts side by side.
    """
    return torch.view_as_real(z).movedim(-1, dim + 1).flatten(dim, dim + 1)


def deinterleaved(x: Tensor, dim: int) -> Tensor:
    """Inverse of :func:`interleaved`: real ``2C`` channels in ``dim`` to complex ``C`` (a view where it can be)."""
    parts = x.unflatten(dim, (-1, 2)).movedim(dim + 1, -1)
    if parts.stride(-1) != 1 or any(stride % 2 for stride in parts.stride()[:-1]):
        parts = parts.contiguous()
    return torch.view_as_complex(parts)


def complex_product(
    real_op: Callable[[Tensor, Tensor, Optional[Tensor]], Tensor], z: Tensor, weight: Tensor, bias: Optional[Tensor],
    dim: int, method: ProductMethod = "block",
) -> Tensor:
    """``weight z + bias`` for a real affine map ``real_op(input, weight, bias)`` (a convolution or ``F.linear``).

    Section 3.2 of the paper: ``(W_r x_r - W_i x_i) + i(W_r x_i + W_i x_r)``, plus one complex ``bias``.
    ``weight`` has output channels in dimension 0 and input channels in dimension 1; ``dim`` is the channel
    dimension of ``z`` and of the result. Under autocast the real products run in bfloat16; the result is cast
    back to ``weight``'s real precision and returned as a complex tensor.

    ``"block"`` applies the real block weight ``[[W_r, -W_i], [W_i, W_r]]``, rows and columns interleaved like
    the parts of :func:`interleaved` ``z``, once: with the bias ``[b_r, b_i]`` in the same call, no copy of ``z``
    or of the result when the channels are innermost in memory, and the rounding of a bfloat16 product happens
    once, after the sums. ``"gauss"`` uses ``k1 = W_r (x_r + x_i)``, ``k2 = (W_i - W_r) x_r``,
    ``k3 = (W_r + W_i) x_i``, real ``k1 - k3``, imaginary ``k1 + k2``: three products instead of four.
    """
    dim = dim % z.ndim
    w_r, w_i = real_imag(weight)
    if method == "block":
        block = torch.stack([torch.stack([w_r, -w_i], 2), torch.stack([w_i, w_r], 2)], 1).flatten(2, 3).flatten(0, 1)
        real_bias = None if bias is None else torch.view_as_real(bias).flatten()
        return deinterleaved(real_op(interleaved(z, dim), block, real_bias).to(w_r.dtype), dim)
    if method == "gauss":
        x_r, x_i = planar_parts(z)
        k1 = real_op(x_r + x_i, w_r, None).to(w_r.dtype)
        k2 = real_op(x_r, w_i - w_r, None).to(w_r.dtype)
        k3 = real_op(x_i, w_r + w_i, None).to(w_r.dtype)
        out = complex_from_parts(k1 - k3, k1 + k2)
        return out if bias is None else out + bias.view(-1, *([1] * (z.ndim - dim - 1)))
    raise ValueError(f"method must be 'block' or 'gauss', got {method!r}")


# ---------------------------------------------------------------------------------------------- initialisation
def fan_in_and_out(weight: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``: input/output channels times the kernel size."""
    if weight.ndim < 2:
        raise ValueError(f"a weight needs at least 2 dimensions (out, in, *kernel), got shape {tuple(weight.shape)}")
    receptive_field = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive_field, weight.shape[0] * receptive_field


@torch.no_grad()
def complex_rayleigh_(weight: Tensor, sigma: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Fill complex ``weight`` in place with modulus ~ Rayleigh(``sigma``) and phase ~ U(-pi, pi); return it.

    The modulus is drawn by inverting the Rayleigh CDF ``1 - exp(-r^2 / (2 sigma^2))``.
    """
    if not weight.is_complex():
        raise TypeError(f"complex initialisation needs a complex weight, got {weight.dtype}")
    real_dtype = weight.real.dtype
    uniform = torch.rand(weight.shape, generator=generator, dtype=real_dtype, device=weight.device)
    modulus = sigma * torch.sqrt(-2.0 * torch.log1p(-uniform))
    phase = torch.empty(weight.shape, dtype=real_dtype, device=weight.device).uniform_(
        -math.pi, math.pi, generator=generator
    )
    return weight.copy_(torch.polar(modulus, phase))


def complex_he_init_(weight: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Complex He initialisation: Rayleigh ``sigma = 1 / sqrt(fan_in)``, so ``Var(W) = 2 / fan_in``."""
    fan_in, _ = fan_in_and_out(weight)
    return complex_rayleigh_(weight, 1.0 / math.sqrt(fan_in), generator)


def complex_glorot_init_(weight: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Complex Glorot initialisation: Rayleigh ``sigma = 1 / sqrt(fan_in + fan_out)``."""
    fan_in, fan_out = fan_in_and_out(weight)
    return complex_rayleigh_(weight, 1.0 / math.sqrt(fan_in + fan_out), generator)


COMPLEX_INITS: dict[str, Callable[..., Tensor]] = {"he": complex_he_init_, "glorot": complex_glorot_init_}


# ---------------------------------------------------------------------------------------------- linear layers
class _ComplexWeightLayer(nn.Module):
    """Holds a complex ``weight (out, in, *kernel)`` and ONE complex ``bias (out,)``; initialises them."""

    methods: tuple[str, ...] = ("block", "gauss")

    def __init__(
        self, weight_shape: tuple[int, ...], bias: bool, init: ComplexInit, method: str
    ) -> None:
        super().__init__()
        if init not in COMPLEX_INITS:
            raise ValueError(f"init must be one of {sorted(COMPLEX_INITS)}, got {init!r}")
        if method not in self.methods:
            raise ValueError(f"method must be one of {self.methods} for {type(self).__name__}, got {method!r}")
        self.init, self.method = init, method
        self.weight = nn.Parameter(torch.empty(weight_shape, dtype=torch.complex64))
        self.bias = nn.Parameter(torch.empty(weight_shape[0], dtype=torch.complex64)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        COMPLEX_INITS[self.init](self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def check_input(self, z: Tensor, ndims: Optional[tuple[int, ...]], dim: int) -> None:
        """:func:`check_complex` and :func:`check_channels` of ``z``, and ``z``'s dtype against the weight's."""
        name, weight = type(self).__name__, self.weight
        check_complex(z, name, ndims)
        check_channels(z, weight.shape[1], name, dim)
        if not weight.is_complex():
            raise TypeError(f"{name} holds {weight.dtype} weights: converting it to a real dtype (.to(torch.float64)) "
                            f"dropped their imaginary parts; build it again, and convert it with .to(torch.complex128)")
        if z.dtype != weight.dtype:
            raise TypeError(f"{name} holds {weight.dtype} weights and got a {z.dtype} input; convert the input with "
                            f".to({weight.dtype}), or the layer with .to({z.dtype}) (.double() and .to(torch.float64) "
                            f"do not make complex weights complex128)")


class ComplexLinear(_ComplexWeightLayer):
    """Complex fully connected layer ``y = W z + b``: ``(N, *, in_features) -> (N, *, out_features)``, complex.

    Args:
        in_features, out_features: sizes of the last dimension.
        bias: add one complex bias.
        init: ``"he"`` or ``"glorot"`` (Rayleigh modulus, uniform phase).
        method: how the product is computed:

            - ``"auto"`` (default): ``"native"`` outside autocast, ``"gauss"`` under it;
            - ``"native"``: PyTorch's complex matrix product, one complex GEMM (1.7x faster than ``"gauss"`` for
              ComplexNet's 800 -> 500 layer, forward + backward, batch 64, one CPU thread); autocast leaves it
              in complex64;
            - ``"gauss"``: three real products, which autocast runs in bfloat16;
            - ``"block"``: one real product with the block weight, a twice larger copy of the weight every step
              (see :func:`complex_product`).
    """

    methods = ("auto", "block", "gauss", "native")

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, init: ComplexInit = "he",
        method: LinearMethod = "auto",
    ) -> None:
        self.in_features, self.out_features = in_features, out_features
        super().__init__((out_features, in_features), bias, init, method)

    def forward(self, z: Tensor) -> Tensor:
        self.check_input(z, None, dim=-1)
        method = self.product_method(z)
        if method == "native":
            return F.linear(z, self.weight, self.bias)
        return complex_product(F.linear, z, self.weight, self.bias, dim=-1, method=method)

    def product_method(self, z: Tensor) -> str:
        """The product used for input ``z``: ``self.method``, or the ``"auto"`` choice."""
        if self.method != "auto":
            return self.method
        return "gauss" if torch.is_autocast_enabled(z.device.type) else "native"

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ComplexConv2d(_ComplexWeightLayer):
    """Complex 2-d convolution ``y = W * z + b``: ``(N, C_in, H, W) -> (N, C_out, H', W')``, complex.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation: as :class:`torch.nn.Conv2d`
            (zero padding, one group).
        bias: add one complex bias per output channel.
        init: ``"he"`` or ``"glorot"`` (Rayleigh modulus, uniform phase).
        method: ``"block"`` or ``"gauss"`` (see :func:`complex_product`), or ``"auto"`` (default): gauss from
            :data:`GAUSS_MIN_MACS` multiply-adds per real convolution on, block below.
    """

    methods = ("auto", "block", "gauss")

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
        dilation: IntPair = 1, bias: bool = True, init: ComplexInit = "he", method: ConvMethod = "auto",
    ) -> None:
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        super().__init__((out_channels, in_channels, *self.kernel_size), bias, init, method)

    def real_conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)

    def forward(self, z: Tensor) -> Tensor:
        self.check_input(z, (4,), dim=1)
        if z.device.type == "cpu":  # oneDNN's channels-last kernels: 1.2x faster for ComplexNet's conv2 on this CPU
            z = z.contiguous(memory_format=torch.channels_last)  # and the block product's input is a view of z
        out = complex_product(self.real_conv, z, self.weight, self.bias, dim=1, method=self.product_method(z))
        # Return the default memory order: the backward of PyTorch's complex views makes gradients contiguous, and an
        # elementwise backward that mixes channels-last and contiguous tensors is slow (CReLU's: 8x).
        return out.contiguous()

    def product_method(self, z: Tensor) -> ProductMethod:
        """The product :func:`complex_product` uses for input ``z``: ``self.method``, or the ``"auto"`` choice."""
        if self.method != "auto":
            return self.method
        n, _, height, width = z.shape
        out_sides = [
            (side + 2 * pad - dil * (kernel - 1) - 1) // step + 1
            for side, pad, dil, kernel, step in zip(
                (height, width), self.padding, self.dilation, self.kernel_size, self.stride
            )
        ]
        macs = n * self.out_channels * math.prod(out_sides) * self.in_channels * math.prod(self.kernel_size)
        return "gauss" if macs >= GAUSS_MIN_MACS else "block"

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}, method={self.method}"
        )


# ---------------------------------------------------------------------------------------------- batch norm
def inverse_sqrt_2x2(v_rr: Tensor, v_ri: Tensor, v_ii: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Entries ``(w_rr, w_ri, w_ii)`` of ``V^{-1/2}`` for a positive definite ``V = [[v_rr, v_ri], [v_ri, v_ii]]``.

    Closed form of the whitening matrix of section 3.5: with ``s = sqrt(det V)`` and
    ``t = sqrt(v_rr + v_ii + 2 s)``, ``V^{1/2} = (V + s I) / t`` and
    ``V^{-1/2} = [[v_ii + s, -v_ri], [-v_ri, v_rr + s]] / (s t)``.
    """
    s = torch.sqrt(v_rr * v_ii - v_ri * v_ri)
    t = torch.sqrt(v_rr + v_ii + 2.0 * s)
    inverse_st = 1.0 / (s * t)
    return (v_ii + s) * inverse_st, -v_ri * inverse_st, (v_rr + s) * inverse_st


class _ComplexBatchNorm(nn.Module):
    """Complex batch normalisation (section 3.5) over every dimension but the channels (dimension 1).

    ``x~ = V^{-1/2} (z - E[z])`` with ``V`` the channel's 2x2 covariance of (real, imaginary) plus ``eps I``, then
    ``y = gamma x~ + beta`` with a symmetric ``gamma = [[g_rr, g_ri], [g_ri, g_ii]]`` (``1/sqrt(2)``, 0,
    ``1/sqrt(2)`` at init, so the output modulus has unit variance) and a complex ``beta`` (0 at init).
    Training uses the batch statistics and updates ``running_mean`` (complex) and ``running_covar``
    (``[V_rr, V_ri, V_ii]``, unbiased, identity at init) with ``momentum``; evaluation uses the running ones.

    Args:
        num_features: channels ``C``.
        eps: added to the covariance's diagonal.
        momentum: weight of the new batch in the running statistics; ``None``: their cumulative average over
            all batches (weight ``1 / num_batches_tracked``), as in ``nn.BatchNorm2d``.
        affine: learn ``gamma`` and ``beta``.
        track_running_stats: keep running statistics (else batch statistics are used in eval mode too).
    """

    input_ndims: tuple[int, ...] = ()

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.gamma_rr = nn.Parameter(torch.full((num_features,), 1 / math.sqrt(2)))
            self.gamma_ri = nn.Parameter(torch.zeros(num_features))
            self.gamma_ii = nn.Parameter(torch.full((num_features,), 1 / math.sqrt(2)))
            self.beta = nn.Parameter(torch.zeros(num_features, dtype=torch.complex64))
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, dtype=torch.complex64))
            self.register_buffer("running_covar", torch.tensor([1.0, 0.0, 1.0]).repeat(num_features, 1))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def batch_statistics(self, x_r: Tensor, x_i: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Per channel of the parts ``x_r, x_i`` of ``z``: the mean of each part and biased ``V_rr, V_ri, V_ii``."""
        dims = [d for d in range(x_r.ndim) if d != 1]
        count = x_r.numel() // x_r.shape[1]
        if count < 2:
            raise ValueError(
                f"{type(self).__name__} needs more than 1 value per channel in training mode, got input shape "
                f"{tuple(x_r.shape)}; use a larger batch or call .eval()"
            )
        mean_r, mean_i = x_r.mean(dim=dims), x_i.mean(dim=dims)
        c_r, c_i = x_r - self.per_channel(mean_r, x_r), x_i - self.per_channel(mean_i, x_i)
        v_rr, v_ri, v_ii = c_r.square().mean(dim=dims), (c_r * c_i).mean(dim=dims), c_i.square().mean(dim=dims)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                unbiased = count / (count - 1)
                weight = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
                # cast to the statistics' dtype: a complex128 input updates complex64 running statistics
                self.running_mean.lerp_(torch.complex(mean_r, mean_i).to(self.running_mean.dtype), weight)
                covar = torch.stack([v_rr, v_ri, v_ii], dim=1).detach() * unbiased
                self.running_covar.lerp_(covar.to(self.running_covar.dtype), weight)
        return mean_r, mean_i, v_rr, v_ri, v_ii

    @staticmethod
    def per_channel(values: Tensor, x: Tensor) -> Tensor:
        """``values`` of shape ``(C,)`` viewed to broadcast against ``x`` of shape ``(N, C, *)``."""
        return values.view(-1, *([1] * (x.ndim - 2)))

    def forward(self, z: Tensor) -> Tensor:
        check_complex(z, type(self).__name__, ndims=self.input_ndims)
        check_channels(z, self.num_features, type(self).__name__)
        x_r, x_i = planar_parts(z)  # dense parts: per-channel arithmetic on them vectorises, on complex64 it is slow
        if self.training or not self.track_running_stats:
            mean_r, mean_i, v_rr, v_ri, v_ii = self.batch_statistics(x_r, x_i)
        else:
            mean_r, mean_i = real_imag(self.running_mean)
            v_rr, v_ri, v_ii = self.running_covar.unbind(1)
        # whitening W = V^{-1/2}, then gamma: one 2x2 map per channel, A = gamma W (W itself without affine)
        w_rr, w_ri, w_ii = inverse_sqrt_2x2(v_rr + self.eps, v_ri, v_ii + self.eps)
        if self.affine:
            g_rr, g_ri, g_ii = self.gamma_rr, self.gamma_ri, self.gamma_ii
            a_rr, a_ri = g_rr * w_rr + g_ri * w_ri, g_rr * w_ri + g_ri * w_ii
            a_ir, a_ii = g_ri * w_rr + g_ii * w_ri, g_ri * w_ri + g_ii * w_ii
            b_r, b_i = real_imag(self.beta)
        else:
            a_rr, a_ri, a_ir, a_ii = w_rr, w_ri, w_ri, w_ii
            b_r = b_i = torch.zeros_like(w_rr)
        # y = A (x - mean) + beta = A x + (beta - A mean)
        shift_r = b_r - a_rr * mean_r - a_ri * mean_i
        shift_i = b_i - a_ir * mean_r - a_ii * mean_i
        a_rr, a_ri, a_ir, a_ii, shift_r, shift_i = (
            self.per_channel(t, x_r) for t in (a_rr, a_ri, a_ir, a_ii, shift_r, shift_i)
        )
        y_r = torch.addcmul(torch.addcmul(shift_r, a_rr, x_r), a_ri, x_i)
        y_i = torch.addcmul(torch.addcmul(shift_i, a_ir, x_r), a_ii, x_i)
        return complex_from_parts(y_r, y_i)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class ComplexBatchNorm1d(_ComplexBatchNorm):
    """Complex batch normalisation of ``(N, C)`` or ``(N, C, L)`` complex inputs (see :class:`_ComplexBatchNorm`)."""

    input_ndims = (2, 3)


class ComplexBatchNorm2d(_ComplexBatchNorm):
    """Complex batch normalisation of ``(N, C, H, W)`` complex inputs (see :class:`_ComplexBatchNorm`)."""

    input_ndims = (4,)


# ---------------------------------------------------------------------------------------------- activations
class CReLU(nn.Module):
    """``CReLU(z) = ReLU(Re z) + i ReLU(Im z)`` (section 3.4), any shape."""

    def forward(self, z: Tensor) -> Tensor:
        check_complex(z, type(self).__name__)
        return torch.view_as_complex(F.relu(torch.view_as_real(z)))


class ModReLU(nn.Module):
    """``modReLU(z) = ReLU(|z| + b) z / |z|`` with a learnable real ``b`` per channel (Arjovsky et al., 2016).

    The phase is kept and the modulus shifted by ``b``. At ``z = 0`` the phase is undefined; the output is 0 and
    the gradient finite (0), never NaN. Inputs ``(N, C, *)``; ``b`` has shape ``(num_features,)``, 0 at init.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, z: Tensor) -> Tensor:
        check_complex(z, type(self).__name__)
        check_channels(z, self.num_features, type(self).__name__)
        modulus = z.abs()
        nonzero = modulus > 0
        safe_modulus = torch.where(nonzero, modulus, torch.ones_like(modulus))
        bias = self.bias.view(-1, *([1] * (z.ndim - 2)))
        scale = torch.where(nonzero, F.relu(modulus + bias) / safe_modulus, torch.zeros_like(modulus))
        return z * scale

    def extra_repr(self) -> str:
        return str(self.num_features)


class ZReLU(nn.Module):
    """``zReLU(z) = z`` if the phase of ``z`` is in ``[0, pi/2]`` (Re z >= 0 and Im z >= 0), else 0 (Guberman, 2016)."""

    def forward(self, z: Tensor) -> Tensor:
        check_complex(z, type(self).__name__)
        return z * ((z.real >= 0) & (z.imag >= 0))


class ComplexDropout(nn.Module):
    """Complex dropout: one mask zeroes both parts of an entry; kept entries are scaled by ``1/(1-p)`` once."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, z: Tensor) -> Tensor:
        check_complex(z, type(self).__name__)
        if not self.training or self.p == 0.0:
            return z
        mask = F.dropout(torch.ones_like(z.real), self.p, training=True)
        return z * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ComplexMagnitude(nn.Module):
    """``|z|``: complex ``(N, *)`` to real ``(N, *)``, the paper's last step before the softmax."""

    def forward(self, z: Tensor) -> Tensor:
        check_complex(z, type(self).__name__)
        return z.abs()


class SingleChannelConv2d(nn.Conv2d):
    """``nn.Conv2d(1, 1, ...)`` computed as one depthwise convolution with the images as its channels.

    The same convolution and parameters; oneDNN's kernels are slow for one channel: forward + backward of the 3x3
    convolution of :class:`LearnedImaginaryInput` on 64 MNIST images takes 4.5 ms as a plain convolution and
    0.6 ms as a depthwise one (one CPU thread).
    """

    def __init__(self, kernel_size: IntPair, padding: IntPair = 0) -> None:
        super().__init__(1, 1, kernel_size, padding=padding)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        n, _, height, width = x.shape
        images_as_channels = x.reshape(1, n, height, width)
        depthwise = weight.expand(n, 1, *weight.shape[2:])
        out = F.conv2d(images_as_channels, depthwise, None if bias is None else bias.expand(n), self.stride,
                       self.padding, self.dilation, groups=n)
        return out.view(n, 1, *out.shape[2:])


class LearnedImaginaryInput(nn.Module):
    """Lift a real image ``x (N, C, H, W)`` to ``x + i f(x)``, ``f = BN -> ReLU -> Conv(C, C, 3, pad 1)`` (section 3.7).

    ``f`` is a real-valued block (it may run in bfloat16 under autocast); the result is complex64.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        conv = SingleChannelConv2d(3, padding=1) if channels == 1 else nn.Conv2d(channels, channels, 3, padding=1)
        self.imaginary = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), conv)

    def forward(self, x: Tensor) -> Tensor:
        if x.is_complex() or x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__} expects a real image of shape (N, {self.channels}, H, W), got "
                f"{tuple(x.shape)} of {x.dtype}"
            )
        return complex_from_parts(x, self.imaginary(x).to(x.dtype))
