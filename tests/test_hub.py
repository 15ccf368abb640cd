"""Shipped weights: export to safetensors + manifest, load with hash check, and the bad-checkpoint errors."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

import zoo
from datamodules import MNISTDataModule
from zoo import cli, evaluation, export, hub, registry
from zoo.hub import CheckpointError
from zoo.manifest import read_manifest
from zoo.models import LeNet


@pytest.fixture
def exported(mnist_root, tmp_path, monkeypatch):
    """A LeNet trained for a few steps on the fixture data and exported as entry ``lenet_mnist5k``."""
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "shipped"))
    L.seed_everything(0)
    model, dm = LeNet(), MNISTDataModule(root=str(mnist_root), batch_size=32)
    trainer = L.Trainer(max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1)
    trainer.fit(model, datamodule=dm)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    manifest = export.export("lenet_mnist5k", str(ckpt), fit_command="zoo fit -c lenet_mnist5k")
    return model.eval(), manifest, tmp_path / "shipped"


def test_export_writes_manifest_and_load_gives_identical_outputs(exported):
    model, manifest, shipped = exported
    assert (shipped / "lenet_mnist5k.safetensors").exists()
    on_disk = json.loads((shipped / "lenet_mnist5k.json").read_text())
    assert on_disk["sha256"] == hub.sha256(shipped / "lenet_mnist5k.safetensors")
    assert on_disk["model_class"] == "zoo.models.small_classifiers.LeNet"
    assert on_disk["command"] == "zoo fit -c lenet_mnist5k"
    assert on_disk["data"]["train_size"] == 180 and on_disk["data"]["test_size"] == 100
    assert 0.0 <= on_disk["metrics"]["test/acc"] <= 1.0
    assert on_disk == manifest.to_dict() and read_manifest(shipped / "lenet_mnist5k.json") == manifest
    loaded = zoo.load("lenet_mnist5k")
    assert not loaded.training
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))


def test_export_keeps_weights_already_there_unless_told_and_writes_elsewhere_on_request(exported, tmp_path,
                                                                                          monkeypatch, capsys):
    """An export over an entry's weights (a user fine-tuning a shipped entry in an installed package) would replace
    the shipped files: refused before anything is read or written; ``--out_dir`` keeps both, ``--overwrite``
    replaces them."""
    _, manifest, shipped = exported
    ckpt = tmp_path / "model.ckpt"
    before = {path.name: path.read_bytes() for path in shipped.iterdir()}
    args = ["export", "lenet_mnist5k", "--ckpt_path", str(ckpt), "--command", "zoo fit -c lenet_mnist5k"]
    assert cli.main(args) == 2
    assert (f"refusing to replace {shipped / 'lenet_mnist5k.json'}: {shipped} already holds weights of "
            f"'lenet_mnist5k'. Pass --out_dir") in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in shipped.iterdir()} == before
    assert cli.main([*args, "--out_dir", str(tmp_path / "mine")]) == 0
    assert {path.name: path.read_bytes() for path in shipped.iterdir()} == before
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "mine"))
    assert zoo.load("lenet_mnist5k") is not None
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(shipped))
    assert cli.main([*args, "--dtype", "float16", "--overwrite"]) == 0
    assert read_manifest(shipped / "lenet_mnist5k.json").sha256 != manifest.sha256


def test_evaluate_remeasures_the_manifest_metric(exported):
    measured, recorded = evaluation.evaluate("lenet_mnist5k")
    assert measured["test/acc"] == pytest.approx(recorded["test/acc"], abs=1e-6)


def test_corrupt_weights_are_refused(exported):
    _, _, shipped = exported
    path = shipped / "lenet_mnist5k.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 .* corrupt or was replaced"):
        zoo.load("lenet_mnist5k")


def set_manifest_model_class(shipped, class_path: str) -> None:
    manifest_path = shipped / "lenet_mnist5k.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model_class"] = class_path
    manifest_path.write_text(json.dumps(manifest))


def test_untrusted_class_in_manifest_is_refused(exported):
    set_manifest_model_class(exported[2], "os.system")
    with pytest.raises(CheckpointError, match="refusing to import 'os.system'"):
        zoo.load("lenet_mnist5k")


def test_weights_that_do_not_fit_the_hparams_are_refused(exported):
    set_manifest_model_class(exported[2], "zoo.models.small_classifiers.MLP")
    with pytest.raises(CheckpointError, match="does not fit"):
        zoo.load("lenet_mnist5k")


def test_entry_without_weights_and_unknown_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match="ships no weights"):
        zoo.load("lenet_mnist_mini")
    with pytest.raises(registry.UnknownEntryError, match="no zoo entry named 'nope'; known entries"):
        zoo.load("nope")


def test_evaluate_measures_a_trained_checkpoint_with_its_stored_datamodule(exported, tmp_path, capsys, monkeypatch):
    """``zoo evaluate <entry> --ckpt_path`` measures a run that was never exported (here for an entry whose
    manifest does not exist: no shipped weights either), with the datamodule the checkpoint recorded."""
    model, manifest, _ = exported
    monkeypatch.setattr(registry, "shipped_dir", lambda: tmp_path / "nothing_shipped")
    measured, recorded = evaluation.evaluate("lenet_mnist", str(tmp_path / "model.ckpt"))
    assert recorded == {}
    assert measured["test/acc"] == pytest.approx(manifest.metrics["test/acc"], abs=1e-6)
    assert cli.main(["evaluate", "lenet_mnist5k", "--ckpt_path", str(tmp_path / "model.ckpt")]) == 0
    printed = capsys.readouterr().out
    assert f"the checkpoint {tmp_path / 'model.ckpt'}" in printed and "test/acc" in printed


def test_evaluate_refuses_a_missing_checkpoint_or_one_of_another_model(exported, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nope.ckpt; pass the .ckpt"):
        evaluation.evaluate("lenet_mnist5k", str(tmp_path / "nope.ckpt"))
    with pytest.raises(CheckpointError,
                       match=r"does not rebuild zoo.models.MLP \(entry .mlp_mnist.\) \(the checkpoint names no model "
                             r"class: .*\): Error\(s\) in loading"):
        evaluation.evaluate("mlp_mnist", str(tmp_path / "model.ckpt"))


def test_a_checkpoint_of_a_python_trainer_that_names_no_class_says_the_entrys_class_was_assumed(tmp_path):
    """Only LightningCLI writes the model's class into a checkpoint; a subclass trained by a Trainer of your own
    does not rebuild as the entry's class, and the message says why instead of blaming the subclass's argument."""
    from tests.helpers.custom_models import WideLeNet

    path = tmp_path / "wide.ckpt"
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.strategy.connect(WideLeNet(width=32))
    trainer.save_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"does not rebuild zoo.models.LeNet \(entry 'lenet_mnist'\) \(the "
                                              r"checkpoint names no model class: it was saved by a Trainer of your "
                                              r"own, not `zoo fit`, .*load_from_checkpoint.*width"):
        hub.load_checkpoint("lenet_mnist", str(path))


def test_a_checkpoint_names_where_its_data_is_read_from_unless_the_data_is_embedded(tmp_path, capsys):
    """``load_checkpoint`` says which folder a checkpoint's datamodule reads; MNIST-mini comes with the package,
    so no folder is named for it (its ``root`` chooses nothing)."""
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.strategy.connect(LeNet())
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=True)
    for dm_cls, expect_note in (("EmbeddedMNISTDataModule", False), ("MNISTDataModule", True)):
        # what `zoo fit` records of its datamodule
        checkpoint["datamodule_hyper_parameters"] = {"_class_path": f"datamodules.mnist.{dm_cls}",
                                                     "root": str(tmp_path / "data")}
        torch.save(checkpoint, tmp_path / "model.ckpt")
        hub.load_checkpoint("lenet_mnist", str(tmp_path / "model.ckpt"))
        assert ("reading" in capsys.readouterr().err) is expect_note, dm_cls
