"""One test per zoo entry, driven by the registry: a new YAML in zoo/configs is tested here with no other file
touched. Family test files keep only behaviour.

For every entry of :mod:`zoo.registry`:

- its name says its dataset (``<model>_<dataset>``, the dataset served by its datamodule);
- its config parses and ``--print_config`` round-trips;
- its model builds from the config and runs one validation step on a batch of its own datamodule, read from a tiny
  ``ZOO_DATA_DIR`` laid out as the real one (:func:`tests.helpers.write_data_dir`): the datamodule's batches fit the
  model;
- (``slow``) ``zoo fit -c <entry> --trainer.fast_dev_run true`` runs on the same tiny data.

Shipped weights are checked per shipped entry in ``tests/test_shipped_weights.py`` (manifest, hash, size budget,
and their metrics re-measured on the real data).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import ok, run_zoo, write_data_dir
from tests.helpers.models import build, printed_config, small_data, untrained_model_of, without_data_files
from zoo import registry

ENTRIES = list(registry.entries())
#: dataset suffix of an entry name -> the datamodule classes that may serve it
DATASETS = {
    "mnist_mini": ("EmbeddedMNISTDataModule",),
    "mnist5k": ("MNISTDataModule", "BinarizedMNISTDataModule"),
    "mnist": ("MNISTDataModule", "BinarizedMNISTDataModule"),
    "fashion_mnist": ("FashionMNISTDataModule", "BinarizedFashionMNISTDataModule"),
    "moving_mnist5k": ("MovingMNISTDataModule",),
    "moving_mnist": ("MovingMNISTDataModule",),
    "cifar10": ("CIFAR10DataModule",),
    "dogs_vs_cats": ("DogsVsCatsDataModule",),
    "airline": ("AirlinePassengersDataModule",),
    "sonnet2": ("ShakespeareTrigramDataModule",),
    "sonnets": ("ShakespeareTrigramDataModule",),
    "ud_ewt": ("UDPosDataModule",),
    "book": ("BookPointsDataModule", "PolynomialDataModule"),
    "blobs": ("TwoBlobsDataModule",),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``ZOO_DATA_DIR``: every dataset an entry reads from files, a few items each."""
    return write_data_dir(tmp_path_factory.mktemp("zoo_data_dir"))


# ------------------------------------------------------------------------------------- the checks, one entry each
def check_name_says_its_dataset(entry: str) -> None:
    datamodule = registry.get(entry).datamodule_class.rsplit(".", 1)[-1]
    suffix = next((s for s in sorted(DATASETS, key=len, reverse=True) if entry.endswith("_" + s)), None)
    assert suffix is not None, f"{entry}: name it <model>_<dataset> with a dataset of {sorted(DATASETS)}"
    assert datamodule in DATASETS[suffix], f"{entry}: a *_{suffix} entry on {datamodule}"


def check_print_config_round_trips(entry: str, tmp_path: Path) -> None:
    config = printed_config("-c", entry)
    assert config["model"]["class_path"].endswith(registry.get(entry).model_class.rsplit(".", 1)[-1])
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config))
    assert printed_config("-c", str(saved)) == config


def check_one_batch_of_its_datamodule(entry: str) -> None:
    """The model of the config, built (backbone files under ``$ZOO_DATA_DIR`` left out: random weights), runs a
    validation step on the first validation batch (a test batch where there is none) of the config's datamodule,
    shrunk to batches of 2, and what it logs is finite. Call with ``ZOO_DATA_DIR`` set and the working directory a
    temporary one."""
    config = registry.get(entry).config
    model = untrained_model_of(entry, **without_data_files(config["model"])).eval()
    datamodule = build(config["data"], **small_data(config["data"]))
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()), None)
    if batch is None:  # a config that validates on nothing (``val_fraction: 0``): a test batch, of the same shape
        datamodule.setup("test")
        batch = next(iter(datamodule.test_dataloader()))
    batch = datamodule.on_after_batch_transfer(batch, 0)
    logged: dict[str, torch.Tensor] = {}
    model.log = lambda name, value, *args, **kwargs: logged.setdefault(name, torch.as_tensor(value))
    with torch.no_grad():
        model.validation_step(batch, 0)
    assert logged, f"{entry}: the validation step logged nothing"
    assert all(bool(torch.isfinite(value).all()) for value in logged.values()), f"{entry}: {logged}"


def fast_dev_run(entry: str, data_dir: Path, tmp_path: Path, *extra: str):
    """``zoo fit -c <entry> --trainer.fast_dev_run true`` in ``tmp_path`` on the tiny data (batches of 2, backbone
    files left out)."""
    config = registry.get(entry).config
    overrides = [*(f"--data.init_args.{k}={json.dumps(v)}" for k, v in small_data(config["data"]).items()),
                 *(f"--model.init_args.{k}={json.dumps(v)}" for k, v in without_data_files(config["model"]).items())]
    return run_zoo("fit", "-c", entry, *overrides, *extra, "--trainer.fast_dev_run", "true",
                   "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                   cwd=tmp_path, env={"ZOO_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}, timeout=600)


# ------------------------------------------------------------------------------------------- over every entry
@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_name_says_its_dataset(entry):
    check_name_says_its_dataset(entry)


@pytest.mark.parametrize("entry", ENTRIES)
def test_config_parses_and_print_config_round_trips(entry, tmp_path):
    check_print_config_round_trips(entry, tmp_path)


@pytest.mark.parametrize("entry", ENTRIES)
def test_model_runs_a_batch_of_its_datamodule(entry, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)  # anything a model or datamodule writes (a feature cache) stays out of the repository
    check_one_batch_of_its_datamodule(entry)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES)
def test_fast_dev_run_of_the_config(entry, data_dir, tmp_path):
    proc = fast_dev_run(entry, data_dir, tmp_path)
    # sizes that the data decides (a tagger's vocabularies) differ on the tiny data; the error names the arguments
    named = re.search(r"does not fit the datamodule's \w+; set ((?:--model\.init_args\.\w+ \d+(?: and )?)+)", proc.stderr)
    if proc.returncode != 0 and named:
        fixes = [f"{name}={value}" for name, value in re.findall(r"(--model\.init_args\.\w+) (\d+)", named.group(1))]
        proc = fast_dev_run(entry, data_dir, tmp_path, *fixes)
    ok(proc)
    if registry.get(entry).config.get("test_after_fit"):
        assert "test/" in proc.stdout, f"{entry}: test_after_fit is set but no test metric was printed"


# ------------------------------------------------------------------------------------------- a new entry
def test_a_new_yaml_is_an_entry_that_these_checks_cover(data_dir, tmp_path, monkeypatch):
    """An existing model on another datamodule is one YAML file: the registry lists it, and the checks above pass
    for it with no other file touched (here the config folder is a temporary one holding only the new YAML)."""
    configs = tmp_path / "configs"
    configs.mkdir()
    config = yaml.safe_load(registry.get("lenet_mnist").config_path.read_text())
    config["model"]["init_args"].update(in_channels=3, image_size=32)
    config["data"] = {"class_path": "datamodules.CIFAR10DataModule", "init_args": {"root": "$ZOO_DATA_DIR"}}
    (configs / "lenet_cifar10.yaml").write_text("# LeNet-5 on CIFAR-10\n" + yaml.safe_dump(config))
    monkeypatch.setattr(registry, "CONFIG_DIR", configs)
    assert list(registry.entries()) == ["lenet_cifar10"]
    monkeypatch.setenv("ZOO_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    check_name_says_its_dataset("lenet_cifar10")
    check_print_config_round_trips("lenet_cifar10", tmp_path)
    check_one_batch_of_its_datamodule("lenet_cifar10")

