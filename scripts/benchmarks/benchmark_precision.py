"""Training-step speed of a zoo network in ``bf16-mixed`` against float32, in the same process.

One step is what Lightning's ``precision="bf16-mixed"`` does on the CPU: the forward pass under
``torch.autocast("cpu", dtype=torch.bfloat16)``, the loss in float32, backward and an SGD step on float32 weights.
On CPUs with bfloat16 matrix units (Intel AMX, ``amx_bf16`` in ``lscpu``; AVX-512 BF16) oneDNN runs the
convolutions and matrix products in bfloat16; elsewhere autocast may be slower than float32. The two precisions are
timed in turns (``scripts/benchmarks/benchmark_timing.py``) on random images of the entry's size, and each
variant's speed printed as a ratio to the first (float32; > 1: faster). ``--memory-formats`` times both precisions
with the model's ``channels_last`` option off and on (oneDNN's bfloat16 convolutions are fastest in channels_last).

    python -m scripts.benchmarks.benchmark_precision [--entry airbench_cifar10] [--batch-size 1024] [--rounds 3] \\
        [--calls 2] [--memory-formats]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from scripts.benchmarks.benchmark_timing import median_seconds_in_turns
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
    parser.add_argument("--memory-formats", action="store_true",
                        help="also time each precision with the other memory format (the model's channels_last "
                             "option off and on; image classifiers only): four variants, each against float32 in "
                             "the contiguous format")
    args = parser.parse_args()

    config = registry.get(args.entry).config
    model_class = import_trusted(config["model"]["class_path"], ZooModule)
    init_args = config["model"].get("init_args", {})
    formats = ((False, True) if args.memory_formats else (bool(init_args.get("channels_last", False)),))
    steps = {}
    for channels_last in formats:
        model = model_class(**{**init_args, **({"channels_last": channels_last} if args.memory_formats else {})})
        hp = model.train().hparams
        images = torch.randn(args.batch_size, hp.in_channels, hp.image_size, hp.image_size)
        labels = torch.randint(0, hp.num_classes, (args.batch_size,))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
        layout = "channels_last" if channels_last else "contiguous"
        for precision in ("32-true", "bf16-mixed"):
            name = f"{precision} {layout}"
            steps[name] = training_step(model, images, labels, optimizer, bf16=precision == "bf16-mixed")
    baseline = next(iter(steps))  # float32 in the first memory format
    seconds = median_seconds_in_turns(steps, rounds=args.rounds, calls=args.calls, warmup=1)
    print(f"{args.entry}, batch {args.batch_size}, {torch.get_num_threads()} threads:")
    for name, s in seconds.items():
        print(f"  {name:>24}: {s:.3f} s per training step ({args.batch_size / s:,.0f} samples/s), "
              f"{seconds[baseline] / s:.2f}x the speed of {baseline}")


if __name__ == "__main__":
    main()
