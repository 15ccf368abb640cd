"""Every shipped weight file loads, passes its hash check and re-measures its manifest metrics on real data."""

from __future__ import annotations

import math

import pytest

from tests.helpers import real_data_dir
from zoo import evaluation, hub, registry

SHIPPED = [name for name, entry in registry.entries().items() if entry.manifest_path.exists()]


def test_shipped_weights_stay_small():
    total = sum(registry.entries()[name].weights_path.stat().st_size for name in SHIPPED)
    assert total < 150 * 10**6, f"shipped weights take {total / 10**6:.1f} MB; the budget is 150 MB"


@pytest.mark.parametrize("entry", SHIPPED)
def test_manifest_is_complete_and_hash_matches(entry):
    manifest = registry.get(entry).manifest()
    for key in ("model_class", "hparams", "datamodule_class", "datamodule", "data", "metrics", "sha256", "command"):
        assert getattr(manifest, key) not in (None, "", {}), f"{entry}: manifest lacks {key}"
    assert manifest.command.split("zoo fit", 1)[-1].split()[:2] == ["-c", entry]
    assert hub.sha256(registry.get(entry).weights_path) == manifest.sha256
    if manifest.backbone_files and real_data_dir() is None:
        pytest.skip(f"{entry} builds its backbone from files in ZOO_DATA_DIR: set it to load the entry")
    hub.load(entry)  # checks the sha256 and the keys


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("entry", SHIPPED)
def test_shipped_weights_reach_their_manifest_metrics(entry, real_data):
    measured, recorded = evaluation.evaluate(entry)
    compared = [key for key in recorded if key in measured]
    assert compared, f"{entry}: no manifest metric is re-measured by trainer.test"
    for key in compared:
        assert math.isclose(measured[key], recorded[key], rel_tol=1e-3, abs_tol=1e-4), (
            f"{entry}: {key} measured {measured[key]:.5f}, manifest says {recorded[key]:.5f}"
        )
