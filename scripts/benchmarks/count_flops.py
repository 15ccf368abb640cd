"""FLOPs of an entry's training run and test pass, counted with ``torch.utils.flop_counter.FlopCounterMode``.

One training step (forward + backward on a batch of the entry's batch size) and one eval forward of a batch
(with the model's test-time augmentation, if any) are counted on random inputs of the datamodule's image shape,
then multiplied by the steps of the run and the test images:

    python -m scripts.benchmarks.count_flops airbench_cifar10 --steps 96 --test-images 10000
    python -m scripts.benchmarks.count_flops airbench_cifar10 --steps 475      # airbench94's own run, for comparison

Counts cover convolutions and matrix products (what FlopCounterMode counts); element-wise work is not included.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from zoo import registry
from zoo.hub import import_trusted
from zoo.models.base import ZooModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry")
    parser.add_argument("--steps", type=int, required=True, help="training steps of the run")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the entry's data batch_size")
    args = parser.parse_args()
    config = registry.get(args.entry).config
    model = import_trusted(config["model"]["class_path"], ZooModule)(**config["model"].get("init_args", {}))
    batch = args.batch_size or config["data"]["init_args"].get("batch_size", 64)
    hp = model.hparams
    x = torch.randn(batch, hp.in_channels, hp.image_size, hp.image_size)
    y = torch.randint(0, hp.num_classes, (batch,))
    model.train()
    with FlopCounterMode(display=False) as train_counter:
        model.loss(model(x), y).backward()
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as eval_counter:
        model(x)
    per_step, per_eval_image = train_counter.get_total_flops(), eval_counter.get_total_flops() / batch
    training, testing = per_step * args.steps, per_eval_image * args.test_images
    print(f"{args.entry}: {per_step / batch / 1e9:.3f} GFLOPs per training image (forward + backward), "
          f"{per_eval_image / 1e9:.3f} GFLOPs per test image (with test-time augmentation)")
    print(f"training {args.steps} steps x {batch}: {training:.3e} FLOPs; test {args.test_images} images: "
          f"{testing:.3e}; total {training + testing:.3e}")


if __name__ == "__main__":
    main()
