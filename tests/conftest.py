"""Shared fixtures: tiny datasets written in the real on-disk formats, and the real-data switch.

Real-data tests carry ``@pytest.mark.realdata``; they run when ``ZOO_DATA_DIR`` points at a directory holding
the real files (CI sets it to ``../shared/data``) and are skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with tiny synthetic MNIST and FashionMNIST files in torchvision's layout."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_family(root, "MNIST")
    write_mnist_family(root, "FashionMNIST")
    return root


def real_data_dir() -> Path | None:
    value = os.environ.get("ZOO_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture
def real_data() -> Path:
    """The real data directory; skips the test when ``ZOO_DATA_DIR`` is not set to an existing directory."""
    path = real_data_dir()
    if path is None:
        pytest.skip("set ZOO_DATA_DIR to the real datasets (../shared/data) to run real-data tests")
    return path


def run_zoo(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m zoo <args>`` in a subprocess and return the completed process (text output)."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc``, after asserting that it exited with 0 (the message shows the end of its stdout and stderr)."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    )
    return proc


def untrained_model_of(entry: str):
    """The model an entry's config describes, built untrained (class imported the way `zoo.load` does)."""
    from zoo import registry
    from zoo.hub import import_trusted
    from zoo.models.base import ZooModule

    model_section = registry.get(entry).config["model"]
    return import_trusted(model_section["class_path"], ZooModule)(**model_section["init_args"])


def write_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """Write ``<root>/cifar-10-batches-py`` in the real pickled format (protocol 2 dicts, uint8 (N, 3072) rows of
    R, G, B planes) with ``per_batch`` images in each of data_batch_1..5 and test_batch. Class ``k`` images are
    brighter in channel ``k % 3`` so a small net can learn them."""
    import pickle

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


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a tiny CIFAR-10 (100 training, 20 test images) in torchvision's layout."""
    return write_cifar10(tmp_path_factory.mktemp("cifar"))
