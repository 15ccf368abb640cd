"""Speed of the vectorized k-winners (zoo.layers.KWinners / KWinners2d) against a per-sample Python loop.

Forward + backward of a training-mode layer (boosting on, duty cycles updated) at batch 64 and 1024, on the
Sparse CNN-2 sizes of "How Can We Be So Dense?": KWinners over 700 units (k=100) and KWinners2d over
32 x 12 x 12 maps (k=400 of 4608). The baseline is the straightforward implementation: a Python loop over the
samples, each taking its own ``topk`` of the boosted activations and copying the winners' values. Both are
timed in this process, in turns, and the ratio printed (> 1: the zoo's layer is faster).

The layer selects the k + 1 largest on the CPU with numpy's ``argpartition`` where numpy has SIMD kernels for it
(``zoo.layers.sparse.CPU_SELECTION``); ``--cpu-selection topk`` times it with ``torch.topk``, as on other devices.

    OMP_NUM_THREADS=1 python -m scripts.benchmarks.benchmark_kwinners [--repeats 10]   # one thread
    python -m scripts.benchmarks.benchmark_kwinners                                   # all cores
    OMP_NUM_THREADS=1 python -m scripts.benchmarks.benchmark_kwinners --cpu-selection topk
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch
from torch import Tensor

from scripts.benchmarks.benchmark_timing import median_seconds_in_turns
from zoo.layers import KWinners, KWinners2d
from zoo.layers import sparse
from zoo.layers.sparse import KWinnersBase, boost_factors


def loop_k_winners(layer: KWinnersBase, x: Tensor) -> Tensor:
    """Per-sample reference: boosted top-k of each flattened sample in a Python loop, then the duty cycles."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    duty = layer.duty_cycles
    if x.ndim == 4:  # one duty cycle per channel, repeated over the positions
        duty = duty.repeat_interleave(x.shape[2] * x.shape[3])
    boost = boost_factors(duty, layer.k / flat.shape[1], layer.boost_strength)
    rows = []
    for i in range(n):
        winners = (flat[i].detach() * boost).topk(layer.k).indices
        row = torch.zeros_like(flat[i])
        row[winners] = flat[i][winners]
        rows.append(row)
    out = torch.stack(rows).view_as(x)
    wins = (out.detach() != 0).to(x.dtype)
    wins = wins.sum(dim=(0, 2, 3)) / (x.shape[2] * x.shape[3]) if x.ndim == 4 else wins.sum(dim=0)
    layer.update_duty_cycles(wins, n)
    return out


def forward_backward(forward: Callable[[Tensor], Tensor], x: Tensor, upstream: Tensor) -> Callable[[], None]:
    """One training step of the layer alone: forward, then backward of a fixed upstream gradient."""

    def step() -> None:
        x.grad = None
        forward(x).backward(upstream)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--cpu-selection", choices=["argpartition", "topk"], default=sparse.CPU_SELECTION,
                        help=f"how the layer selects the winners on the CPU (default here: {sparse.CPU_SELECTION})")
    args = parser.parse_args()
    sparse.CPU_SELECTION = args.cpu_selection
    torch.manual_seed(0)
    cases = [
        ("KWinners   700 units, k=100", lambda: KWinners(700, 100, boost_strength=1.5), (700,)),
        ("KWinners2d 32x12x12, k=400", lambda: KWinners2d(32, 400, boost_strength=1.5), (32, 12, 12)),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); forward+backward, training mode; "
          f"the layer selects with {sparse.CPU_SELECTION}")
    print(f"{'layer':<30}{'batch':>6}{'zoo ms':>10}{'loop ms':>10}{'ratio':>8}")
    for name, make, shape in cases:
        for batch in args.batches:
            x = torch.randn(batch, *shape, requires_grad=True)
            upstream = torch.randn(batch, *shape)
            layer, reference = make(), make()
            steps = {"zoo": forward_backward(layer, x, upstream),
                     "loop": forward_backward(lambda t: loop_k_winners(reference, t), x, upstream)}
            zoo_s, loop_s = median_seconds_in_turns(steps, rounds=7, calls=args.repeats, warmup=3).values()
            print(f"{name:<30}{batch:>6}{1e3 * zoo_s:>10.2f}{1e3 * loop_s:>10.2f}{loop_s / zoo_s:>7.2f}x")


if __name__ == "__main__":
    main()
