"""Training-step speed of a zoo network in ``bf16-mixed`` against float32, in the same process.

One step is what Lightning's ``precision="bf16-mixed"`` does on the CPU: the forward pass under
``torch.autocast("cpu", dtype=torch.bfloat16)``, the loss in float32, backward and an SGD step on float32 weights.
On CPUs with bfloat16 matrix units (Intel AMX, ``amx_bf16`` in ``lscpu``; AVX-512 BF16) oneDNN runs the
convolutions and matrix products in bfloat16; elsewhere autocast may be slower than float32. The two precisions are
timed in turns (``scripts/benchmark_timing.py``) on random images of the entry's size, and the ratio
float32 seconds / bf16 seconds printed (> 1: bf16-mixed is faster).

    python scripts/benchmark_precision.py [--entry airbench_cifar10] [--batch-size 1024] [--rounds 3] [--calls 2]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmark_timing import median_seconds_in_turns
from zoo import registry
from zoo.hub import import_trusted
from zoo.models.base import ZooModule


def training_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  optimizer: torch.optim.Optimizer, bf16: bool) -> Callable[[], None]:
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", default="airbench_cifar10", help="a zoo classifier entry (its config's model)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2)
    args = parser.parse_args()

    config = registry.get(args.entry).config
    model_class = import_trusted(config["model"]["class_path"], ZooModule)
    model = model_class(**config["model"].get("init_args", {})).train()
    hp = model.hparams
    images = torch.randn(args.batch_size, hp.in_channels, hp.image_size, hp.image_size)
    labels = torch.randint(0, hp.num_classes, (args.batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    seconds = median_seconds_in_turns(
        {precision: training_step(model, images, labels, optimizer, bf16=precision == "bf16-mixed")
         for precision in ("32-true", "bf16-mixed")},
        rounds=args.rounds, calls=args.calls, warmup=1)
    print(f"{args.entry}, batch {args.batch_size}, {torch.get_num_threads()} threads:")
    for precision, s in seconds.items():
        print(f"  {precision:>10}: {s:.3f} s per training step ({args.batch_size / s:,.0f} samples/s)")
    print(f"  ratio float32 / bf16-mixed seconds: {seconds['32-true'] / seconds['bf16-mixed']:.2f}x")


if __name__ == "__main__":
    main()
