"""Benchmark ComplexConv2d (forward + backward) against the naive four-real-convolution version.

The naive version computes the complex convolution of Trabelsi et al. (2018, section 3.2) literally, with four
real convolutions: ``(W_r * x_r - W_i * x_i) + i(W_r * x_i + W_i * x_r)``. ComplexConv2d's ``"block"`` product
does one real convolution with the block weight ``[[W_r, -W_i], [W_i, W_r]]``, its ``"gauss"`` product three
(Gauss/Karatsuba); the default ``"auto"`` picks one of them by the size of the convolution (``GAUSS_MIN_MACS``).
On the CPU ComplexConv2d convolves in channels-last order (oneDNN's faster kernels there), so the naive version is
also timed on a channels-last input: the gap between the two naive rows is what the memory order alone gives.
PyTorch's own complex ``F.conv2d`` is timed too, for reference. All run in this process on
the same inputs, in turns, one thread by default; the printed ratio is the naive time divided by each method's time
(> 1: faster than naive).

Last, one SGD training step (forward, loss, backward, update) of ComplexNet and of RealNet, its real-valued twin
with as many real parameters, as shipped for Fashion-MNIST (``zoo.hub.load``), on a batch of 64 random 28x28
images: the cost of complex arithmetic in a whole net.

    python -m scripts.benchmarks.benchmark_complex [--threads 1] [--repeats 7]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from scripts.benchmarks.benchmark_timing import median_seconds_in_turns
from zoo.hub import load
from zoo.layers.complex import ComplexConv2d
from zoo.models.base import ImageClassifier

#: (name, batch, in channels, out channels, image side, kernel, stride, padding)
SIZES = [
    ("ComplexNet conv2: 64 x 20->50, 12x12, k5 s2", 64, 20, 50, 12, 5, 2, 0),
    ("wider: 16 x 64->64, 32x32, k3 pad 1", 16, 64, 64, 32, 3, 1, 1),
]


def naive_complex_conv2d(z: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int) -> Tensor:
    """Four real convolutions, one complex bias."""
    conv = lambda x, w: F.conv2d(x, w, None, stride, padding)  # noqa: E731
    real = conv(z.real, weight.real) - conv(z.imag, weight.imag)
    imag = conv(z.imag, weight.real) + conv(z.real, weight.imag)
    return torch.complex(real, imag) + bias.view(-1, 1, 1)


def benchmark_size(batch: int, c_in: int, c_out: int, side: int, kernel: int, stride: int, padding: int,
                   repeats: int, inner: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(batch, c_in, side, side, dtype=torch.complex64, generator=generator).requires_grad_()
    z_channels_last = z.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    layers = {m: ComplexConv2d(c_in, c_out, kernel, stride=stride, padding=padding, method=m)
              for m in ("auto", "block", "gauss")}
    for method in ("block", "gauss"):
        layers[method].load_state_dict(layers["auto"].state_dict())
    weight, bias = layers["auto"].weight, layers["auto"].bias
    default = f"ComplexConv2d default ({layers['auto'].product_method(z)})"
    methods: dict[str, Callable[[], Tensor]] = {
        "naive (4 real convs)": lambda: naive_complex_conv2d(z, weight, bias, stride, padding),
        "naive, channels-last input": lambda: naive_complex_conv2d(z_channels_last, weight, bias, stride, padding),
        default: lambda: layers["auto"](z),
        "ComplexConv2d block": lambda: layers["block"](z),
        "ComplexConv2d gauss": lambda: layers["gauss"](z),
        "torch complex conv2d": lambda: F.conv2d(z, weight, bias, stride, padding),
    }
    reference = methods["naive (4 real convs)"]().detach()
    for name, forward in methods.items():
        if not torch.allclose(forward().detach(), reference, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"{name} disagrees with the naive version")
    upstream = torch.randn(reference.shape, dtype=torch.complex64, generator=generator)
    steps = {name: (lambda forward=forward: forward().backward(upstream)) for name, forward in methods.items()}
    return median_seconds_in_turns(steps, rounds=repeats, calls=inner)


def training_step(model: ImageClassifier, images: Tensor, labels: Tensor) -> Callable[[], None]:
    """One SGD step of ``model`` (the optimizer its hyperparameters configure) on one batch."""
    config = model.configure_optimizers()
    optimizer = config["optimizer"] if isinstance(config, dict) else config

    def step() -> None:
        optimizer.zero_grad()
        model.loss(model(images), labels).backward()
        optimizer.step()

    return step


def benchmark_nets(repeats: int, inner: int, batch: int = 64) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    nets = {"ComplexNet": load("complex_net_fashion_mnist"), "RealNet": load("real_net_fashion_mnist")}
    steps = {name: training_step(net.train(), images, labels) for name, net in nets.items()}
    return median_seconds_in_turns(steps, rounds=repeats, calls=inner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7, help="timed samples per method (the median is shown)")
    parser.add_argument("--inner", type=int, default=5, help="forward+backward passes per sample")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} x {args.inner} passes")
    for name, *size in SIZES:
        times = benchmark_size(*size, repeats=args.repeats, inner=args.inner)
        naive = times["naive (4 real convs)"]
        print(f"\n{name}  (forward + backward)")
        for method, seconds in times.items():
            print(f"  {method:<36} {seconds * 1e3:8.2f} ms   naive / this = {naive / seconds:5.2f}x")
    times = benchmark_nets(repeats=args.repeats, inner=args.inner)
    print("\nOne SGD training step, batch 64, 28x28 (the shipped configs' nets)")
    for name, seconds in times.items():
        print(f"  {name:<36} {seconds * 1e3:8.2f} ms")
    print(f"  ComplexNet / RealNet = {times['ComplexNet'] / times['RealNet']:.2f}x")


if __name__ == "__main__":
    main()
