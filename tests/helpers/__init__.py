"""What the tests share besides fixtures: tiny datasets written in the real on-disk formats, the ``zoo`` command in
a subprocess, and the real-data switch. ``tests/conftest.py`` keeps only the fixtures built from these.

Importing this package does not import torch (``tests/test_docs.py`` stays torch-free). The modules beside it are
imported by name: :mod:`tests.helpers.models` (an entry's untrained model), :mod:`tests.helpers.custom_models` (a
user's subclass of a zoo model) and the DDP callbacks (``tests.helpers.*_check``) that ``zoo fit`` subprocesses load
with ``--trainer.callbacks+=tests.helpers.<module>.<Callback>``; they run from the repository root, which is then on
their ``sys.path`` (``python -m zoo``'s working directory).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """Write uint8 images (N, H, W) as an uncompressed IDX3 file (magic 2051), as torchvision expects."""
    n, h, w = images.shape
    header = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + h.to_bytes(4, "big") + w.to_bytes(4, "big")
    path.write_bytes(header + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """Write uint8 labels (N,) as an uncompressed IDX1 file (magic 2049)."""
    path.write_bytes((2049).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 images whose class (0-9) is a bright bar at a class-dependent row, plus pixel noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, label in enumerate(labels):
        row = 3 + 2 * label
        images[i, row : row + 2, 4:24] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist_family(root: Path, folder: str, n_train: int = 200, n_test: int = 100) -> Path:
    """Write ``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` with synthetic digits."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """Write ``<root>/cifar-10-batches-py`` in the real pickled format (protocol 2 dicts, uint8 (N, 3072) rows of
    R, G, B planes) with ``per_batch`` images in each of data_batch_1..5 and test_batch. Class ``k`` images are
    brighter in channel ``k % 3`` so a small net can learn them."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for i, name in enumerate(names):
        labels = rng.integers(0, 10, size=per_batch)
        images = rng.integers(0, 100, size=(per_batch, 3, 32, 32))
        images[np.arange(per_batch), labels % 3] += 120
        entry = {"batch_label": f"batch {i}", "labels": labels.tolist(),
                 "data": images.astype(np.uint8).reshape(per_batch, 3072),
                 "filenames": [f"{i * per_batch + j}.png" for j in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


def write_dogs_vs_cats(root: Path, per_class: int = 6, val_per_class: int = 3,
                      size: tuple[int, int] = (48, 40)) -> Path:
    """Write ``root/{train,val}/{cat,dog}/<class>.<i>.jpg``: real JPEGs (``size`` = width, height), cats reddish and
    dogs bluish, plus noise."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("cat", "dog")):
        for i in range(per_class + val_per_class):
            folder = root / ("val" if i >= per_class else "train") / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 80, size=(size[1], size[0], 3))
            pixels[..., 0 if label == 0 else 2] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}.{i}.jpg", quality=90)
    return root


#: two CoNLL-U sentences: a multiword token ("don't"), an empty node (2.1) and comments, as in UD English EWT
CONLLU = """# newdoc id = doc1
# sent_id = s1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = s2
1\tBush\tBush\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tleft\tleave\tVERB\tVBD\t_\t0\troot\t_\t_
2.1\tleft\tleave\tVERB\tVBD\t_\t_\t_\t0:root\t_
3\tearly\tearly\tADV\tRB\t_\t2\tadvmod\t_\t_
"""


def write_ud_treebank(root: Path, treebank: str = "en_ewt", copies: int = 3) -> Path:
    """Write ``root/<treebank>-ud-{train,dev,test}.conllu``, each ``copies`` times :data:`CONLLU`."""
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        (root / f"{treebank}-ud-{split}.conllu").write_text((CONLLU + "\n") * copies, encoding="utf-8")
    return root


def write_data_dir(root: Path) -> Path:
    """A tiny ``ZOO_DATA_DIR`` laid out as the real one (``../shared/data``), for every datamodule that reads files:
    MNIST, FashionMNIST and ``mnist-5k/MNIST`` (IDX), ``cifar-10-batches-py``, ``dogs-vs-cats-3k`` (JPEG class
    folders) and ``ud/UD_English-EWT`` (CoNLL-U). The embedded datasets (MNIST-mini, the airline series, the sonnets)
    and the generated ones need no files."""
    write_mnist_family(root, "MNIST")
    write_mnist_family(root, "FashionMNIST")
    write_mnist_family(root / "mnist-5k", "MNIST")
    write_cifar10(root)
    write_dogs_vs_cats(root / "dogs-vs-cats-3k")
    write_ud_treebank(root / "ud" / "UD_English-EWT")
    return root


def real_data_dir() -> Path | None:
    """``$ZOO_DATA_DIR`` when it names an existing directory (the real datasets), else ``None``."""
    value = os.environ.get("ZOO_DATA_DIR")
    return Path(value).resolve() if value and Path(value).is_dir() else None


def subprocess_env(env: dict | None) -> dict:
    """This process's environment for a child run from any folder: warnings off, ``ZOO_DATA_DIR`` made absolute."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    real = real_data_dir()
    if real is not None:
        full_env["ZOO_DATA_DIR"] = str(real)
    return {**full_env, **(env or {})}


def run_zoo(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m zoo <args>`` in a subprocess and return the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], cwd=cwd or REPO, env=subprocess_env(env), capture_output=True, text=True,
        timeout=timeout,
    )


def run_script(module: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m scripts.<module> <args>`` from the repository root (how the scripts are documented to run)."""
    return subprocess.run(
        [sys.executable, "-m", f"scripts.{module}", *args], cwd=REPO, env=subprocess_env(env), capture_output=True, text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc``, after asserting that it exited with 0 (the message shows the end of its stdout and stderr)."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    )
    return proc
