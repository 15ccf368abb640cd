"""``scripts/maintenance/restore_half.py``: weights re-stored in half precision, every manifest metric (the sparse
nets' noise score too) measured from the stored file, and nothing replaced when a guarded metric falls too far."""

from __future__ import annotations

import json

import lightning as L
import pytest

from datamodules import MNISTDataModule
from scripts.maintenance import restore_half
from scripts.reproductions import noise_robustness
from zoo import export, registry
from zoo.models import SparseCNN

ENTRY = "sparse_cnn2_mnist5k"


@pytest.fixture
def exported_sparse(mnist_root, tmp_path, monkeypatch):
    """A Sparse CNN-2 trained for a few steps on the fixture digits, exported as ``sparse_cnn2_mnist5k`` with the
    noise score and accuracy at eta 0.5 that ``noise_robustness --export`` records."""
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "shipped"))
    L.seed_everything(0)
    model, datamodule = SparseCNN(lr=0.02), MNISTDataModule(root=str(mnist_root), batch_size=32)
    trainer = L.Trainer(max_steps=4, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1)
    trainer.fit(model, datamodule=datamodule)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    subject = noise_robustness.from_checkpoint(ENTRY, str(ckpt))
    rows = noise_robustness.noise_curves([subject], protocols=("paper",))
    export.export(ENTRY, str(ckpt), fit_command=f"zoo fit -c {ENTRY}",
                  extra_metrics=noise_robustness.manifest_metrics(rows, ENTRY))
    return tmp_path / "shipped"


def manifest(shipped):
    return json.loads((shipped / f"{ENTRY}.json").read_text())


def test_the_stored_file_gives_every_metric_noise_score_included(exported_sparse):
    before = manifest(exported_sparse)
    stale = {**before, "metrics": {**before["metrics"], "noise_score": -1.0}}  # a figure only a re-measure replaces
    (exported_sparse / f"{ENTRY}.json").write_text(json.dumps(stale))
    assert restore_half.restore(ENTRY, "float16", tolerance=1.0, dry_run=False)
    after = manifest(exported_sparse)
    assert after["stored_dtype"] == "float16" and after["file_size"] < before["file_size"]
    assert "Re-stored in float16" in after["notes"]
    # the figures a fresh measurement of the float16 file gives, not the float32 ones carried over
    shipped = noise_robustness.from_shipped(ENTRY)
    rows = noise_robustness.noise_curves([shipped], protocols=("paper",))
    assert {key: after["metrics"][key] for key in ("noise_score", "acc_eta_0.5")} == \
        noise_robustness.manifest_metrics(rows, ENTRY)


def test_a_fall_beyond_the_tolerance_replaces_nothing(exported_sparse):
    before = (exported_sparse / f"{ENTRY}.safetensors").read_bytes(), manifest(exported_sparse)
    assert not restore_half.restore(ENTRY, "float16", tolerance=-1.0, dry_run=False)  # any result is "too far"
    assert (exported_sparse / f"{ENTRY}.safetensors").read_bytes() == before[0]
    assert manifest(exported_sparse) == before[1]
