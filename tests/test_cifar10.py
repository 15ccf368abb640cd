"""CIFAR10DataModule: the real pickled format, the seeded split, batch-wise augmentation, clear errors."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch

from datamodules import CIFAR10DataModule, CorruptDatasetError, DatasetNotFoundError
from datamodules.cifar10 import CIFAR10_MEAN, CIFAR10_STD, LocalCIFAR10, flip_where, random_crop
from tests.helpers import write_cifar10


def test_reads_the_pickled_batches_with_torchvisions_reader(cifar_root):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 20, 20)
    reference = LocalCIFAR10(str(cifar_root), train=False)
    assert torch.equal(dm.test_set.images, torch.from_numpy(reference.data).permute(0, 3, 1, 2))
    assert dm.test_set.labels.tolist() == reference.targets and dm.classes[3] == "cat"


def test_split_is_seeded_and_disjoint(cifar_root):
    def rows(seed: int) -> set[bytes]:
        dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, seed=seed)
        dm.setup("fit")
        return {img.numpy().tobytes() for img in dm.val_set.images}, {img.numpy().tobytes() for img in dm.train_set.images}

    val0, train0 = rows(0)
    assert rows(0)[0] == val0 and rows(1)[0] != val0
    assert not val0 & train0


def test_loader_yields_whole_batches_and_eval_batches_are_normalized(cifar_root):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, batch_size=16, augment="none")
    dm.setup("fit")
    images, labels, indices = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (16, 3, 32, 32) and len(labels) == len(indices) == 16
    assert torch.equal(images, dm.train_set.images[indices])
    x, y = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(x, (dm.val_set.images[:16].float() / 255 - mean) / std)
    assert y.dtype == torch.long


def test_book_augmentation_uses_the_books_normalization(cifar_root):
    assert CIFAR10DataModule(augment="book").normalization == ((0.5,) * 3, (0.5,) * 3)
    assert CIFAR10DataModule(augment="book", normalize="cifar10").normalization == (CIFAR10_MEAN, CIFAR10_STD)
    with pytest.raises(ValueError, match="augment must be"):
        CIFAR10DataModule(augment="autoaugment")


@pytest.mark.parametrize("off", ["none", False])
def test_normalize_none_keeps_the_pixels_in_0_1_that_generative_models_read(cifar_root, off):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, batch_size=16, normalize=off)
    dm.setup("fit")
    x, _ = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert 0 <= x.min() and x.max() <= 1
    x, _ = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert torch.equal(x, dm.val_set.images[:16].float() / 255)
    assert dm.input_spec()["mean"] is None and dm.input_spec()["std"] is None
    with pytest.raises(ValueError, match="normalize must be .*'none'"):
        CIFAR10DataModule(normalize="unit")


@pytest.mark.parametrize("augment", ["book", "standard", "airbench"])
def test_augmented_batches_are_crops_and_flips_of_the_images(cifar_root, augment):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, batch_size=32, augment=augment, normalize="cifar10")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    x, _ = dm.on_after_batch_transfer(batch, 0)
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32
    raw = batch[0].float() / 255
    again, _ = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(x, again), "the draws are a function of (seed, epoch, step)"
    assert not torch.allclose(x, dm.normalize(raw)), "training batches are augmented"
    if augment == "airbench":  # every output is a 2-pixel translation of the image or of its mirror image
        padded = torch.nn.functional.pad(raw, (2, 2, 2, 2), mode="reflect")
        out = x * torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) + torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        for i in range(4):
            windows = [padded[i, :, r : r + 32, c : c + 32] for r in range(5) for c in range(5)]
            windows += [w.flip(-1) for w in windows]
            assert min(float((w - out[i]).abs().max()) for w in windows) < 1e-5


def test_alternating_flip_inverts_each_images_flip_every_other_epoch(cifar_root):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, augment="airbench")
    dm.setup("fit")
    images, indices = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8)
    even, odd, next_even = (dm.augment(images, indices, epoch, torch.Generator().manual_seed(0)) for epoch in (0, 1, 2))
    assert torch.equal(odd, even.flip(-1)), "the same crops, each image mirrored against the epoch before"
    assert torch.equal(next_even, even)
    assert 0 < int(dm._flip_bits.sum()) < len(dm._flip_bits), "the epoch-0 flips are random per image"


def test_random_crop_and_flip_where():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    crops = random_crop(images, 4, torch.Generator().manual_seed(0))
    for i in range(2):
        assert any(torch.equal(crops[i], images[i, :, r : r + 4, c : c + 4]) for r in range(3) for c in range(3))
    flipped = flip_where(images, torch.tensor([True, False]))
    assert torch.equal(flipped[0], images[0].flip(-1)) and torch.equal(flipped[1], images[1])


def test_missing_files_name_the_directory_the_files_and_the_fix(tmp_path):
    dm = CIFAR10DataModule(root=str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1   (missing)" in message
    assert "pass download=True (needs internet)" in message


def test_a_validation_split_larger_than_the_data_is_refused(cifar_root):
    with pytest.raises(ValueError, match="val_size=5000 leaves no training images: the training files hold 100"):
        CIFAR10DataModule(root=str(cifar_root)).setup("fit")


def test_a_damaged_batch_file_is_named(tmp_path, cifar_root):
    root = tmp_path / "damaged"
    shutil.copytree(cifar_root, root)
    path = root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])  # cut short, as an interrupted copy
    with pytest.raises(CorruptDatasetError, match="data_batch_3.*truncated or damaged"):
        CIFAR10DataModule(root=str(root), val_size=20).setup("fit")
    with open(path, "wb") as f:
        pickle.dump({"data": [[1, 2, 3]], "labels": [0]}, f, protocol=2)
    with pytest.raises(CorruptDatasetError, match="data_batch_3 does not hold CIFAR-10 images"):
        CIFAR10DataModule(root=str(root), val_size=20).setup("fit")


def test_fixture_writer_matches_the_real_layout(tmp_path):
    write_cifar10(tmp_path, per_batch=3)
    names = sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir())
    assert names == ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                     "test_batch"]


@pytest.mark.realdata
def test_real_cifar10_split_sizes_and_statistics(real_data):
    if not (real_data / "cifar-10-batches-py" / "test_batch").exists():
        pytest.skip("no CIFAR-10 under ZOO_DATA_DIR")
    dm = CIFAR10DataModule(root=str(real_data))
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (45000, 5000, 10000)
    assert torch.bincount(dm.test_set.labels).tolist() == [1000] * 10
    everything = torch.cat([dm.train_set.images, dm.val_set.images]).float() / 255
    assert torch.allclose(everything.mean((0, 2, 3)), torch.tensor(CIFAR10_MEAN), atol=1e-3)
    assert torch.allclose(everything.std((0, 2, 3)), torch.tensor(CIFAR10_STD), atol=1e-3)
