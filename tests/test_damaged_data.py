"""Truncated and damaged dataset files give a zoo error naming the file and the fix (issue 21 item 6).

Every fixture is written here in the real on-disk format (IDX, CIFAR-10 pickles, JPEG), then damaged the way
interrupted copies and downloads damage files.
"""

from __future__ import annotations

import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, write_file

from datamodules import (
    CIFAR10DataModule,
    CorruptDatasetError,
    DamagedImageError,
    DatasetNotFoundError,
    DogsVsCatsDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
)
from datamodules.mnist import idx_file_problem
from tests.helpers import run_zoo, write_cifar10
from zoo.errors import is_deliberate


def test_the_data_errors_keep_their_builtin_types():
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(CorruptDatasetError, RuntimeError)
    assert issubclass(DamagedImageError, CorruptDatasetError) and issubclass(DamagedImageError, ValueError)


# ---------------------------------------------------------------------------------------------------- MNIST IDX


@pytest.fixture
def mnist_copy(tmp_path, mnist_root):
    root = tmp_path / "data"
    shutil.copytree(mnist_root / "MNIST", root / "MNIST")
    shutil.copytree(mnist_root / "FashionMNIST", root / "FashionMNIST")
    return root


IMAGES_BYTES = 16 + 200 * 28 * 28  # the fixture's training images file: header + 200 images


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda data: data[: len(data) // 2], f"cut short: 78,408 bytes where its header .* needs {IMAGES_BYTES:,}"),
        (lambda data: data[:10], "10 bytes long, shorter than its own header"),
        (lambda data: b"", "does not start like an IDX file"),
        (lambda data: data + b"\0\0", f"trailing bytes: {IMAGES_BYTES + 2:,} bytes"),
        (lambda data: gzip.compress(data), "gzip-compressed.*uncompress it"),
    ],
    ids=["half", "header", "empty", "trailing", "gzip"],
)
def test_a_damaged_mnist_images_file_is_named_with_the_fix(mnist_copy, damage, says):
    path = mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptDatasetError, match=f"{path} is damaged: it .*{says}") as caught:
        MNISTDataModule(root=str(mnist_copy)).setup("fit")
    assert "download=True" in str(caught.value)
    MNISTDataModule(root=str(mnist_copy)).setup("test")  # the test files are intact: that split still loads


def test_a_damaged_test_labels_file_is_named(mnist_copy):
    path = mnist_copy / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-7])  # an interrupted copy
    with pytest.raises(CorruptDatasetError, match=r"t10k-labels-idx1-ubyte is damaged: it is cut short: 101 bytes"):
        FashionMNISTDataModule(root=str(mnist_copy)).setup("test")


def test_a_labels_file_of_another_length_than_the_images_is_named(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels = path.read_bytes()[8:]
    path.write_bytes((2049).to_bytes(4, "big") + (150).to_bytes(4, "big") + labels[:150])  # well-formed, 150 labels
    assert idx_file_problem(path) is None
    with pytest.raises(CorruptDatasetError, match="train-labels-idx1-ubyte is damaged: it holds 150 labels for the "
                                                  "200 images of .*train-images-idx3-ubyte"):
        MNISTDataModule(root=str(mnist_copy)).setup("fit")


def test_intact_idx_files_have_no_problem(mnist_root):
    for path in (mnist_root / "MNIST" / "raw").iterdir():
        assert idx_file_problem(path) is None, path


def test_a_missing_file_is_still_reported_as_missing(mnist_copy):
    (mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte   \\(missing\\)"):
        MNISTDataModule(root=str(mnist_copy)).setup("fit")


# ---------------------------------------------------------------------------------------------------- CIFAR-10


@pytest.fixture
def cifar_copy(tmp_path):
    return write_cifar10(tmp_path / "cifar", per_batch=4)


def load_cifar(root):
    CIFAR10DataModule(root=str(root), val_size=4).setup("fit")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (pickle.dumps([1, 2, 3], protocol=2), "expected a dict with 'data' and 'labels', got list"),
        (pickle.dumps({"data": np.full((2, 3072), 0.5), "labels": [0, 1]}, protocol=2), "expected uint8 pixels"),
        (b"\x80\x02cno_such_module\nthing\nq\x00.", "not a CIFAR-10 batch file .*global no_such_module.thing"),
        (b"", "not a readable CIFAR-10 batch file \\(EOFError"),
    ],
    ids=["not-a-dict", "float-pixels", "unknown-global", "empty"],
)
def test_a_damaged_cifar_batch_is_named(cifar_copy, content, says):
    path = cifar_copy / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(content)
    with pytest.raises(CorruptDatasetError, match=f"data_batch_2 .*{says}") as caught:
        load_cifar(cifar_copy)
    assert "download=True" in str(caught.value)


def test_damaged_cifar_metadata_is_named(cifar_copy):
    path = cifar_copy / "cifar-10-batches-py" / "batches.meta"
    path.write_bytes(pickle.dumps({"num_vis": 3072}, protocol=2))
    with pytest.raises(CorruptDatasetError, match="batches.meta does not hold the CIFAR-10 metadata.*label_names"):
        load_cifar(cifar_copy)
    path.write_bytes(path.read_bytes()[:9])
    with pytest.raises(CorruptDatasetError, match="batches.meta is not a readable CIFAR-10 batch file"):
        load_cifar(cifar_copy)


# ---------------------------------------------------------------------------------------------------- JPEG


def test_an_unreadable_jpeg_is_named_without_torchvisions_source_lines(tmp_path):
    for label, name in enumerate(("cat", "dog")):
        for i in range(3):
            image = torch.full((3, 40, 48), 60 + 100 * label, dtype=torch.uint8)
            path = tmp_path / ("val" if i == 2 else "train") / name / f"{name}.{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_file(str(path), encode_jpeg(image))
    damaged = tmp_path / "train" / "cat" / "cat.1.jpg"
    damaged.write_bytes(damaged.read_bytes()[:200])
    datamodule = DogsVsCatsDataModule(root=str(tmp_path), image_size=32, batch_size=4)
    with pytest.raises(DamagedImageError, match=r"cannot decode the image .*cat\.1\.jpg \(.+\): .*replace it") as err:
        list(datamodule.train_dataloader())
    assert ".cpp" not in str(err.value) and is_deliberate(err.value)  # one message from the zoo command


def test_zoo_fit_reports_a_damaged_idx_file_in_one_message_with_status_2(mnist_copy, tmp_path):
    path = mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    proc = run_zoo("fit", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root", str(mnist_copy),
                   "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"zoo fit: error: {path} is damaged" in proc.stderr
