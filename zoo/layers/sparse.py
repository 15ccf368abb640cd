"""Sparse representations of "How Can We Be So Dense?" (Ahmad & Scheinkman, 2019, arXiv:1903.11257, section 3).

Two kinds of sparsity:

- **Sparse activations** (k-winners): of the ``n`` units of a sample only the ``k`` with the largest *boosted*
  activation keep their value, the rest become 0; the gradient flows through the winners only. Boosting keeps
  every unit in use. With the duty cycle ``d_i`` (how often unit ``i`` won recently), the target density
  ``a = k / n`` and the boost strength ``beta``::

      b_i = exp(beta * (a - d_i))                                  (boost factor)
      winners = top-k of  y_i * b_i                                (the k-winners step)
      d_i <- (d_i * (T - B) + wins_i) / T,   T = min(period, samples seen)   (running average, batch of B)

  As in the authors' code (Numenta's ``htmpapers`` ``k_winners.py``, ``updateDutyCycle``), ``wins_i`` counts the
  samples where unit ``i`` is *active*: a winner whose output is above 0 (a winner with a value <= 0 is no win).

  ``beta`` decays by ``boost_strength_factor`` after each epoch; at inference ``k`` grows by
  ``k_inference_factor`` (rounded half up, as Python 2's ``round`` in the authors' code).
- **Sparse weights**: a fixed random fraction ``1 - density`` of each output unit's incoming weights is 0. The
  zeros are chosen once, stored as a boolean buffer, and must be restored after every optimizer step
  (:func:`rezero_weights`); the zoo's models do this from a Lightning hook.

The functions (``winner_indices``, ``k_winners``, ``k_winners2d``, ``boost_factors``, ``updated_duty_cycles``)
hold the maths; the modules hold the state (duty cycles, boost strength, masks) in buffers, so checkpoints keep
it. Nothing here imports Lightning: the layers work in any PyTorch code, which then calls :func:`rezero_weights`
after ``optimizer.step()`` and :func:`decay_boost_strength` after each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal, Optional

import numpy as np
import torch
from torch import Tensor, nn

try:  # numpy >= 2 says which SIMD kernels its sorting and selection run
    from numpy._core._multiarray_umath import __cpu_features__ as NUMPY_CPU_FEATURES
except ImportError:  # numpy 1.x: no x86-simd-sort kernels
    NUMPY_CPU_FEATURES = {}

__all__ = [
    "winner_indices",
    "winner_mask",
    "keep_winners",
    "wins_per_unit",
    "active_per_unit",
    "boost_factors",
    "k_winners",
    "k_winners2d",
    "updated_duty_cycles",
    "KWinnersBase",
    "KWinners",
    "KWinners2d",
    "SparseWeights",
    "SparseWeights2d",
    "rezero_weights",
    "decay_boost_strength",
    "kwinners_layers",
]


# ---------------------------------------------------------------------------------------------------- functions
def winner_indices(scores: Tensor, k: int, dim: int = 1) -> Tensor:
    """Indices of the ``k`` largest ``scores`` along ``dim`` (like ``scores.topk(k, dim).indices``, in no order).

    Ties at the k-th value go to the lower index, so the winners are always well defined; NaN ranks above every
    number, as in ``torch.topk``. No Python loop over the batch: one selection of the ``k + 1`` largest values
    (:func:`_top_k_and_next`); where the k-th and (k+1)-th values differ (nearly always) the ``k`` above the
    (k+1)-th are the winners, and only the rows with a tie at the k-th place are settled again in index order.
    """
    units = scores.shape[dim]
    if not 0 < k <= units:
        raise ValueError(f"k must be in [1, {units}] for {units} units, got {k}")
    if scores.ndim != 2 or dim not in (1, -1):  # rows along the last dim, then back
        rows = scores.movedim(dim, -1)
        return winner_indices(rows.reshape(-1, units), k).reshape(*rows.shape[:-1], k).movedim(-1, dim)
    if k == units:
        return torch.arange(units, device=scores.device).expand_as(scores)
    indices, next_value, tied = _top_k_and_next(scores, k)
    if len(tied):
        indices[tied] = _winners_in_index_order(scores[tied], next_value[tied], k)
    return indices


def _numpy_has_simd_partition() -> bool:
    """Whether numpy's ``argpartition`` runs its x86 SIMD kernels here: numpy >= 2 on a CPU with AVX2 (or AVX-512)."""
    return bool(NUMPY_CPU_FEATURES.get("AVX2"))


CPU_SELECTION: Literal["argpartition", "topk"] = "argpartition" if _numpy_has_simd_partition() else "topk"
"""How :func:`winner_indices` selects the k + 1 largest scores of CPU tensors (other devices: always ``topk``).

``"argpartition"`` (numpy's SIMD introselect) takes, for 64 rows of 700 on one thread, 148 µs with AVX-512 and
231 µs with AVX2, against 430 µs for ``torch.topk``; without SIMD kernels it is slower (540 µs), hence the default.
Both give the same winners.
"""


def _top_k_and_next(scores: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Selection step of :func:`winner_indices` for rows ``scores`` ``(N, n)``, ``k < n``.

    Returns ``(indices, next_value, tied)``: ``indices`` ``(N, k)`` of ``k`` largest values of each row (in no order;
    any of the tied ones where the k-th value is tied), the (k+1)-th largest value ``(N, 1)``, and the rows (1-D) whose
    k-th value equals their (k+1)-th. On the CPU by :data:`CPU_SELECTION`; on other devices and under
    ``torch.compile``, by one ``topk`` of ``k + 1`` values.
    """
    on_cpu = scores.device.type == "cpu" and not torch.compiler.is_compiling()
    if on_cpu and CPU_SELECTION == "argpartition":
        indices, values, next_value = _top_k_and_next_argpartition(scores, k)
    else:
        indices, values, next_value = _top_k_and_next_topk(scores, k)
    tied = ((values == next_value).sum(dim=1) > 1).nonzero().flatten()  # the k-th value equals the (k+1)-th
    return indices, next_value, tied


def _top_k_and_next_topk(scores: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(indices, values, next_value)`` by ``topk``: the k largest, the values of the k + 1 largest, the (k+1)-th."""
    values, order = scores.topk(k + 1, dim=1, sorted=False)
    next_value, next_place = values.topk(1, dim=1, largest=False)  # topk, not min(): NaN ranks first
    # Drop the (k+1)-th: move the index in the last place into its place, then keep the first k places.
    return order.scatter_(1, next_place, order[:, k:].clone()).narrow(1, 0, k), values, next_value


def _top_k_and_next_argpartition(scores: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`_top_k_and_next_topk`, by numpy's ``argpartition`` (CPU tensors; NaN sorts last, so ranks first)."""
    rows = (scores.float() if scores.dtype == torch.bfloat16 else scores).numpy(force=True)  # numpy has no bf16
    n = rows.shape[1]
    order = np.argpartition(rows, n - k - 1, axis=1)  # the (k+1)-th largest at n - k - 1, the k larger after it
    values = torch.from_numpy(np.take_along_axis(rows, order[:, n - k - 1:], axis=1)).to(scores.dtype)
    return torch.from_numpy(np.ascontiguousarray(order[:, n - k:])), values, values[:, :1]


def _winners_in_index_order(rows: Tensor, kth_value: Tensor, k: int) -> Tensor:
    """Winner indices of rows whose k-th value ``kth_value`` ``(rows, 1)`` is tied: ties filled lowest index first."""
    above = (rows > kth_value) | rows.isnan()
    at_kth = rows == kth_value
    places_left = k - above.sum(dim=1, keepdim=True)
    winners = above | (at_kth & (at_kth.cumsum(dim=1) <= places_left))
    return winners.nonzero()[:, 1].view(len(rows), k)


def winner_mask(scores: Tensor, k: int, dim: int = 1) -> Tensor:
    """Boolean mask of :func:`winner_indices`: exactly ``k`` True along ``dim``."""
    indices = winner_indices(scores, k, dim)
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(dim, indices, True)


def keep_winners(x: Tensor, indices: Tensor, dim: int = 1) -> Tensor:
    """``x`` with every entry not in ``indices`` (along ``dim``) set to 0; the gradient reaches the winners only."""
    return torch.zeros_like(x).scatter_(dim, indices, x.gather(dim, indices))


def boost_factors(duty_cycles: Tensor, target_density: float, boost_strength: float | Tensor) -> Tensor:
    """``exp(boost_strength * (target_density - duty_cycles))``: rarely winning units get a factor above 1."""
    return torch.exp((target_density - duty_cycles) * boost_strength)


def k_winners(
    x: Tensor, k: int, duty_cycles: Optional[Tensor] = None, boost_strength: float | Tensor = 0.0
) -> tuple[Tensor, Tensor]:
    """k-winners of a batch of vectors.

    Args:
        x: activations ``(N, n)``.
        k: winners per sample.
        duty_cycles: ``(n,)`` running win frequencies (``None``: no boosting).
        boost_strength: ``beta`` of the boost factor; 0 disables boosting.

    Returns:
        ``(output, winners)``: ``output`` ``(N, n)`` is ``x`` with the losers set to 0 (gradient through the winners
        only); ``winners`` ``(N, k)`` are the winning units' indices (:func:`winner_indices`). Boosting only picks
        the winners; their values are not scaled.
    """
    if x.ndim != 2:
        raise ValueError(f"k_winners expects x of shape (N, units), got {tuple(x.shape)}; use k_winners2d for maps")
    scores = x.detach()
    if duty_cycles is not None:
        scores = scores * boost_factors(duty_cycles, k / x.shape[1], boost_strength)
    winners = winner_indices(scores, k)
    return keep_winners(x, winners), winners


def k_winners2d(
    x: Tensor,
    k: int,
    duty_cycles: Optional[Tensor] = None,
    boost_strength: float | Tensor = 0.0,
    local: bool = False,
) -> tuple[Tensor, Tensor]:
    """k-winners of a batch of feature maps ``x`` ``(N, C, H, W)``; duty cycles ``(C,)`` are per channel.

    ``local=False`` (the paper): ``k`` winners over all ``C * H * W`` units of a sample, target density
    ``k / (C * H * W)``; ``winners`` ``(N, k)`` index the flattened ``C * H * W`` map. ``local=True``: ``k``
    winners among the ``C`` channels at each location, target density ``k / C``; ``winners`` ``(N, k, H, W)`` are
    channel indices. Returns ``(output, winners)``, ``output`` of the shape of ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"k_winners2d expects x of shape (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    scores = x.detach()
    if duty_cycles is not None:
        units = c if local else c * h * w
        scores = scores * boost_factors(duty_cycles, k / units, boost_strength).view(1, c, 1, 1)
    if local:
        winners = winner_indices(scores, k, dim=1)
        return keep_winners(x, winners, dim=1), winners
    winners = winner_indices(scores.reshape(n, c * h * w), k)
    return keep_winners(x.reshape(n, c * h * w), winners).view_as(x), winners


def wins_per_unit(winners: Tensor, units: int) -> Tensor:
    """How often each of ``units`` units appears in the winner indices ``winners`` (any shape), as float32 counts."""
    flat = winners.flatten()
    counts = torch.zeros(units, dtype=torch.float32, device=winners.device)
    return counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=counts.dtype))


def active_per_unit(out: Tensor) -> Tensor:
    """How many samples of the k-winners output ``out`` each unit (dim 1) is active in: output above 0, float32.

    ``out`` ``(N, n)`` gives ``(n,)``; maps ``(N, C, H, W)`` give ``(C,)`` counts summed over the ``H * W``
    positions too (divide by ``H * W`` for the duty-cycle update). This is the authors' ``x.gt(0)`` count: a winner
    whose value is 0 or negative does not count as a win.
    """
    dims = (0, *range(2, out.ndim))
    return out.detach().gt(0).sum(dim=dims, dtype=torch.float32)


def updated_duty_cycles(duty_cycles: Tensor, wins: Tensor, batch_size: int, samples_seen: int, period: int) -> Tensor:
    """Running average of win frequencies: ``(d * (T - B) + wins) / T`` with ``T = min(period, samples_seen)``.

    ``wins``: wins (active winners, :func:`active_per_unit`) per unit summed over the batch (for maps: per
    channel, divided by ``H * W``), ``samples_seen``
    counts this batch too, so early on ``T`` is the number of samples so far and ``d`` is their plain mean.
    """
    window = min(period, samples_seen)
    return (duty_cycles * (window - batch_size) + wins) / window


# ---------------------------------------------------------------------------------------------------- k-winners
class KWinnersBase(nn.Module):
    """State shared by :class:`KWinners` and :class:`KWinners2d`.

    Buffers (saved in checkpoints): ``duty_cycles`` ``(units or channels,)``, ``boost_strength`` (scalar, decays
    each epoch) and ``samples_seen`` (training samples counted into the duty cycles).
    """

    def __init__(
        self,
        duty_cycle_size: int,
        k: int,
        k_inference_factor: float = 1.0,
        boost_strength: float = 1.0,
        boost_strength_factor: float = 1.0,
        duty_cycle_period: int = 1000,
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be a positive number of winners, got {k}")
        if boost_strength < 0:
            raise ValueError(f"boost_strength must be >= 0 (0 disables boosting), got {boost_strength}")
        if not 0 <= boost_strength_factor <= 1:
            raise ValueError(f"boost_strength_factor must be in [0, 1]: it multiplies the boost strength after each "
                             f"epoch (1 keeps it, the paper's 0.85 decays it), got {boost_strength_factor}")
        if k_inference_factor <= 0 or duty_cycle_period < 1:
            raise ValueError(
                f"k_inference_factor must be > 0 and duty_cycle_period >= 1, got {k_inference_factor} and "
                f"{duty_cycle_period}"
            )
        self.k = k
        self.k_inference_factor = k_inference_factor
        self.boost_strength_factor = boost_strength_factor
        self.duty_cycle_period = duty_cycle_period
        self.register_buffer("duty_cycles", torch.zeros(duty_cycle_size))
        self.register_buffer("boost_strength", torch.tensor(float(boost_strength)))
        self.register_buffer("samples_seen", torch.tensor(0, dtype=torch.long))

    def active_k(self, units: int) -> int:
        """``k`` in training; ``k * k_inference_factor`` rounded half up (at most ``units``) in eval mode.

        Half up, not Python 3's half-to-even ``round``: the authors' code ran on Python 2, whose ``round(4.5)`` is 5.
        """
        k = self.k if self.training else math.floor(self.k * self.k_inference_factor + 0.5)
        if self.k > units:
            raise ValueError(f"{type(self).__name__}: k={self.k} winners asked of only {units} units")
        return min(k, units)

    @torch.no_grad()
    def update_duty_cycles(self, wins: Tensor, batch_size: int) -> None:
        """Fold one training batch's ``wins`` per duty-cycle entry into the running average (in place)."""
        self.samples_seen += batch_size
        seen = int(self.samples_seen)
        self.duty_cycles.copy_(updated_duty_cycles(self.duty_cycles, wins, batch_size, seen, self.duty_cycle_period))

    @torch.no_grad()
    def decay_boost_strength(self) -> None:
        """Multiply the boost strength by ``boost_strength_factor`` (call once after each epoch)."""
        self.boost_strength.mul_(self.boost_strength_factor)

    def check_input(self, x: Tensor, ndim: int, shape: str, fix: str) -> None:
        """Refuse an input that is not ``ndim``-dimensional with the layer's units (or channels) on dim 1."""
        if x.ndim != ndim or x.shape[1] != len(self.duty_cycles):
            raise ValueError(f"{type(self).__name__} expects input of shape {shape}, got {tuple(x.shape)}; {fix}")

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, k_inference_factor={self.k_inference_factor}, "
            f"boost_strength={float(self.boost_strength):.4g}, boost_strength_factor={self.boost_strength_factor}, "
            f"duty_cycle_period={self.duty_cycle_period}"
        )


class KWinners(KWinnersBase):
    """k-winners of vectors: input and output ``(N, units)``.

    Args:
        units: size of the input vectors.
        k: winners per sample in training (target density ``k / units``).
        k_inference_factor: ``k`` is multiplied by this in eval mode (the paper: 1.5).
        boost_strength: initial ``beta`` (0: no boosting; the paper: 1.5).
        boost_strength_factor: ``beta`` is multiplied by this after each epoch (the paper: 0.85).
        duty_cycle_period: samples averaged over by the duty cycles (1000).
    """

    def __init__(self, units: int, k: int, **boosting: float) -> None:
        if k > units:
            raise ValueError(f"k={k} winners asked of only {units} units; pick k <= units")
        super().__init__(units, k, **boosting)
        self.units = units

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x, 2, f"(N, {self.units})", f"flatten the input or set units={x.shape[-1]}")
        out, _ = k_winners(x, self.active_k(self.units), self.duty_cycles, self.boost_strength)
        if self.training:
            self.update_duty_cycles(active_per_unit(out), len(x))
        return out

    def extra_repr(self) -> str:
        return f"units={self.units}, " + super().extra_repr()


class KWinners2d(KWinnersBase):
    """k-winners of feature maps: input and output ``(N, channels, H, W)``; one duty cycle per channel.

    Args:
        channels: channels of the input maps.
        k: winners per sample (``local=False``: over all ``channels * H * W`` units; ``local=True``: among the
            channels at each location).
        local: choose the winners per location instead of over the whole map.
        k_inference_factor, boost_strength, boost_strength_factor, duty_cycle_period: as in :class:`KWinners`.
    """

    def __init__(self, channels: int, k: int, local: bool = False, **boosting: float) -> None:
        if local and k > channels:
            raise ValueError(f"local k-winners pick k={k} of only {channels} channels at each location")
        super().__init__(channels, k, **boosting)
        self.channels = channels
        self.local = local

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x, 4, f"(N, {self.channels}, H, W)",
                         f"set channels={x.shape[1] if x.ndim == 4 else '?'} or pass 4-D feature maps")
        n, c, h, w = x.shape
        k = self.active_k(c if self.local else c * h * w)
        out, _ = k_winners2d(x, k, self.duty_cycles, self.boost_strength, self.local)
        if self.training:
            self.update_duty_cycles(active_per_unit(out) / (h * w), n)
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, local={self.local}, " + super().extra_repr()


# ---------------------------------------------------------------------------------------------------- weights
class SparseWeights(nn.Module):
    """Wrap a ``Linear`` so that a fixed random ``1 - density`` of each output unit's inputs have weight 0.

    The mask ``zero_mask`` (bool, the weight's shape, True = held at zero) is drawn once from torch's global
    generator (seed it for reproducibility) and stored as a buffer. Input and output shapes are the wrapped
    layer's. Call :meth:`rezero_weights` after every optimizer step (the zoo's models do it for you).

    Args:
        module: the layer to sparsify.
        density: fraction of each output unit's incoming weights that may be non-zero, in (0, 1].
    """

    wrapped_type: type[nn.Module] = nn.Linear

    def __init__(self, module: nn.Module, density: float) -> None:
        super().__init__()
        if not isinstance(module, self.wrapped_type):
            raise ValueError(
                f"{type(self).__name__} wraps a {self.wrapped_type.__name__}, got {type(module).__name__}"
            )
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        self.module = module
        self.density = density
        weight = module.weight
        fan_in = weight[0].numel()
        zeros_per_unit = round((1.0 - density) * fan_in)
        # Per output unit, the zeros_per_unit inputs with the smallest random keys are held at zero.
        ranks = torch.rand(weight.shape[0], fan_in).argsort(dim=1).argsort(dim=1)
        self.register_buffer("zero_mask", (ranks < zeros_per_unit).view_as(weight))
        self.rezero_weights()

    @torch.no_grad()
    def rezero_weights(self) -> None:
        """Set the masked weights back to 0."""
        self.module.weight.masked_fill_(self.zero_mask, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)

    def extra_repr(self) -> str:
        return f"density={self.density}"


class SparseWeights2d(SparseWeights):
    """:class:`SparseWeights` for a ``Conv2d``: each output channel keeps ``density`` of its ``C_in * kh * kw``
    weights."""

    wrapped_type = nn.Conv2d


# ---------------------------------------------------------------------------------------------------- helpers
def kwinners_layers(module: nn.Module) -> Iterator[KWinnersBase]:
    """All k-winners layers inside ``module``, in registration order."""
    return (m for m in module.modules() if isinstance(m, KWinnersBase))


@torch.no_grad()
def rezero_weights(module: nn.Module) -> None:
    """Restore the zeros of every :class:`SparseWeights` inside ``module`` (call after ``optimizer.step()``)."""
    for m in module.modules():
        if isinstance(m, SparseWeights):
            m.rezero_weights()


def decay_boost_strength(module: nn.Module) -> None:
    """Decay the boost strength of every k-winners layer inside ``module`` (call after each epoch)."""
    for layer in kwinners_layers(module):
        layer.decay_boost_strength()
