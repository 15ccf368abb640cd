"""``zoo predict`` on image files: its accuracy against the manifest, and its speed against a plain loop.

1. Accuracy: the first ``--n`` test images of an entry's dataset are saved as PNG files (and, for MNIST-like
   entries, also drawn dark on light and resized to 200x200, as a user's scan would be); ``zoo predict``'s
   answers are compared with the labels and printed beside the manifest's ``test/acc``.
2. Throughput (``--speed``): ``--files`` JPEG files in a folder are classified by ``zoo predict``'s code path and
   by a plain loop (list the files, ``zoo.load`` the model, ``torchvision.io.decode_jpeg`` + resize + normalize +
   the model in batches of the same size), each from the folder to the answers, in turns (``--runs``, median), in
   one process; the ratio is printed (``zoo predict`` / plain loop).

Run (the datasets under ``ZOO_DATA_DIR``)::

    python -m scripts.benchmarks.benchmark_predict lenet_mnist lenet_fashion_mnist airbench_cifar10 --n 10000
    python -m scripts.benchmarks.benchmark_predict airbench_cifar10 --speed --files 1000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg, read_file, write_jpeg, write_png

from zoo import hub, registry
from zoo.predict import predict_files


def test_images(entry: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images of the entry's datamodule as uint8 ``(N, C, H, W)`` and their labels."""
    datamodule = hub.build_datamodule(entry, **({"normalize": False} if "MNIST" in
                                                 registry.get(entry).manifest().datamodule_class else {}))
    datamodule.setup("test")
    images, labels = datamodule.test_set.tensors[:2]
    if images.dtype != torch.uint8:
        images = (images * 255).round().clamp(0, 255).byte()
    return images[:n], labels[:n]


def predicted_classes(entry: str, folder: Path) -> dict[str, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        predict_files(entry, [str(folder)])
    return {Path(line.split("\t")[0]).stem: line.split("\t")[1] for line in out.getvalue().splitlines()}


def accuracy(entry: str, n: int) -> None:
    manifest = registry.get(entry).manifest()
    classes = manifest.classes
    images, labels = test_images(entry, n)
    with tempfile.TemporaryDirectory() as tmp:
        plain, paper = Path(tmp, "plain"), Path(tmp, "paper")
        plain.mkdir()
        paper.mkdir()
        light_on_dark = manifest.preprocessing.get("polarity") == "light-on-dark"
        for i, image in enumerate(images):
            write_png(image, str(plain / f"{i:05d}.png"))
            if light_on_dark:
                big = F.interpolate((255 - image.float())[None], size=(200, 200), mode="bilinear")[0]
                write_png(big.round().clamp(0, 255).byte(), str(paper / f"{i:05d}.png"))
        variants = [("PNG files", plain)] + ([("dark on light, 200x200", paper)] if light_on_dark else [])
        for name, folder in variants:
            answers = predicted_classes(entry, folder)
            hits = sum(answers[f"{i:05d}"] == classes[int(y)] for i, y in enumerate(labels))
            print(f"{entry:<28} {name:<24} {hits / len(labels):.4f} on {len(labels)} images "
                  f"(manifest test/acc {manifest.metrics['test/acc']:.4f})")


def plain_loop(entry: str, folder: str, spec: dict, batch_size: int) -> list[tuple[str, int, float]]:
    """What a user would write without ``zoo predict``: list the JPEGs, load the model, decode, resize and
    normalize each batch, and keep each file's most probable class."""
    files = sorted(Path(folder).glob("*.jpg"))
    model = hub.load(entry)
    mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
    mode = ImageReadMode.GRAY if spec["channels"] == 1 else ImageReadMode.RGB
    answers = []
    for start in range(0, len(files), batch_size):
        batch = files[start:start + batch_size]
        images = torch.stack([decode_jpeg(read_file(str(p)), mode=mode) for p in batch])
        x = F.interpolate(images.float() / 255, size=spec["input_size"], mode="bilinear", antialias=True)
        with torch.inference_mode():
            probability, index = model((x - mean) / std).softmax(-1).max(-1)
        answers += [(str(p), i, q) for p, i, q in zip(batch, index.tolist(), probability.tolist())]
    return answers


def throughput(entry: str, n_files: int, runs: int, batch_size: int) -> None:
    spec = registry.get(entry).manifest().preprocessing
    images, _ = test_images(entry, n_files)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, image in enumerate(images):
            path = Path(tmp, f"{i:05d}.jpg")
            write_jpeg(image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image, str(path))
            files.append(path)
        times: dict[str, list[float]] = {"zoo predict": [], "plain loop": []}
        for _ in range(runs):
            for name in times:
                start = time.perf_counter()
                if name == "plain loop":
                    plain_loop(entry, tmp, spec, batch_size)
                else:
                    with contextlib.redirect_stdout(io.StringIO()):
                        predict_files(entry, [tmp], batch_size=batch_size)
                times[name].append(time.perf_counter() - start)
    rates = {name: len(files) / statistics.median(t) for name, t in times.items()}
    for name, rate in rates.items():
        print(f"{name:<12} {rate:8.1f} images/s (median of {runs} runs over {len(files)} JPEGs, "
              f"{torch.get_num_threads()} threads)")
    print(f"ratio zoo predict / plain loop: {rates['zoo predict'] / rates['plain loop']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="+", help="image classifiers that ship weights")
    parser.add_argument("--n", type=int, default=10000, help="test images per entry for the accuracy")
    parser.add_argument("--speed", action="store_true", help="measure throughput instead of accuracy")
    parser.add_argument("--files", type=int, default=1000, help="JPEG files for the throughput")
    parser.add_argument("--runs", type=int, default=3, help="runs of each loop, in turns")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()
    for entry in args.entries:
        if args.speed:
            throughput(entry, args.files, args.runs, args.batch_size)
        else:
            accuracy(entry, args.n)


if __name__ == "__main__":
    main()
