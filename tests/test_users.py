"""The zoo as a user outside this repository meets it: installed weights, manifests that say how to feed them,
``zoo predict`` on image files, ``--weights`` to start from shipped weights, fine-tuning on an image folder,
``zoo models`` / ``--version`` / ``zoo sample``, torch.hub."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torchvision.io import write_jpeg, write_png

import zoo
from datamodules import EmbeddedMNISTDataModule, ImageFolderDataModule
from tests.helpers import REPO, ok, run_zoo, write_ud_treebank
from zoo import hub, predict, registry
from zoo.manifest import (DESCRIBED_KEYS, KEY_ORDER, SCHEMA_VERSION, Manifest, ManifestError, headline,
                          read_manifest)
from zoo.preprocessing import DamagedImageError, image_files, image_transforms, read_image

SHIPPED = registry.list_models(shipped=True)


# ---------------------------------------------------------------------------------------------- manifests
@pytest.mark.parametrize("entry", SHIPPED)
def test_every_manifest_has_the_schema_and_its_recorded_sizes_hold(entry, request):
    """Like torchvision's test_extended_models: schema keys, parameter count and file size recomputed."""
    manifest = read_manifest(registry.get(entry).manifest_path)
    for key, kind in DESCRIBED_KEYS.items():
        assert key in manifest.key_order and isinstance(getattr(manifest, key), kind), key
    assert manifest.schema == SCHEMA_VERSION
    weights = registry.get(entry).manifest_path.parent / manifest.weights
    assert manifest.file_size == weights.stat().st_size
    if manifest.backbone_files:
        request.getfixturevalue("real_data")  # the backbone file is read at construction
    model = hub.import_trusted(manifest.model_class, torch.nn.Module)(**hub.hparams_to_build(manifest))
    stored = load_file(str(weights))
    parameters = {**dict(model.named_parameters()), **getattr(model, "shipped_extra_parameters", dict)()}
    assert manifest.parameters == sum(p.numel() for name, p in parameters.items() if name in stored)
    floating = {str(t.dtype).removeprefix("torch.") for t in stored.values() if t.is_floating_point()}
    assert manifest.stored_dtype in floating
    assert set(manifest.measured_on) >= {"split", "size", "dataset", "device"}
    if manifest.preprocessing is not None:
        image_transforms(manifest.preprocessing)  # a complete spec
    if manifest.classes is not None:
        assert len(manifest.classes) == manifest.hparams.get("num_classes", len(manifest.classes))


def test_a_bad_manifest_is_one_message_and_the_other_entries_still_list(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("lenet_mnist", "mlp_mnist"):
        for suffix in (".json", ".safetensors"):
            (shipped / f"{name}{suffix}").write_bytes((registry.shipped_dir() / f"{name}{suffix}").read_bytes())
    (shipped / "mlp_mnist.json").write_text("{not json")
    (shipped / "cnn_mnist.json").write_text(json.dumps({"entry": "cnn_mnist"}))
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(shipped))
    with pytest.raises(ManifestError, match="mlp_mnist.json is not valid JSON"):
        read_manifest(shipped / "mlp_mnist.json")
    with pytest.raises(ManifestError, match="lacks the key 'model_class'"):
        read_manifest(shipped / "cnn_mnist.json")
    listing = ok(run_zoo("models", "*mnist", env={registry.CHECKPOINT_DIR_ENV: str(shipped)})).stdout
    assert "lenet_mnist" in listing and "test/acc=" in listing
    row = next(line for line in listing.splitlines() if line.startswith("mlp_mnist "))
    assert "unreadable manifest" in row and "not valid JSON" in row


@pytest.mark.parametrize("entry", SHIPPED)
def test_every_manifest_reads_as_a_manifest_and_writes_back_byte_for_byte(entry):
    path = registry.get(entry).manifest_path
    manifest = registry.get(entry).manifest()
    assert isinstance(manifest, Manifest) and manifest.entry == entry and not manifest.extra
    assert json.dumps(manifest.to_dict(), indent=2) + "\n" == path.read_text(encoding="utf-8")
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.weights = "other.safetensors"  # type: ignore[misc]


def test_a_schema_1_manifest_reads_with_defaults_and_keeps_unknown_keys(tmp_path):
    """A manifest without ``schema`` is schema 1: the schema-2 keys read as absent, unknown keys are kept, and
    the keys set later are appended after the ones written."""
    old = {"entry": "lenet_mnist", "model_class": "zoo.models.small_classifiers.LeNet", "hparams": {"lr": 0.1},
           "future_key": [1, 2], "datamodule_class": "datamodules.MNISTDataModule", "datamodule": {},
           "metrics": {"test/acc": 0.9}, "weights": "lenet_mnist.safetensors", "sha256": "0" * 64, "command": "zoo"}
    path = tmp_path / "lenet_mnist.json"
    path.write_text(json.dumps(old, indent=2) + "\n")
    manifest = read_manifest(path)
    assert manifest.schema == 1 and manifest.extra == {"future_key": [1, 2]}
    assert manifest.classes is None and manifest.parameters is None and manifest.preprocessing is None
    assert manifest.data == {} and manifest.backbone_files == {} and manifest.notes == ""
    assert list(manifest.to_dict()) == list(old) and manifest.to_dict() == old
    newer = dataclasses.replace(manifest, schema=SCHEMA_VERSION, parameters=7, notes="re-described",
                                classes=None)
    assert list(newer.to_dict()) == [*old, "schema", "parameters", "notes"]
    assert headline(manifest) == "test/acc=0.9000"


def test_a_manifest_built_in_code_writes_the_export_order():
    manifest = Manifest(entry="e", model_class="zoo.m.M", hparams={}, datamodule_class="datamodules.D",
                        datamodule={}, metrics={"test/rmse": 1.5}, weights="e.safetensors", sha256="ab", command="c",
                        parameters=3, file_size=10, stored_dtype="float32", measured_on={"split": "test"},
                        classes=["a", "b"], notes="n")
    written = manifest.to_dict()
    assert list(written) == [key for key in KEY_ORDER if key in written]
    assert written["schema"] == SCHEMA_VERSION and written["classes"] == ["a", "b"] and written["data"] == {}
    assert not {"preprocessing", "weights_hold_only", "backbone_files", "backbones_in_weights", "export_command",
                "created"} & set(written)  # empty when-set keys and absent (None) keys are not written
    assert Manifest.from_dict(written) == manifest
    written["classes"].append("c")  # to_dict is a copy
    assert manifest.classes == ["a", "b"]


@pytest.mark.parametrize("change, message", [
    ({"schema": SCHEMA_VERSION + 1}, "has schema 3, but this zoo reads schemas 1 to 2"),
    ({"schema": True}, "'schema' of type bool, expected int"),
    ({"classes": "0123456789"}, "'classes' of type str, expected list"),
    ({"preprocessing": None}, "'preprocessing' of type NoneType, expected dict"),
    ({"weights": "../lenet_mnist.safetensors"}, "plain file name"),
    ({"metrics": {"test/acc": float("nan")}}, "non-finite metrics"),
])
def test_a_manifest_with_a_bad_key_is_refused(tmp_path, change, message):
    shipped = json.loads((registry.shipped_dir() / "lenet_mnist.json").read_text())
    path = tmp_path / "lenet_mnist.json"
    path.write_text(json.dumps({**shipped, **change}))
    with pytest.raises(ManifestError, match=re.escape(message)):
        read_manifest(path)
    with pytest.raises(ManifestError, match=re.escape(message)):
        Manifest.from_dict({**shipped, **change})


def lenet_manifest_in(tmp_path, monkeypatch, **changes) -> Path:
    """A checkpoint folder (made the zoo's) holding the shipped lenet_mnist manifest with ``changes``."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    manifest = json.loads((registry.shipped_dir() / "lenet_mnist.json").read_text())
    (shipped / "lenet_mnist.json").write_text(json.dumps({**manifest, **changes}))
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(shipped))
    return shipped


@pytest.mark.parametrize("weights", ["/dev/zero", "../lenet_mnist.safetensors", "sub/x.safetensors"])
def test_a_manifest_cannot_point_its_weights_outside_its_folder_or_at_a_device(weights, tmp_path, monkeypatch):
    lenet_manifest_in(tmp_path, monkeypatch, weights=weights)
    with pytest.raises(ManifestError, match="plain file name"):
        zoo.load("lenet_mnist")


def test_a_weights_link_to_a_device_is_refused_without_reading_it(tmp_path, monkeypatch):
    shipped = lenet_manifest_in(tmp_path, monkeypatch)
    (shipped / "lenet_mnist.safetensors").symlink_to("/dev/zero")
    with pytest.raises(ManifestError, match="not a regular file"):
        zoo.load("lenet_mnist")


def test_a_tensor_stored_in_another_dtype_is_refused(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    state = load_file(str(registry.shipped_dir() / "lenet_mnist.safetensors"))
    state["network.0.weight"] = state["network.0.weight"].long()
    saved = tmp_path / "lenet_mnist.safetensors"
    save_file(state, str(saved))
    shipped = lenet_manifest_in(tmp_path, monkeypatch, sha256=hub.sha256(saved))
    saved.rename(shipped / saved.name)
    with pytest.raises(hub.CheckpointError, match="another kind"):
        zoo.load("lenet_mnist")


# ---------------------------------------------------------------------------------------------- Python API
def test_list_models_transforms_and_class_names():
    assert "lenet_mnist" in zoo.list_models("lenet*", shipped=True)
    assert "lenet_mnist5k" in zoo.list_models("lenet*", shipped=False)
    assert set(zoo.list_models()) == set(registry.entries())
    assert zoo.class_names("airbench_cifar10")[:2] == ["airplane", "automobile"]
    light_paper = torch.full((3, 200, 150), 250, dtype=torch.uint8)  # a dark stroke on light paper, RGB
    light_paper[:, 60:140, 70:80] = 10
    x = zoo.transforms("lenet_mnist")(light_paper)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x[0, 14, 14] > x[0, 2, 2]  # inverted: the stroke is light, the background dark (normalized)
    with pytest.raises(hub.CheckpointError, match=r"no image preprocessing or vocabularies: it reads neither images "
                                                  r"nor sentences; give its model, zoo.load\('lstm_airline'\), "):
        zoo.transforms("lstm_airline")  # it ships weights: before, the message pointed to `zoo models --shipped`
    with pytest.raises(hub.CheckpointError, match=r"'lenet_mnist_mini' ships no weights.*"
                                                  r"zoo.list_models\(shipped=True\) lists"):
        zoo.transforms("lenet_mnist_mini")


def test_load_documents_the_error_of_an_unknown_entry():
    with pytest.raises(registry.UnknownEntryError, match="did you mean 'lenet_mnist'"):
        zoo.load("lenet_mnst")
    assert "UnknownEntryError: no entry has this name" in zoo.load.__doc__


def test_transforms_take_pil_images_numpy_arrays_and_grey_tensors_as_torchvision_weights_transforms_do():
    from PIL import Image

    grey = (torch.rand(1, 40, 30, generator=torch.Generator().manual_seed(0)) * 255).byte()
    transform = zoo.transforms("lenet_mnist")
    x = transform(grey)
    for same in (Image.fromarray(grey[0].numpy()), grey[0].numpy(), grey[0]):
        y = transform(same)
        assert type(y) is torch.Tensor and torch.equal(y, x)
    rgb = zoo.transforms("airbench_cifar10")(Image.new("RGB", (50, 40), (200, 10, 10)))
    assert type(rgb) is torch.Tensor and rgb.shape == (3, 32, 32)
    with pytest.raises(TypeError, match="expected an image .*PIL image.*got str"):
        transform("my_digit.png")
    for empty in (torch.zeros(1, 0, 28, dtype=torch.uint8), torch.zeros(28, 0, dtype=torch.uint8)):
        with pytest.raises(ValueError, match=r"the image is \d+x\d+ pixels .* it holds no pixels"):
            transform(empty)


def test_import_zoo_stays_light_and_reaches_the_subpackages_on_first_use():
    code = ("import sys, zoo\n"
            "assert 'torch' not in sys.modules, 'import zoo imported torch'\n"
            "print(zoo.models.LeNet.__name__, zoo.layers.ModReLU.__name__, zoo.callbacks.__name__, "
            "zoo.registry.__name__)\n"
            "try:\n    zoo.no_such_thing\nexcept AttributeError as error:\n    print(error)\n")
    proc = ok(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True))
    assert proc.stdout.splitlines() == ["LeNet ModReLU zoo.callbacks zoo.registry",
                                        "module 'zoo' has no attribute 'no_such_thing'"]
    assert {"models", "layers", "callbacks", "load"} <= set(dir(zoo))


def test_checkpoint_dir_prefers_the_environment_then_the_installed_package(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path))
    assert registry.checkpoint_dir() == tmp_path
    monkeypatch.delenv(registry.CHECKPOINT_DIR_ENV)
    assert registry.checkpoint_dir() == REPO / "checkpoints"  # an editable install: the repository's folder
    assert registry.shipped_dir() == REPO / "checkpoints" and registry.checkpoint_dirs() == [REPO / "checkpoints"]


def test_weights_of_your_own_take_an_entrys_place_and_the_others_stay_shipped(tmp_path, monkeypatch):
    """``ZOO_CHECKPOINT_DIR=my_weights`` after ``zoo export ... --out_dir my_weights``: the entry exported there loads
    from there, and every other entry still loads its shipped weights (before, the folder hid all of them)."""
    shipped = registry.get("lenet_mnist").manifest_path.parent
    mine = tmp_path / "my_weights"
    mine.mkdir()
    manifest = json.loads((shipped / "lenet_mnist.json").read_text())
    manifest["notes"] = "my fine-tuned LeNet"
    (mine / "lenet_mnist.json").write_text(json.dumps(manifest))
    (mine / "lenet_mnist.safetensors").write_bytes((shipped / "lenet_mnist.safetensors").read_bytes())
    everything = registry.list_models(shipped=True)
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(mine))
    assert registry.checkpoint_dirs() == [mine, shipped]
    assert registry.get("lenet_mnist").manifest_path == mine / "lenet_mnist.json"
    assert registry.get("lenet_mnist").weights_path == mine / "lenet_mnist.safetensors"
    assert registry.get("lenet_mnist").manifest().notes == "my fine-tuned LeNet"
    assert registry.get("mlp_mnist").manifest_path == shipped / "mlp_mnist.json"
    assert registry.list_models(shipped=True) == everything
    assert zoo.load("lenet_mnist") is not None and zoo.load("mlp_mnist") is not None
    with pytest.raises(hub.CheckpointError, match=f"no lenet_mnist_mini.json in {mine} or {shipped}"):
        zoo.load("lenet_mnist_mini")


# ---------------------------------------------------------------------------------------------- zoo predict
def mini_test_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    dm = EmbeddedMNISTDataModule(normalize=False)
    dm.setup("test")
    return dm.test_set.images[:n], dm.test_set.labels[:n]


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory) -> tuple[Path, Path, list[int]]:
    """60 real MNIST test digits as PNG files, and the same drawn dark on light, resized to 200x200, as JPEG."""
    images, labels = mini_test_images(60)
    plain, paper = tmp_path_factory.mktemp("digits"), tmp_path_factory.mktemp("paper")
    for i, image in enumerate(images):
        pixels = (image * 255).round().byte()
        write_png(pixels, str(plain / f"{i:03d}.png"))
        big = F.interpolate((255 - pixels.float())[None], size=(200, 200), mode="bilinear")[0]
        write_jpeg(big.round().clamp(0, 255).byte().expand(3, -1, -1).contiguous(), str(paper / f"{i:03d}.jpg"))
    return plain, paper, labels.tolist()


def predicted(stdout: str) -> list[str]:
    return [line.split("\t")[1] for line in sorted(stdout.strip().splitlines())]


def test_predict_classifies_png_files_and_digits_drawn_dark_on_light(digit_files):
    plain, paper, labels = digit_files
    expected = [str(y) for y in labels]
    for folder in (plain, paper):
        out = ok(run_zoo("predict", "lenet_mnist", str(folder))).stdout
        assert len(out.strip().splitlines()) == len(labels)
        hits = sum(p == y for p, y in zip(predicted(out), expected))
        assert hits / len(labels) >= 0.95, (folder, hits)


def test_predict_topk_json_and_a_damaged_file_named(digit_files, tmp_path):
    plain, _, labels = digit_files
    first = plain / "000.png"
    out = ok(run_zoo("predict", "lenet_mnist", str(first), "--topk", "3", "--json")).stdout
    row = json.loads(out)
    assert row["path"] == str(first) and len(row["top"]) == 3 and row["top"][0]["class"] == str(labels[0])
    assert sum(t["probability"] for t in row["top"]) <= 1.0 + 1e-6
    text = ok(run_zoo("predict", "lenet_mnist", str(first), "--topk", "2")).stdout.strip().split("\t")
    assert len(text) == 5
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(first.read_bytes()[:40])
    proc = run_zoo("predict", "lenet_mnist", str(first), str(broken))
    assert proc.returncode == 1 and "broken.jpg" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.startswith(str(first))


def test_image_files_takes_one_folder_or_a_list_of_paths(tmp_path):
    """A Python caller's ``image_files("my_digits")`` reads the folder, as ``image_files(["my_digits"])`` does;
    before, the string was taken as a list of one-letter paths (``m does not exist``)."""
    write_png(torch.zeros(1, 8, 8, dtype=torch.uint8), str(tmp_path / "a.png"))
    assert image_files(str(tmp_path)) == image_files(tmp_path) == image_files([str(tmp_path)]) == [tmp_path / "a.png"]
    with pytest.raises(DamagedImageError, match=f"^{re.escape(str(tmp_path / 'nothere'))} does not exist"):
        image_files(str(tmp_path / "nothere"))


def test_predict_bounds_hostile_images(tmp_path):
    strip = tmp_path / "strip.jpg"
    write_jpeg(torch.full((3, 1, 5000), 128, dtype=torch.uint8), str(strip))
    x = image_transforms(hub.registry.get("transfer_frozen_dogs_vs_cats").manifest().preprocessing)(
        read_image(strip, 3))
    assert x.shape == (3, 224, 224)  # the long side was cropped before resizing: no 256 x 1.28M intermediate
    huge = tmp_path / "huge.png"  # a header that declares 60,000 x 60,000 pixels
    from PIL import Image

    Image.new("L", (1, 1)).save(huge)
    data = bytearray(huge.read_bytes())
    data[16:24] = (60000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk's checksum
    huge.write_bytes(bytes(data))
    with pytest.raises(DamagedImageError, match="huge.png.*more pixels than"):
        read_image(huge, 1)


def test_predict_reads_16_bit_alpha_and_palette_pngs_as_the_8_bit_digit(digit_files, tmp_path):
    """PNG files as other programs write them: 16-bit grey, grey with alpha, RGBA, palette; each is the same digit."""
    from PIL import Image

    plain, _, labels = digit_files
    pixels = read_image(plain / "000.png", 1)[0].numpy()
    variants = {"grey16.png": Image.fromarray(pixels.astype("uint16") * 257),
                "grey_alpha.png": Image.fromarray(pixels).convert("LA"),
                "rgba.png": Image.fromarray(pixels).convert("RGBA"), "palette.png": Image.fromarray(pixels).convert("P")}
    for name, image in variants.items():
        image.save(tmp_path / name)
        assert torch.equal(read_image(tmp_path / name, 1), read_image(plain / "000.png", 1)), name
    out = ok(run_zoo("predict", "lenet_mnist", str(tmp_path))).stdout
    assert predicted(out) == [str(labels[0])] * len(variants)


def test_predict_refuses_an_entry_that_is_not_an_image_classifier_tagger_or_forecaster():
    proc = run_zoo("predict", "gan_mnist", "README.md")
    assert proc.returncode == 2 and "'gan_mnist' is not an image classifier, tagger or forecaster" in proc.stderr
    usable = proc.stderr.split("takes one of: ")[1].split("\n")[0].split(", ")
    assert {"lenet_mnist", "pos_tagger_ud_ewt", "lstm_airline"} <= set(usable) and "gan_mnist" not in usable


# ---------------------------------------------------------------------------------------------- --weights
def test_weights_flag_starts_from_shipped_weights_and_untrained_runs_warn():
    out = ok(run_zoo("test", "-c", "lenet_mnist", "--data", "EmbeddedMNISTDataModule", "--weights",
                     "zoo:lenet_mnist", "--trainer.enable_progress_bar", "false"))
    assert "--weights zoo:lenet_mnist: loaded 10 tensors" in out.stderr + out.stdout
    accuracy = float(out.stdout.split("test/acc")[1].split()[0])
    assert accuracy > 0.95  # the mini test set is 1,000 real MNIST test images
    cold = ok(run_zoo("validate", "-c", "lenet_mnist", "--data", "EmbeddedMNISTDataModule",
                      "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false"))
    warning = [line for line in cold.stderr.splitlines() if "untrained" in line]
    assert len(warning) == 1 and "--weights zoo:lenet_mnist" in warning[0]


def test_weights_into_a_model_with_another_head_loads_the_rest_and_names_the_head():
    model = zoo.load("lenet_mnist")
    other = type(model)(num_classes=3)
    kept, unused = hub.start_from(other, "zoo:lenet_mnist")
    assert kept == ["network.11.bias", "network.11.weight"] and unused == []
    assert torch.equal(other.network[0].weight, model.network[0].weight)


def test_start_from_names_its_argument_as_the_caller_gave_it(tmp_path):
    """From Python the ``weights`` argument and ``zoo.list_models``; under the ``zoo`` command its ``--weights`` flag."""
    with pytest.raises(hub.CheckpointError, match=r"^weights 'zoo:lenet_mnist_mini': entry 'lenet_mnist_mini' ships "
                                                  r"no weights; zoo\.list_models\(shipped=True\) lists"):
        hub.start_from(zoo.models.LeNet(), "zoo:lenet_mnist_mini")
    with pytest.raises(hub.CheckpointError, match=r"^weights '.*nothing\.safetensors': no such file"):
        hub.start_from(zoo.models.LeNet(), str(tmp_path / "nothing.safetensors"))
    proc = run_zoo("fit", "-c", "lenet_mnist_mini", "--weights", "zoo:lenet_mnist_mini", cwd=tmp_path)
    assert proc.returncode == 2 and "--weights zoo:lenet_mnist_mini: entry 'lenet_mnist_mini' ships no weights; " \
        "`zoo models --shipped` lists" in proc.stderr, proc.stderr


def test_the_taggers_weights_bring_its_vocabularies_to_a_treebank_of_your_own(tmp_path):
    """``--weights zoo:pos_tagger_ud_ewt`` on other CoNLL-U files: the datamodule takes the entry's vocabularies, so
    every tensor loads and its embeddings read the ids they were trained with (before, the vocabularies built from
    the other files did not fit the shipped sizes and the fit stopped)."""
    root = write_ud_treebank(tmp_path / "mine")
    common = ["-c", "pos_tagger_ud_ewt", "--data.init_args.root", str(root), "--weights", "zoo:pos_tagger_ud_ewt",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "runs")]
    tested = ok(run_zoo("test", *common))
    fitted = ok(run_zoo("fit", *common, "--trainer.max_epochs", "1", "--test_after_fit", "false"))
    for out in (tested, fitted):
        text = out.stdout + out.stderr
        assert ("the datamodule reads its files with the vocabularies of zoo:pos_tagger_ud_ewt (8,867 words, 110 "
                "chars)") in text
        assert "loaded" in text and "kept the initialization" not in text
    # the shipped tagger tags the fixture's everyday sentences with the ids it was trained with
    assert float(tested.stdout.split("test/acc")[1].split()[0]) > 0.8


# ---------------------------------------------------------------------------------------------- fine-tuning
def write_class_folders(root: Path, per_class: int = 12) -> None:
    """Two classes of 40x48 photos: red-ish and blue-ish, with noise; JPEG and PNG."""
    generator = torch.Generator().manual_seed(0)
    for label, name in enumerate(("blue", "red")):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = torch.randint(0, 90, (3, 40, 48), generator=generator, dtype=torch.uint8)
            image[2 - 2 * label] += 150
            (write_png if i % 2 else write_jpeg)(image, str(folder / f"{i}.{'png' if i % 2 else 'jpg'}"))


def test_image_folder_datamodule_splits_by_seed_and_names_classes(tmp_path):
    write_class_folders(tmp_path)
    dm = ImageFolderDataModule(str(tmp_path), val_fraction=0.25, seed=0)
    dm.setup("fit")
    assert dm.class_names == ["blue", "red"] and dm.train_set.images.shape == (18, 3, 32, 32)
    assert len(dm.val_set) == 6 and dm.test_set is dm.val_set
    again = ImageFolderDataModule(str(tmp_path), val_fraction=0.25, seed=0)
    again.setup("fit")
    assert torch.equal(again.val_set.images, dm.val_set.images)
    (tmp_path / "train" / "red" / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DamagedImageError, match="5.png"):
        ImageFolderDataModule(str(tmp_path)).setup("fit")


def test_image_folder_size_is_chosen_and_its_pixels_can_stay_in_0_1(tmp_path):
    write_class_folders(tmp_path)
    dm = ImageFolderDataModule(str(tmp_path), image_size=28, normalize="none", batch_size=4)
    dm.setup("fit")
    assert dm.train_set.images.shape[1:] == (3, 28, 28) and dm.input_spec()["input_size"] == [28, 28]
    for augment in ("book", "standard", "airbench"):
        dm.hparams.augment = augment
        x, _ = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
        assert x.shape == (4, 3, 28, 28) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="image_size must be at least 8"):
        ImageFolderDataModule(str(tmp_path), image_size=4)


def test_a_gan_trains_on_your_own_folder_once_the_pixels_stay_in_0_1(tmp_path):
    """gan_mnist on a folder of RGB photos, the model's sizes set to the folder's images: the entry's
    ``normalize: false`` now carries over to the folder datamodule, so it trains; normalized pixels are refused in
    one line naming the option."""
    write_class_folders(tmp_path / "photos", per_class=4)
    fit = ("fit", "-c", "gan_mnist", "--data", "datamodules.ImageFolderDataModule", "--data.root",
           str(tmp_path / "photos"), "--data.batch_size", "4", "--trainer.max_epochs", "1",
           "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
           "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false",
           "--model.init_args.in_channels", "3", "--model.init_args.image_size", "24", "--data.image_size", "24")
    refused = run_zoo(*fit, "--data.init_args.normalize", "cifar10")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "pixels in [0, 1]" in refused.stderr and "--data.init_args.normalize false" in refused.stderr
    ok(run_zoo(*fit))
    assert list((tmp_path / "runs").rglob("last.ckpt"))


def test_image_folder_refuses_a_single_class(tmp_path):
    (tmp_path / "train" / "only").mkdir(parents=True)
    write_png(torch.zeros(3, 8, 8, dtype=torch.uint8), str(tmp_path / "train" / "only" / "0.png"))
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # a hidden folder is no second class
    with pytest.raises(FileNotFoundError, match="at least two classes") as refused:
        ImageFolderDataModule(str(tmp_path)).setup("fit")
    assert ".ipynb_checkpoints" not in str(refused.value)


def test_a_one_class_folder_says_what_was_found_and_trains_an_unconditional_model_when_asked(tmp_path):
    """train/faces/ with 20 PNGs is no missing dataset: the refusal names the class found and what is needed; with
    min_classes 1 it is the training set of an unconditional generative model."""
    (tmp_path / "train" / "faces").mkdir(parents=True)
    for i in range(20):
        write_png(torch.full((3, 8, 8), 10 * i, dtype=torch.uint8), str(tmp_path / "train" / "faces" / f"{i}.png"))
    with pytest.raises(FileNotFoundError) as refused:
        ImageFolderDataModule(str(tmp_path)).setup("fit")
    message = str(refused.value)
    assert "not found" not in message and "missing" not in message
    assert "found 1 class folder" in message and "'faces' (20 images)" in message and "at least two" in message
    assert message.endswith("pass min_classes=1")
    dm = ImageFolderDataModule(str(tmp_path), min_classes=1, normalize="none", batch_size=4)
    dm.setup("fit")
    assert dm.class_names == ["faces"] and len(dm.train_set) + len(dm.val_set) == 20
    with pytest.raises(ValueError, match="min_classes must be at least 1"):
        ImageFolderDataModule(str(tmp_path), min_classes=0)


@pytest.mark.slow
def test_fine_tune_recipe_end_to_end(tmp_path):
    """README recipe: shipped CIFAR-10 weights, a new 2-class head, zoo fit on a folder, zoo predict with the run."""
    write_class_folders(tmp_path / "photos")
    fit = ok(run_zoo("fit", "-c", "airbench_cifar10", "--data", "ImageFolderDataModule", "--data.root",
                     str(tmp_path / "photos"), "--data.batch_size", "8", "--model.init_args.num_classes", "2",
                     "--weights", "zoo:airbench_cifar10", "--trainer.max_steps", "-1", "--trainer.max_epochs", "2",
                     "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false"))
    assert "kept the initialization of network.7.weight" in fit.stderr + fit.stdout
    results = json.loads(next((tmp_path / "runs").rglob("results.json")).read_text())
    out = ok(run_zoo("predict", results["last_checkpoint"], str(tmp_path / "photos" / "train" / "red"))).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 12 and all(line.split("\t")[1] in ("blue", "red") for line in lines)


MY_MODELS = '''
from torch import nn
from zoo.models import LeNet


class InputDropoutLeNet(LeNet):
    """A user's subclass, in their own folder: dropout on the input pixels."""

    def __init__(self, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.input_dropout = nn.Dropout(dropout)

    def forward(self, x):
        return super().forward(self.input_dropout(x))
'''


@pytest.mark.slow
def test_your_own_subclass_trains_predicts_evaluates_and_exports(mnist_root, tmp_path):
    """A subclass in the user's folder (importable through PYTHONPATH) goes through every command; checkpoints and
    manifests naming it are imported only once its module is trusted with ZOO_TRUSTED_MODULES."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_models.py").write_text(MY_MODELS)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(tmp_path / "code")}
    ok(run_zoo("fit", "--model", "my_models.InputDropoutLeNet", "--model.init_args.dropout", "0.2", "--data",
               "MNISTDataModule", "--data.init_args.root", str(mnist_root), "--data.init_args.batch_size", "32",
               "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", cwd=work, env=env))
    (checkpoint,) = work.rglob("last.ckpt")
    digit = work / "digit.png"
    write_png(torch.full((1, 28, 28), 255, dtype=torch.uint8), str(digit))
    refused = run_zoo("predict", str(checkpoint), str(digit), cwd=work, env=env)
    assert refused.returncode == 2 and "trust its module with ZOO_TRUSTED_MODULES=my_models" in refused.stderr
    env["ZOO_TRUSTED_MODULES"] = "my_models"
    assert ok(run_zoo("predict", str(checkpoint), str(digit), cwd=work, env=env)).stdout.startswith(f"{digit}\t")
    unimportable = run_zoo("predict", str(checkpoint), str(digit), cwd=work, env={**env, "PYTHONPATH": ""})
    assert unimportable.returncode == 2 and "run with PYTHONPATH=<the folder that holds it>" in unimportable.stderr
    evaluated = ok(run_zoo("evaluate", "lenet_mnist", "--ckpt_path", str(checkpoint), cwd=work, env=env)).stdout
    ok(run_zoo("export", "lenet_mnist", "--ckpt_path", str(checkpoint), "--command", "zoo fit --model my_models...",
               "--out_dir", str(work / "mine"), cwd=work, env=env))
    manifest = json.loads((work / "mine" / "lenet_mnist.json").read_text())
    assert manifest["model_class"] == "my_models.InputDropoutLeNet"
    assert f"{manifest['metrics']['test/acc']:.4f}" in evaluated
    code = "import zoo; m = zoo.load('lenet_mnist'); print(type(m).__name__, m.hparams.dropout, m.training)"
    loaded = ok(subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True,
                               env={**os.environ, **env, "ZOO_CHECKPOINT_DIR": str(work / "mine")}))
    assert loaded.stdout.split() == ["InputDropoutLeNet", "0.2", "False"]


# ---------------------------------------------------------------------------------------------- commands
def test_version_models_filter_and_a_closed_pipe():
    assert ok(run_zoo("--version")).stdout.strip() == f"lightning-zoo {zoo.__version__}"
    rows = ok(run_zoo("models", "*cifar10", "--shipped")).stdout.strip().splitlines()
    assert rows[0].split()[:4] == ["entry", "model", "datamodule", "shipped"]
    assert [row.split()[0] for row in rows[1:]] == ["airbench_cifar10", "resnet18_book_cifar10"]
    for row in rows[1:]:  # each shipped entry's headline is its manifest's test accuracy, as zoo models prints it
        entry, *_, shown = row.split()
        assert shown == headline(registry.get(entry).manifest()) and shown.startswith("test/acc=0."), row
    gans = ok(run_zoo("models", "gan_mnist")).stdout
    assert "test/fd_lenet=" in gans
    head = subprocess.run(f"{sys.executable} -m zoo models | head -2", shell=True, capture_output=True, text=True,
                          cwd=REPO)
    assert head.returncode == 0 and "Error" not in head.stderr and len(head.stdout.splitlines()) == 2


def test_sample_writes_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    ok(run_zoo("sample", "cgan_mnist", "-n", "20", "--out", str(out), "--labels", "3", "7"))
    from PIL import Image

    assert Image.open(out).size[0] > 28 * 2
    proc = run_zoo("sample", "gan_mnist", "--labels", "1", "--out", str(out))
    assert proc.returncode == 2 and "unconditional" in proc.stderr


def test_sample_draws_from_the_checkpoint_of_a_run(tmp_path):
    model = zoo.models.VAE().eval()
    out = predict.sample_grid("mine.ckpt", 4, str(tmp_path / "grid.png"), seed=3, run=(model, None))
    expected = model.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(read_image(str(out), 1)[:, 2:30, 2:30], (expected[0] * 255 + 0.5).clamp(0, 255).byte())
    with pytest.raises(predict.PredictError, match="not a generative entry.*or the .ckpt of a `zoo fit` run of one"):
        predict.sample_grid("mine.ckpt", 4, str(tmp_path / "grid.png"), run=(zoo.models.LeNet(), None))


def test_sample_of_a_run_refuses_labels_its_datamodule_never_had(tmp_path):
    """A conditional run trained (before the class-count check) on a 2-class folder with num_classes 10: --labels 5
    names a class the run never saw."""
    folders = type("Folders", (), {"class_names": ["cats", "dogs"]})()
    run = (zoo.models.ConditionalGAN(d_hidden=(8,), g_hidden=(8,), latent_dim=4).eval(), folders)
    with pytest.raises(predict.PredictError, match=r"2 classes \(cats, dogs\).*--labels takes 0 to 1, got 5"):
        predict.sample_grid("mine.ckpt", 4, str(tmp_path / "grid.png"), labels=[5], run=run)
    assert predict.sample_grid("mine.ckpt", 4, str(tmp_path / "grid.png"), labels=[1], run=run).is_file()


@pytest.mark.parametrize("model", [zoo.models.MLPGAN(d_hidden=(8,), g_hidden=(8,)), zoo.models.VAE(hidden=8)])
def test_predict_refuses_the_run_of_a_generative_model_and_points_to_sample(model):
    """Its datamodule records preprocessing and class names, but the model does not classify: refused as the entry
    name is, instead of a missing-forward traceback (GAN) or an indexing error (VAE)."""
    folders = type("Folders", (), {"class_names": ["a", "b"], "input_spec": lambda self: {"channels": 1}})()
    with pytest.raises(predict.PredictError, match=rf"mine.ckpt is a run of {type(model).__name__}, not of an image "
                                                   r"classifier.*draw samples with `zoo sample mine.ckpt`"):
        predict.image_classifier("mine.ckpt", run=(model, folders))


def test_sample_out_in_a_new_folder_creates_it_and_an_unwritable_one_is_one_line(tmp_path, monkeypatch):
    """``--out`` creates its missing folders, as ``zoo export --out_dir`` and the run folders do; a folder that cannot
    be created is named in one line, not a traceback about the hidden partial file."""
    model = zoo.models.VAE().eval()
    out = predict.sample_grid("mine.ckpt", 4, str(tmp_path / "new" / "deeper" / "g.png"), run=(model, None))
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["g.png"]
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(predict.PredictError, match=r"^--out .*a_file/g.png: cannot create the folder .*a_file "
                                                   r"\(FileExistsError.*\); pass --out in a folder you can write$"):
        predict.sample_grid("mine.ckpt", 4, str(tmp_path / "a_file" / "g.png"), run=(model, None))

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(predict, "save_image", refused)  # a folder this user may not write (tests run as root)
    with pytest.raises(predict.PredictError, match=r"cannot write .*g.png \(PermissionError: Permission denied\)"):
        predict.sample_grid("mine.ckpt", 4, str(out), run=(model, None))
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["g.png"]  # the grid written before stays


def test_fast_dev_run_writes_nothing_into_the_working_directory(tmp_path):
    ok(run_zoo("fit", "-c", "lenet_mnist_mini", "--trainer.fast_dev_run", "true", cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_configs_leave_the_accelerator_to_lightning():
    for entry in registry.entries().values():
        assert "accelerator" not in entry.config.get("trainer", {}), entry.name


def test_torch_hub_loads_an_entry_from_the_repository():
    model = torch.hub.load(str(REPO), "lenet_mnist", source="local")
    assert type(model).__name__ == "LeNet" and not model.training


# ---------------------------------------------------------------------------------------------- installs
@pytest.mark.slow
def test_a_wheel_carries_every_shipped_entry_and_loads_them_outside_the_repository(tmp_path):
    """The wheel holds every module of the source tree and every shipped entry; outside the repository it loads an
    entry and runs the README's main job."""
    wheel_dir = tmp_path / "wheel"
    ok(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                       str(wheel_dir), str(REPO)], capture_output=True, text=True))
    wheel = next(wheel_dir.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(REPO).as_posix() for package in ("zoo", "datamodules")
               for path in (REPO / package).rglob("*.py") if "__pycache__" not in path.parts}
    assert sources - names == set(), "modules missing from the wheel: add their package to pyproject.toml"
    for entry in SHIPPED:
        assert f"zoo/checkpoints/{entry}.json" in names
        assert f"zoo/checkpoints/{read_manifest(registry.get(entry).manifest_path).weights}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import zoo, sys; assert zoo.__file__.startswith(sys.argv[1]), zoo.__file__; "
            "from zoo import registry; print(registry.checkpoint_dir()); m = zoo.load('lenet_mnist'); "
            "print(type(m).__name__)")
    env = {"PYTHONPATH": str(site), "ZOO_CHECKPOINT_DIR": ""}
    proc = ok(subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, cwd=tmp_path,
                             env={**os.environ, **env}))
    assert proc.stdout.splitlines() == [str(site / "zoo" / "checkpoints"), "LeNet"]
    job = tmp_path / "job"
    job.mkdir()
    offline = {key: value for key, value in os.environ.items() if key != "ZOO_DATA_DIR"}
    proc = ok(subprocess.run([sys.executable, "-m", "zoo", "fit", "-c", "lenet_mnist_mini"], capture_output=True,
                             text=True, cwd=job, env={**offline, **env}))
    assert re.search(r"test/acc\s+0\.\d+", proc.stdout), proc.stdout[-2000:]


@pytest.mark.realdata
def test_a_backbone_file_the_weights_cannot_hold_is_found_in_torch_hubs_folder(real_data, tmp_path, monkeypatch):
    """transfer_concat's int8 TorchScript backbone: named with its public source when missing, found in torch hub's
    checkpoints/ folder with ZOO_DATA_DIR unset."""
    import shutil

    monkeypatch.delenv("ZOO_DATA_DIR")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(hub.CheckpointError, match="ios-demo-app at commit b8f52b772b98"):
        zoo.load("transfer_concat_dogs_vs_cats")
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(real_data / "weights" / "mobilenet_v2_quantized_qnnpack_torchscript.pt", checkpoints)
    model = zoo.load("transfer_concat_dogs_vs_cats")
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 2)
