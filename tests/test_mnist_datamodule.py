"""MNIST-family datamodules: files, splits, normalization, the two pixel-noise protocols, missing data."""

from __future__ import annotations

import pytest
import torch

from datamodules import (
    DatasetNotFoundError,
    EmbeddedMNISTDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    add_pixel_noise,
)
from datamodules._paths import resolve_root


def make(root, cls=MNISTDataModule, **kwargs):
    dm = cls(root=str(root), **kwargs)
    dm.setup()
    return dm


def test_shapes_split_and_batches(mnist_root):
    dm = make(mnist_root, batch_size=16)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (180, 20, 100)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (16,) and y.dtype == torch.long
    assert dm.describe()["train_file_size"] == 200


def test_split_depends_only_on_seed(mnist_root):
    a, b, c = make(mnist_root, seed=1), make(mnist_root, seed=1), make(mnist_root, seed=2)
    assert torch.equal(a.val_set.images, b.val_set.images)
    assert not torch.equal(a.val_set.images, c.val_set.images)
    # train and val never share an image position of the file
    assert len(a.train_set) + len(a.val_set) == 200


def test_normalization_uses_dataset_statistics(mnist_root):
    raw = make(mnist_root, normalize=False).test_set.images
    mnist = make(mnist_root).test_set.images
    fashion = make(mnist_root, FashionMNISTDataModule).test_set.images
    assert torch.allclose(mnist, (raw - 0.1307) / 0.3081, atol=1e-6)
    assert torch.allclose(fashion, (raw - 0.2860) / 0.3530, atol=1e-6)


def test_add_pixel_noise_changes_exactly_k_distinct_pixels():
    images = torch.zeros(5, 1, 28, 28)
    noisy = add_pixel_noise(images, 0.25, 0.747, torch.Generator().manual_seed(0))
    changed = (noisy != images).flatten(1).sum(1)
    assert changed.tolist() == [int(784 * 0.25)] * 5
    assert torch.all(noisy[noisy != 0] == torch.tensor(0.747))
    assert torch.equal(images, torch.zeros(5, 1, 28, 28)), "input must not be modified"
    with pytest.raises(ValueError, match="eta"):
        add_pixel_noise(images, 1.5, 0.7, torch.Generator())


@pytest.mark.parametrize("eta", [0.05, 0.3, 0.5])
def test_paper_protocol_sets_value_before_normalize(mnist_root, eta):
    clean = make(mnist_root, normalize=False).test_set.images
    noisy = make(mnist_root, normalize=False, noise=eta).test_set.images
    value = 0.1307 + 2 * 0.3081
    differs = noisy != clean
    # pixels that already had the value do not show as changed, so count the positions holding it
    holds = (noisy == torch.tensor(value)).flatten(1).sum(1)
    assert torch.all(holds >= int(784 * eta)) and torch.all(differs.flatten(1).sum(1) <= int(784 * eta))
    normalized = make(mnist_root, noise=eta).test_set.images
    assert torch.allclose(normalized, (noisy - 0.1307) / 0.3081, atol=1e-6)


def test_blog_protocol_sets_value_after_normalize(mnist_root):
    eta = 0.4
    normalized = make(mnist_root, noise=eta, noise_protocol="blog").test_set.images
    clean = make(mnist_root).test_set.images
    value = torch.tensor(0.1307 + 2 * 0.3081)
    assert torch.all((normalized == value).flatten(1).sum(1) >= int(784 * eta))
    assert torch.all((normalized != clean).flatten(1).sum(1) == int(784 * eta))


def test_noise_is_deterministic_and_on_test_split_only(mnist_root):
    a = make(mnist_root, noise=0.2, seed=3)
    b = make(mnist_root, noise=0.2, seed=3)
    c = make(mnist_root, noise=0.2, seed=4)
    clean = make(mnist_root, seed=3)
    assert torch.equal(a.test_set.images, b.test_set.images)
    assert not torch.equal(a.test_set.images, c.test_set.images)
    assert torch.equal(a.train_set.images, clean.train_set.images)
    assert torch.equal(a.val_set.images, clean.val_set.images)
    assert not torch.equal(a.test_set.images, clean.test_set.images)


def test_first_epoch_batch_size(mnist_root):
    dm = make(mnist_root, batch_size=32, first_epoch_batch_size=4)
    assert dm.train_dataloader().batch_sampler.batch_size == 4  # no trainer yet: epoch 0


def test_first_epoch_in_file_order(mnist_root):
    """``first_epoch_shuffle=False``: epoch 0 visits the training images in the file's order, later epochs shuffle."""
    file_images = MNISTDataModule(root=str(mnist_root))._load(train=True)[0]
    for val_fraction in (0.0, 0.1):
        dm = make(mnist_root, batch_size=8, val_fraction=val_fraction, normalize=False, first_epoch_shuffle=False)
        kept = torch.sort(dm.train_file_index).values  # the training part's file indices, in file order
        seen = torch.cat([images for images, _ in dm.train_dataloader()])
        assert torch.equal(seen, file_images[kept])
        dm.trainer = type("AtEpoch", (), {"current_epoch": 1})()
        later = torch.cat([images for images, _ in dm.train_dataloader()])
        assert later.shape == seen.shape and not torch.equal(later, seen)
    dm = make(mnist_root, batch_size=8, val_fraction=0.0, first_epoch_shuffle=False)
    interrupted = iter(loader := dm.train_dataloader())
    next(interrupted), next(interrupted)
    resumed = dm.train_dataloader()
    resumed.load_state_dict(loader.state_dict())  # what a mid-epoch checkpoint restores
    assert torch.equal(next(iter(resumed))[0], next(interrupted)[0])
    shuffled = make(mnist_root, batch_size=8, val_fraction=0.0, normalize=False)
    assert not torch.equal(torch.cat([images for images, _ in shuffled.train_dataloader()]), file_images)


@pytest.mark.parametrize("options", [{"first_epoch_batch_size": 4}, {"first_epoch_shuffle": False}])
def test_first_epoch_options_need_the_loader_rebuilt(mnist_root, options):
    """Without ``reload_dataloaders_every_n_epochs=1`` every epoch would silently run as epoch 0."""
    dm = make(mnist_root, **options)
    dm.trainer = type("Trainer", (), {"current_epoch": 0, "reload_dataloaders_every_n_epochs": 0})()
    with pytest.raises(ValueError, match=r"^first_epoch_\w+=(4|False) changes epoch 0 only.*every 0 epochs "
                                         r"\(0: never\).*pass Trainer\(reload_dataloaders_every_n_epochs=1\)\.$"):
        dm.train_dataloader()
    dm.trainer.reload_dataloaders_every_n_epochs = 1
    assert dm.train_dataloader() is not None


def test_augment_keeps_shape_and_changes_images(mnist_root):
    dm = make(mnist_root, augment=True)
    images = dm.train_set.images[:8]
    x = dm.train_batch_transform(images, torch.Generator().manual_seed(0))
    assert x.shape == images.shape
    assert all(not torch.equal(a, b) for a, b in zip(x, images))  # every image of the batch is moved
    assert torch.equal(x, dm.train_batch_transform(images, torch.Generator().manual_seed(0)))
    assert torch.equal(make(mnist_root).train_batch_transform(images, torch.Generator()), images)  # augment off


def test_missing_files_error_names_directory_files_and_fix(tmp_path):
    dm = MNISTDataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    text = str(info.value)
    assert str((tmp_path / "nowhere" / "MNIST" / "raw").resolve()) in text
    assert "train-images-idx3-ubyte" in text and "t10k-labels-idx1-ubyte" in text
    assert "download" in text and "ZOO_DATA_DIR" in text


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", no_network)
    dm = FashionMNISTDataModule(root=str(tmp_path), download=True)
    with pytest.raises(DatasetNotFoundError, match="FashionMNIST"):
        dm.prepare_data()


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="noise_protocol"):
        MNISTDataModule(noise_protocol="after")
    with pytest.raises(ValueError, match="val_fraction"):
        MNISTDataModule(val_fraction=1.5)


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    assert resolve_root(None) == tmp_path
    assert resolve_root("$ZOO_DATA_DIR/mnist-5k") == tmp_path / "mnist-5k"
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert resolve_root("$ZOO_DATA_DIR/mnist-5k").as_posix() == "data/mnist-5k"


def test_embedded_mnist_mini():
    dm = EmbeddedMNISTDataModule()
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 1000 and len(dm.test_set) == 1000
    assert torch.bincount(torch.cat([dm.train_set.labels, dm.val_set.labels])).tolist() == [100] * 10



def test_embedded_mnist_mini_is_unpacked_once_into_the_cache(monkeypatch, tmp_path):
    """The quick-start's files go to one content-named cache folder that later processes reuse (a killed run
    leaves no temporary copy behind); a damaged cached file is replaced, and an unwritable cache falls back to a
    private temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(EmbeddedMNISTDataModule, "_extracted", None)
    folder = EmbeddedMNISTDataModule().root
    assert folder.parent == tmp_path / "cache" / "lightning-zoo" and folder.name.startswith("mnist-mini-")
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no half-built folder left beside it
    images = folder / "MNIST" / "raw" / "train-images-idx3-ubyte"
    size, stamp = images.stat().st_size, images.stat().st_mtime_ns
    monkeypatch.setattr(EmbeddedMNISTDataModule, "_extracted", None)  # a new process
    assert EmbeddedMNISTDataModule().root == folder and images.stat().st_mtime_ns == stamp  # reused, not rewritten

    images.write_bytes(images.read_bytes()[:1000])  # damaged
    monkeypatch.setattr(EmbeddedMNISTDataModule, "_extracted", None)
    dm = EmbeddedMNISTDataModule()
    assert dm.root == folder and images.stat().st_size == size
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 1000

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    monkeypatch.setattr(EmbeddedMNISTDataModule, "_extracted", None)
    private = EmbeddedMNISTDataModule().root
    assert private.name.startswith("zoo-mnist-mini-")
    assert (private / "MNIST" / "raw" / images.name).stat().st_size == size

@pytest.mark.realdata
def test_real_files_and_dataset_names(real_data):
    fashion = FashionMNISTDataModule(root=str(real_data))
    fashion.setup()
    assert (len(fashion.train_set), len(fashion.val_set), len(fashion.test_set)) == (54000, 6000, 10000)
    assert fashion.dataset_name == "FashionMNIST"
    small = MNISTDataModule(root=str(real_data / "mnist-5k"))
    small.setup()
    assert (len(small.train_set), len(small.val_set), len(small.test_set)) == (4500, 500, 10000)
    assert small.dataset_name == "MNIST-5k"
