"""One test per zoo entry, driven by the registry: a new YAML in zoo/configs is tested here with no other file
touched. Family test files keep only behaviour."""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from conftest import untrained_model_of
from zoo import registry
from zoo.lightning_cli import cli_main

ENTRIES = list(registry.entries())
#: dataset suffix of an entry name -> the datamodule classes that may serve it
DATASETS = {
    "mnist_mini": ("EmbeddedMNISTDataModule",),
    "mnist5k": ("MNISTDataModule", "BinarizedMNISTDataModule"),
    "mnist": ("MNISTDataModule", "BinarizedMNISTDataModule"),
    "fashion_mnist": ("FashionMNISTDataModule", "BinarizedFashionMNISTDataModule"),
    "moving_mnist5k": ("MovingMNISTDataModule",),
    "cifar10": ("CIFAR10DataModule",),
    "dogs_vs_cats": ("DogsVsCatsDataModule",),
    "airline": ("AirlinePassengersDataModule",),
    "sonnet2": ("ShakespeareTrigramDataModule",),
    "sonnets": ("ShakespeareTrigramDataModule",),
    "ud_ewt": ("UDPosDataModule",),
    "book": ("BookPointsDataModule", "PolynomialDataModule"),
    "blobs": ("TwoBlobsDataModule",),
}


def printed_config(entry: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "-c", entry, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_name_says_its_dataset(entry):
    datamodule = registry.get(entry).datamodule_class.rsplit(".", 1)[-1]
    suffix = next((s for s in sorted(DATASETS, key=len, reverse=True) if entry.endswith("_" + s)), None)
    assert suffix is not None, f"{entry}: name it <model>_<dataset> with a dataset of {sorted(DATASETS)}"
    assert datamodule in DATASETS[suffix], f"{entry}: a *_{suffix} entry on {datamodule}"


@pytest.mark.parametrize("entry", ENTRIES)
def test_config_parses_and_print_config_round_trips(entry, tmp_path):
    config = printed_config(entry)
    assert config["model"]["class_path"].endswith(registry.get(entry).model_class.rsplit(".", 1)[-1])
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config))
    assert printed_config(str(saved)) == config


@pytest.mark.parametrize("entry", ENTRIES)
def test_model_builds_from_its_config(entry, request):
    init_args = registry.get(entry).config["model"].get("init_args", {})
    if any("$ZOO_DATA_DIR" in str(value) for value in init_args.values()):
        request.getfixturevalue("real_data")  # a backbone file under ZOO_DATA_DIR is read at construction
    model = untrained_model_of(entry)
    assert sum(p.numel() for p in model.parameters()) > 0
