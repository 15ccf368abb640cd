"""Fixtures and hooks only (what they are built from lives in :mod:`tests.helpers`): tiny datasets written in the
real on-disk formats, and the real-data switch.

Real-data tests carry ``@pytest.mark.realdata``; they run when ``ZOO_DATA_DIR`` points at a directory holding
the real files (CI sets it to ``../shared/data``) and are skipped otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import real_data_dir, write_cifar10, write_mnist_family


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n auto``: one worker per core) each worker, and every ``zoo`` process it starts,
    computes on one thread unless ``OMP_NUM_THREADS`` says otherwise: N workers each spinning N OpenMP threads on N
    cores run slower than one worker. Set before any test module imports torch, which reads it once."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with tiny synthetic MNIST and FashionMNIST files in torchvision's layout."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_family(root, "MNIST")
    write_mnist_family(root, "FashionMNIST")
    return root


@pytest.fixture
def real_data() -> Path:
    """The real data directory; skips the test when ``ZOO_DATA_DIR`` is not set to an existing directory."""
    path = real_data_dir()
    if path is None:
        pytest.skip("set ZOO_DATA_DIR to a folder holding the real datasets to run real-data tests")
    return path


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a tiny CIFAR-10 (100 training, 20 test images) in torchvision's layout."""
    return write_cifar10(tmp_path_factory.mktemp("cifar"))
