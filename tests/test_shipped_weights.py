"""Every shipped weight file loads, passes its hash check and re-measures its manifest metrics on real data."""

from __future__ import annotations

import inspect
import json
import math
import shlex

import pytest

from tests.helpers import real_data_dir
from tests.helpers.models import build, constructor_default, printed_config
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


def as_json(value):
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("entry", SHIPPED)
def test_recorded_command_rebuilds_the_shipped_hparams(entry):
    """The manifest's ``zoo fit`` command, parsed against today's config, gives the model and datamodule
    arguments the weights were trained with: a config edited after its weights shipped must not leave a command
    that no longer reproduces them."""
    manifest = registry.get(entry).manifest()
    words = shlex.split(manifest.command)
    args = words[words.index("fit", words.index("zoo")) + 1:]
    config = printed_config(*args)
    model_args = config["model"].get("init_args", {})
    differing = {key: (model_args[key], value) for key, value in as_json(manifest.hparams).items()
                 if key in model_args and as_json(model_args[key]) != value}
    if differing:  # a constructor may fix an argument itself (LogisticRegression's num_classes): build and look
        built = build(config["model"]).hparams
        differing = {key: (built[key], value) for key, value in as_json(manifest.hparams).items()
                     if as_json(built.get(key)) != value}
    assert not differing, f"{entry}: its recorded command gives (command, manifest): {differing}"
    # an argument added to the model after the weights shipped is rebuilt at its default by zoo.load: the command
    # must give that default too
    unrecorded = {key: (value, constructor_default(manifest.model_class, key)) for key, value in model_args.items()
                  if key not in manifest.hparams}
    differing = {key: (value, default) for key, (value, default) in unrecorded.items()
                 if default is not inspect.Parameter.empty and as_json(value) != as_json(default)}
    assert not differing, f"{entry}: its recorded command gives (command, the default it loads with): {differing}"
    data_args = config["data"].get("init_args", {})
    differing = {key: (data_args[key], value) for key, value in as_json(manifest.datamodule).items()
                 if key in data_args and key != "root" and as_json(data_args[key]) != value}
    assert not differing, f"{entry}: its recorded command gives the datamodule (command, manifest): {differing}"


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
