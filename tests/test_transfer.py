"""Textbook ch. 7 transfer learning: the dogs-vs-cats datamodule (both layouts), the three methods, the feature
cache, backbone sources and their errors, the backbone check of ``zoo.load``, and the CLI on JPEG fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.error import URLError

import lightning as L
import pytest
import torch
import torchvision
from torch import nn
from torchvision.io import encode_jpeg, write_file

import zoo
from datamodules import DatasetNotFoundError, DogsVsCatsDataModule, MNISTDataModule
from datamodules import DamagedImageError
from tests.helpers import ok, run_zoo
from zoo import hub, registry
from zoo.export import export
from zoo.hub import entry_normalization
from zoo.layers.backbones import BackboneWeightsError, build_backbone
from zoo.models import LeNet, TransferClassifier

SIZE = 32  # network input side in these tests: small, so the CPU cost is tiny


def photo(label: int, index: int) -> torch.Tensor:
    """A 48x40 uint8 RGB 'photo': cats reddish, dogs bluish, with noise."""
    generator = torch.Generator().manual_seed(1000 * label + index)
    image = torch.randint(0, 80, (3, 40, 48), generator=generator, dtype=torch.uint8)
    image[0 if label == 0 else 2] += 150
    return image


def write_jpeg(path: Path, image: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(str(path), encode_jpeg(image, quality=90))
    return path


def make_folders(root: Path, n_train: int = 6, n_val: int = 3) -> Path:
    """``root/train/{cat,dog}/*.jpg`` and ``root/val/{cat,dog}/*.jpg``, real JPEGs."""
    for label, name in enumerate(("cat", "dog")):
        for i in range(n_train + n_val):
            split = "val" if i >= n_train else "train"
            write_jpeg(root / split / name / f"{name}.{i}.jpg", photo(label, i))
    return root


def make_kaggle(root: Path, n: int = 20) -> Path:
    """Kaggle's flat ``root/train/cat.N.jpg`` and ``root/train/dog.N.jpg``."""
    for label, name in enumerate(("cat", "dog")):
        for i in range(n):
            write_jpeg(root / "train" / f"{name}.{i}.jpg", photo(label, i))
    return root


@pytest.fixture(scope="module")
def folders_root(tmp_path_factory) -> Path:
    return make_folders(tmp_path_factory.mktemp("dogs_vs_cats_folders"))


@pytest.fixture(scope="module")
def kaggle_root(tmp_path_factory) -> Path:
    return make_kaggle(tmp_path_factory.mktemp("dogs_vs_cats_kaggle"))


def datamodule(root: Path, **kwargs) -> DogsVsCatsDataModule:
    return DogsVsCatsDataModule(root=str(root), image_size=SIZE, batch_size=4, **kwargs)


# --- datamodule ------------------------------------------------------------------------------------------------


def test_folder_layout_gives_labelled_normalized_batches(folders_root):
    dm = datamodule(folders_root)
    dm.setup("fit")
    assert dm.resolved_layout() == "folders"
    facts = dm.describe()  # val/ is the held-out test split; validation is a seeded tenth of each training class
    assert (facts["train_size"], facts["val_size"], facts["test_size"]) == (10, 2, 6)
    assert all("/train/" in str(p) for p in dm.splits["val"][0])
    assert not set(dm.splits["val"][0]) & set(dm.splits["train"][0])
    x, y, paths = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, SIZE, SIZE) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() < 0  # normalized with the ImageNet mean/std, not in [0, 1]
    for label, path in zip(y.tolist(), paths):
        assert Path(path).parent.name == ("cat", "dog")[label]
    x_test, _, test_paths = next(iter(dm.test_dataloader()))  # test is the held-out val/ folder
    assert all("/val/" in p for p in test_paths)
    x_again, _, _ = next(iter(dm.test_dataloader()))
    assert torch.equal(x_test, x_again)  # the eval transform is deterministic


def test_kaggle_layout_holds_out_test_then_val_per_class_seeded_without_moving_files(kaggle_root):
    before = sorted(p.name for p in (kaggle_root / "train").iterdir())
    dm = datamodule(kaggle_root, seed=3)
    dm.setup()
    assert dm.resolved_layout() == "kaggle"
    (train_files, train_labels), (val_files, val_labels) = dm.splits["train"], dm.splits["val"]
    test_files, test_labels = dm.splits["test"]
    assert (len(train_files), len(val_files), len(test_files)) == (32, 4, 4)
    assert val_labels.count(0) == 2 and test_labels.count(1) == 2
    assert not (set(train_files) & set(val_files) or set(train_files) & set(test_files)
                or set(val_files) & set(test_files))
    assert {p.name for p in train_files + val_files + test_files} == set(before)
    for path, label in zip(train_files + val_files + test_files, train_labels + val_labels + test_labels):
        assert path.name.startswith(("cat.", "dog.")[label])
    same = datamodule(kaggle_root, seed=3)
    same.setup()
    other = datamodule(kaggle_root, seed=4)
    other.setup()
    assert same.splits["val"] == dm.splits["val"] and other.splits["val"] != dm.splits["val"]
    assert sorted(p.name for p in (kaggle_root / "train").iterdir()) == before


def make_classes(root: Path, classes: dict[str, int], splits=("train",)) -> Path:
    """``root/<split>/<class>/*.jpg`` for each split, with the given number of photos per class."""
    for split in splits:
        for label, (name, count) in enumerate(classes.items()):
            for i in range(count):
                write_jpeg(root / split / name / f"{name}.{split}.{i}.jpg", photo(label % 2, 100 * label + i))
    return root


def test_your_own_class_folders_are_the_classes_and_split_like_the_books(tmp_path):
    flowers = {"daisy": 5, "rose": 5, "tulip": 5}
    only_train = make_classes(tmp_path / "only_train", flowers)
    (only_train / "train" / ".ipynb_checkpoints").mkdir()  # what Jupyter leaves: no class
    dm = datamodule(only_train, val_fraction=0.25, test_fraction=0.2)
    dm.setup()
    assert dm.class_names == ["daisy", "rose", "tulip"] and dm.resolved_layout() == "folders"
    sizes = {split: len(files) for split, (files, _) in dm.splits.items()}
    assert sizes == {"train": 9, "val": 3, "test": 3}  # neither val/ nor test/: both held out, per class
    assert sorted(dm.splits["test"][1]) == [0, 1, 2] and sorted(dm.splits["val"][1]) == [0, 1, 2]
    assert dm.describe()["dataset"] == "3 classes (only_train, folders layout)"
    restored = datamodule(only_train)
    restored.load_state_dict(dm.state_dict())  # what `zoo predict <run>.ckpt` gets without reading the folders
    assert restored.class_names == dm.class_names

    with_test = make_classes(tmp_path / "with_test", flowers, splits=("train", "test"))
    dm = datamodule(with_test, val_fraction=0.25)
    dm.setup()
    assert all("/test/" in str(path) for path in dm.splits["test"][0]) and len(dm.splits["test"][0]) == 15
    assert all("/train/" in str(path) for path in dm.splits["val"][0]) and len(dm.splits["val"][0]) == 3

    extra = make_classes(tmp_path / "with_test", {"lily": 2}, splits=("val",))
    make_classes(extra, flowers, splits=("val",))
    with pytest.raises(ValueError, match=r"val has class folders \['lily'\] that train/ lacks"):
        datamodule(extra).setup()
    lacking = make_classes(tmp_path / "lacking", flowers)
    make_classes(lacking, {"daisy": 2, "rose": 2}, splits=("val",))
    with pytest.raises(DatasetNotFoundError, match="put the val photos of class 'tulip' in val/tulip/"):
        datamodule(lacking).setup()


def test_a_model_with_another_number_of_classes_than_the_folders_is_refused(tmp_path):
    root = make_classes(tmp_path, {"daisy": 3, "rose": 3, "tulip": 3})
    trainer = L.Trainer(fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(ValueError, match=r"has num_classes=2 but the datamodule has 3 classes \(daisy, rose, tulip\); "
                                         r"set num_classes=3$"):
        trainer.fit(transfer(), datamodule=datamodule(root, augment=False))


def test_missing_dataset_names_directory_and_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Dogs vs. Cats not found.*train/cat/\*.jpg.*train/cat.N.jpg"):
        datamodule(tmp_path / "nothing").setup()
    with pytest.raises(DatasetNotFoundError, match="kaggle"):
        datamodule(tmp_path / "nothing", layout="folders").setup()


def test_damaged_jpeg_is_reported_by_name(tmp_path):
    root = make_folders(tmp_path / "data", n_train=2, n_val=1)
    damaged = root / "train" / "dog" / "dog.1.jpg"
    damaged.write_bytes(damaged.read_bytes()[:40])
    dm = datamodule(root)
    with pytest.raises(DamagedImageError, match="dog.1.jpg"):
        list(dm.train_dataloader())


def test_predict_dir_reads_the_users_jpegs(tmp_path, folders_root):
    mine = tmp_path / "mine"
    write_jpeg(mine / "rex.jpg", photo(1, 50))
    write_jpeg(mine / "tom.jpeg", photo(0, 51))
    (mine / "notes.txt").write_text("not a picture")
    x, y, paths = next(iter(datamodule(folders_root, predict_dir=str(mine)).predict_dataloader()))
    assert x.shape == (2, 3, SIZE, SIZE) and y.tolist() == [-1, -1]
    assert [Path(p).name for p in paths] == ["rex.jpg", "tom.jpeg"]
    with pytest.raises(DatasetNotFoundError, match="How to fix: point predict_dir at a folder holding") as caught:
        datamodule(folders_root, predict_dir=str(tmp_path / "empty")).predict_dataloader()
    assert "`root`" not in str(caught.value)  # the folder is predict_dir's, not the datamodule's root


def test_keep_images_decodes_each_file_once(folders_root, monkeypatch):
    import datamodules.dogs_vs_cats as module

    dm = datamodule(folders_root, augment=False, keep_images=True)
    first = torch.cat([x for x, _, _ in dm.val_dataloader()])
    calls = []
    monkeypatch.setattr(module, "read_image", lambda path, channels: calls.append(path))
    second = torch.cat([x for x, _, _ in dm.val_dataloader()])
    assert not calls and torch.equal(first, second)


# --- the three methods -----------------------------------------------------------------------------------------


def transfer(method: str = "frozen", backbones=("mobilenet_v2",), weights=(None,), **kwargs) -> TransferClassifier:
    torch.manual_seed(0)
    return TransferClassifier(method=method, backbones=list(backbones), backbone_weights=list(weights),
                              image_size=SIZE, **kwargs)


def test_frozen_method_has_the_books_head_and_trains_only_it():
    model = transfer("frozen")
    linears = [m for m in model.network if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1280, 256), (256, 256), (256, 2)]
    assert [m.p for m in model.network if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {"network"}
    assert not any(key.startswith("backbone") for key in model.state_dict())
    backbone = model.backbones[0]
    before = [p.clone() for p in backbone.parameters()]
    optimizer = model.configure_optimizers()
    model.train()
    assert not backbone.training  # a frozen backbone never leaves eval mode
    x, y = torch.randn(4, 3, SIZE, SIZE), torch.tensor([0, 1, 0, 1])
    logits = model(x)
    assert logits.shape == (4, 2)
    nn.functional.cross_entropy(logits, y).backward()
    optimizer.step()
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, backbone.parameters()))
    assert all(p.grad is not None for p in model.network.parameters())


def test_finetune_method_trains_the_backbone_with_batchnorm_in_eval_mode():
    model = transfer("finetune", head_hidden=[])
    assert [(m.in_features, m.out_features) for m in model.network if isinstance(m, nn.Linear)] == [(1280, 2)]
    model.train()
    batchnorms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batchnorms and not any(m.training for m in batchnorms)
    running_mean = batchnorms[0].running_mean.clone()
    optimizer = model.configure_optimizers()
    conv = model.backbone.net.features[0][0].weight
    before = conv.detach().clone()
    nn.functional.cross_entropy(model(torch.randn(4, 3, SIZE, SIZE)), torch.tensor([0, 1, 0, 1])).backward()
    optimizer.step()
    assert conv.grad is not None and not torch.equal(before, conv.detach())
    assert torch.equal(running_mean, batchnorms[0].running_mean)  # statistics kept
    assert any(key.startswith("backbone.") for key in model.state_dict())
    trained_bn = transfer("finetune", head_hidden=[], backbone_batchnorm="train").train()
    assert all(m.training for m in trained_bn.modules() if isinstance(m, nn.BatchNorm2d))


def test_concat_method_joins_the_features_of_several_frozen_backbones():
    model = transfer("concat", backbones=("mobilenet_v2", "resnet18"), weights=(None, None))
    assert model.network[0].in_features == 1280 + 512
    x = torch.randn(3, 3, SIZE, SIZE)
    features = model.features(x)
    assert features.shape == (3, 1792)
    assert torch.allclose(features[:, :1280], model.backbones[0](x)) and torch.allclose(
        features[:, 1280:], model.backbones[1](x))
    assert model(x).shape == (3, 2)
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {"network"}


def test_method_and_backbone_count_must_agree():
    with pytest.raises(ValueError, match="takes several backbones"):
        transfer("concat")
    with pytest.raises(ValueError, match="one weights entry"):
        transfer("frozen", weights=(None, None))
    with pytest.raises(ValueError, match="expects input of shape"):
        transfer("frozen")(torch.randn(2, 3, SIZE + 1, SIZE))


# --- feature cache ---------------------------------------------------------------------------------------------


def test_cached_features_equal_recomputed_ones_and_survive_on_disk(tmp_path):
    model = transfer("frozen", feature_cache_dir=str(tmp_path / "cache"))
    x = torch.randn(5, 3, SIZE, SIZE)
    paths = [f"img{i}.jpg" for i in range(5)]
    first = model.features(x, paths)
    assert torch.allclose(first, model.backbones[0](x), atol=1e-6)
    # a second call is served from the cache: the images are not looked at
    assert torch.equal(model.features(torch.zeros_like(x), paths), first)
    model.save_feature_cache()
    (cache_file,) = (tmp_path / "cache").iterdir()
    assert cache_file.name == f"mobilenet_v2-random-{SIZE}px.pt"
    reloaded = transfer("frozen", feature_cache_dir=str(tmp_path / "cache"))
    assert torch.equal(reloaded.features(torch.zeros_like(x), paths), first)
    assert torch.allclose(reloaded.features(x), first, atol=1e-6)  # without paths: recomputed


def test_a_damaged_feature_cache_is_computed_again_with_a_warning_and_rewritten(tmp_path):
    model = transfer("frozen", feature_cache_dir=str(tmp_path / "cache"))
    x = torch.randn(3, 3, SIZE, SIZE)
    paths = [f"img{i}.jpg" for i in range(3)]
    first = model.features(x, paths)
    model.save_feature_cache()
    (cache_file,) = (tmp_path / "cache").iterdir()
    cache_file.write_bytes(cache_file.read_bytes()[:200])  # a disk that filled up, a copy cut short
    damaged = transfer("frozen", feature_cache_dir=str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match=rf"feature cache {re.escape(str(cache_file))} cannot be read .*computed "
                                         r"again .*rewritten"):
        assert torch.allclose(damaged.features(x, paths), first, atol=1e-6)
    damaged.save_feature_cache()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache_file.name]  # no partial file left
    assert torch.equal(transfer("frozen", feature_cache_dir=str(tmp_path / "cache")).features(
        torch.zeros_like(x), paths), damaged.features(x, paths))  # the rewritten cache serves them again


def test_a_root_with_one_class_folder_lists_that_folder_as_present(tmp_path):
    """The listing marks what is missing: the cat photos are there, the dog photos are not (before, a wildcard name
    was looked up literally, so every folder read as missing)."""
    write_jpeg(tmp_path / "train" / "cat" / "tom.jpg", photo(0, 0))
    with pytest.raises(DatasetNotFoundError) as caught:
        datamodule(tmp_path).setup()
    assert "  - train/cat/*.jpg\n" in str(caught.value) and "  - train/dog/*.jpg   (missing)" in str(caught.value)


def test_without_predict_dir_the_test_split_is_predicted_as_documented(folders_root):
    dm = datamodule(folders_root)
    assert dm.predict_dataloader().dataset is dm.dataset("test")
    assert "predict_dir: a folder of photos to classify with ``zoo predict`` (default: the test split)" in (
        DogsVsCatsDataModule.__doc__)


def test_frozen_training_refuses_augmented_images(folders_root, tmp_path):
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    with pytest.raises(ValueError, match=r"must not be augmented: set DogsVsCatsDataModule\(augment=False\)$"):
        trainer.fit(transfer("frozen"), datamodule=datamodule(folders_root, augment=True))


# --- backbone sources ------------------------------------------------------------------------------------------


def test_offline_torchvision_weights_name_error_names_file_and_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(BackboneWeightsError, match=rf"resnet18-f37072fd\.pth.*{checkpoints}"):
        build_backbone("resnet18", "IMAGENET1K_V1", (0.5,) * 3, (0.5,) * 3, trainable=False)


def test_local_state_dict_and_torchscript_backbones(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2().eval()
    torch.save(reference.state_dict(), tmp_path / "mnv2.pth")
    model = transfer("frozen", weights=(str(tmp_path / "mnv2.pth"),))
    x = torch.randn(2, 3, SIZE, SIZE)
    expected = reference.features(x).mean((2, 3))
    assert torch.allclose(model.features(x), expected, atol=1e-5)
    assert model.external_weight_files() == [str(tmp_path / "mnv2.pth")]
    torch.jit.trace(reference, torch.randn(1, 3, SIZE, SIZE)).save(str(tmp_path / "mnv2_script.pt"))
    scripted = transfer("frozen", weights=(str(tmp_path / "mnv2_script.pt"),))
    assert scripted.network[0].in_features == 1000  # a TorchScript file gives its outputs
    assert torch.allclose(scripted.features(x), reference(x), atol=1e-4)
    with pytest.raises(ValueError, match="TorchScript file"):
        transfer("finetune", weights=(str(tmp_path / "mnv2_script.pt"),))
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(BackboneWeightsError, match="does not fit torchvision's mobilenet_v2"):
        transfer("frozen", weights=(str(tmp_path / "resnet.pth"),))
    with pytest.raises(BackboneWeightsError, match="not found"):
        transfer("frozen", weights=(str(tmp_path / "absent.pth"),))
    (tmp_path / "damaged.pth").write_bytes((tmp_path / "mnv2.pth").read_bytes()[:1000])
    with pytest.raises(BackboneWeightsError, match=r"cannot read the backbone weights file .*damaged\.pth .*damaged, "
                                                   r"truncated .*a state dict"):
        transfer("frozen", weights=(str(tmp_path / "damaged.pth"),))
    torch.save({"weights": reference.state_dict(), "model": reference}, tmp_path / "pickled_model.pth")
    with pytest.raises(BackboneWeightsError, match=r"pickled_model\.pth .*it pickles .*torchvision\.models\."
                                                   r"mobilenetv2\.MobileNetV2, .*weights-only loader"):
        transfer("frozen", weights=(str(tmp_path / "pickled_model.pth"),))


@pytest.fixture
def shipped_lenet(mnist_root, tmp_path, monkeypatch):
    """Entry ``lenet_mnist5k`` trained for a few steps on fixture digits and shipped into a temporary dir."""
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "shipped"))
    L.seed_everything(0)
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1)
    trainer.fit(LeNet(), datamodule=MNISTDataModule(root=str(mnist_root), batch_size=32))
    trainer.save_checkpoint(tmp_path / "lenet.ckpt")
    export("lenet_mnist5k", str(tmp_path / "lenet.ckpt"), fit_command="zoo fit -c lenet_mnist5k")
    return zoo.load("lenet_mnist5k")


def test_zoo_entry_backbone_gives_its_penultimate_features(shipped_lenet):
    model = transfer("concat", backbones=("mobilenet_v2", "zoo:lenet_mnist5k"), weights=(None, None))
    assert model.network[0].in_features == 1280 + 84  # LeNet's 84-unit layer before its classifier
    x = torch.randn(2, 3, SIZE, SIZE)
    lenet_part = model.features(x)[:, 1280:]
    # by hand: back to [0, 1], LeNet's 28x28 grey input with MNIST's normalization, all but the last layer
    mean, std = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), torch.tensor((0.229, 0.224, 0.225)).view(
        1, 3, 1, 1)
    grey = torchvision.transforms.v2.functional.rgb_to_grayscale(nn.functional.interpolate(
        x * std + mean, size=(28, 28), mode="bilinear", antialias=True, align_corners=False))
    expected = shipped_lenet.network[:-1]((grey - MNISTDataModule.mean) / MNISTDataModule.std)
    assert torch.allclose(lenet_part, expected, atol=1e-5)
    # an entry whose datamodule class names no mean/std: the manifest's normalize facts (the CIFAR-10 datamodule's)
    manifest_path = registry.get("lenet_mnist5k").manifest_path
    manifest = json.loads(manifest_path.read_text())
    manifest["datamodule_class"] = "datamodules.dogs_vs_cats.DogsVsCatsDataModule"
    manifest["data"]["normalize"] = {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    manifest_path.write_text(json.dumps(manifest))
    assert entry_normalization("lenet_mnist5k") == ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


# --- shipping: the backbone file check -------------------------------------------------------------------------


def test_shipped_frozen_backbone_travels_in_the_weights(folders_root, tmp_path, monkeypatch):
    """A frozen state-dict backbone is stored beside the head, so the entry loads without the backbone file."""
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "shipped"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "backbone.pth")
    model = transfer("frozen", weights=("$ZOO_DATA_DIR/backbone.pth",))
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1)
    trainer.fit(model, datamodule=datamodule(folders_root, augment=False))
    trainer.save_checkpoint(tmp_path / "head.ckpt")
    manifest = export("transfer_frozen_dogs_vs_cats", str(tmp_path / "head.ckpt"), fit_command="zoo fit -c x")
    assert manifest.backbones_in_weights == [True] and "backbone_files" not in manifest.to_dict()
    assert manifest.file_size > 8_000_000  # MobileNet V2's 2.2 M backbone parameters beside the head
    (tmp_path / "backbone.pth").unlink()
    monkeypatch.delenv("ZOO_DATA_DIR")
    loaded = zoo.load("transfer_frozen_dogs_vs_cats")
    x = torch.randn(2, 3, SIZE, SIZE)
    assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)


# --- the CLI on fixtures ---------------------------------------------------------------------------------------


def cli_overrides(root: Path, tmp_path: Path, weights: str = "[null]") -> list[str]:
    return ["--data.root", str(root), "--data.image_size", str(SIZE), "--model.image_size", str(SIZE),
            "--model.backbone_weights", weights, "--data.batch_size", "4", "--trainer.default_root_dir",
            str(tmp_path), "--trainer.enable_progress_bar", "false", "--trainer.devices", "1"]


@pytest.mark.parametrize("entry", ["transfer_frozen_dogs_vs_cats", "transfer_finetune_dogs_vs_cats",
                                   "transfer_scratch_dogs_vs_cats"])
def test_fit_fast_dev_run_through_the_cli(entry, folders_root, tmp_path):
    args = ["fit", "-c", entry, *cli_overrides(folders_root, tmp_path), "--trainer.fast_dev_run", "2"]
    if entry == "transfer_frozen_dogs_vs_cats":
        args += ["--model.feature_cache_dir", str(tmp_path / "cache")]
    ok(run_zoo(*args, env={"OMP_NUM_THREADS": "1"}))


def test_concat_entry_fits_through_the_cli(folders_root, tmp_path):
    entry = registry.get("transfer_concat_dogs_vs_cats").config["model"]["init_args"]
    weights = "[" + ", ".join("null" for _ in entry["backbones"]) + "]"
    backbones = "[" + ", ".join(b if not b.startswith("zoo:") else "resnet18" for b in entry["backbones"]) + "]"
    args = ["fit", "-c", "transfer_concat_dogs_vs_cats", *cli_overrides(folders_root, tmp_path, weights),
            "--model.backbones", backbones, "--model.feature_cache_dir", str(tmp_path / "cache"),
            "--trainer.fast_dev_run", "2"]
    ok(run_zoo(*args, env={"OMP_NUM_THREADS": "1"}))


def test_predict_prints_class_and_probability_per_file(folders_root, tmp_path):
    common = cli_overrides(folders_root, tmp_path)
    ok(run_zoo("fit", "-c", "transfer_frozen_dogs_vs_cats", *common, "--trainer.max_epochs", "1",
               "--model.feature_cache_dir", str(tmp_path / "cache"), env={"OMP_NUM_THREADS": "1"}))
    (ckpt,) = tmp_path.glob("lightning_logs/version_0/checkpoints/best-*.ckpt")
    mine = tmp_path / "mine"
    write_jpeg(mine / "rex.jpg", photo(1, 60))
    write_jpeg(mine / "tom.jpg", photo(0, 61))
    proc = ok(run_zoo("predict", "-c", "transfer_frozen_dogs_vs_cats", *common, "--ckpt_path", str(ckpt),
                      "--data.predict_dir", str(mine), "--trainer.callbacks+=zoo.writers.ClassProbabilityPrinter",
                      env={"OMP_NUM_THREADS": "1"}))
    lines = [line.split("\t") for line in proc.stdout.splitlines() if line.count("\t") == 2]
    assert [Path(line[0]).name for line in lines] == ["rex.jpg", "tom.jpg"]
    for _, name, probability in lines:
        assert name in ("cat", "dog") and 0.5 <= float(probability) <= 1.0


@pytest.mark.slow
def test_transfer_to_your_own_classes_then_predict_with_the_run(tmp_path):
    """The README's journey for photos of your own classes: a frozen backbone from a weights file, a 3-class
    head, ``zoo predict <run>.ckpt``; the run needs its backbone file, and says so when it is gone."""
    root = make_classes(tmp_path / "flowers", {"daisy": 4, "rose": 4, "tulip": 4})
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "backbone.pth")
    common = cli_overrides(root, tmp_path, weights=f"[{tmp_path / 'backbone.pth'}]")
    ok(run_zoo("fit", "-c", "transfer_frozen_dogs_vs_cats", *common, "--model.num_classes", "3", "--data.augment",
               "false", "--trainer.max_epochs", "1", "--model.feature_cache_dir", str(tmp_path / "cache"),
               env={"OMP_NUM_THREADS": "1"}))
    (ckpt,) = tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    mine = tmp_path / "mine"
    write_jpeg(mine / "a.jpg", photo(0, 7))
    predicted = ok(run_zoo("predict", str(ckpt), str(mine), "--topk", "3")).stdout.split("\t")
    assert sorted(predicted[1::2]) == ["daisy", "rose", "tulip"]
    (tmp_path / "backbone.pth").unlink()
    gone = run_zoo("predict", str(ckpt), str(mine))
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert f"does not rebuild zoo.models.TransferClassifier: backbone weights file {tmp_path / 'backbone.pth'}" \
        f" (weights '{tmp_path / 'backbone.pth'}') not found" in gone.stderr


# --- real data -------------------------------------------------------------------------------------------------

TRANSFER_SHIPPED = [name for name, entry in registry.entries().items()
                    if name.startswith("transfer_") and entry.manifest_path.exists()]


@pytest.mark.realdata
def test_real_dogs_vs_cats_3k_layout(real_data):
    dm = DogsVsCatsDataModule(root=str(real_data / "dogs-vs-cats-3k"), image_size=SIZE)
    facts = dm.describe()
    assert (facts["train_size"], facts["val_size"], facts["test_size"]) == (2430, 270, 300)


@pytest.mark.realdata
@pytest.mark.parametrize("entry", TRANSFER_SHIPPED)
def test_shipped_transfer_entry_holds_its_backbones_or_names_their_files(entry, real_data):
    from datamodules._paths import resolve_root

    manifest = registry.get(entry).manifest()
    for name, digest in manifest.backbone_files.items():  # only backbones the weights cannot hold (int8 TorchScript)
        assert name.endswith("_torchscript.pt") and hub.sha256(resolve_root(name)) == digest
    assert manifest.backbones_in_weights == [name is None or not name.endswith("_torchscript.pt")  # None: random init
                                             for name in manifest.hparams["backbone_weights"]]
    assert manifest.data["test_size"] == 300 and manifest.measured_on["split"].startswith("test")
