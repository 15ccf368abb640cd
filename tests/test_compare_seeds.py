"""scripts/reproductions/compare_seeds.py: the statistics, the seed syntax, and a whole study on tiny data (resume,
refusals)."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.reproductions.compare_seeds import compare, parse_seeds
from tests.helpers import REPO, ok


def test_compare_gives_the_difference_its_standard_errors_and_wins():
    result = compare([1.0, 2.0, 3.0], [0.0, 2.0, 1.0])
    assert result.difference == pytest.approx(1.0)
    assert result.standard_error == pytest.approx(math.sqrt(1 / 3 + 1 / 3))  # both sample variances are 1
    assert result.paired_standard_error == pytest.approx(1 / math.sqrt(3))  # differences 1, 0, 2
    assert (result.wins, result.ties) == (2, 1)
    assert compare([1.0, 2.0, 3.0], [0.0, 2.0, 1.0], higher_is_better=False).wins == 0


def test_compare_needs_paired_seeds():
    with pytest.raises(ValueError, match="equally long"):
        compare([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2"):
        compare([1.0], [2.0])


def test_seed_syntax():
    assert parse_seeds("0-2,9") == [0, 1, 2, 9]
    assert parse_seeds("4") == [4]
    for bad in ("a-b", "0-2,1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_seeds(bad)


def study(*args: str, data_root: Path) -> subprocess.CompletedProcess:
    """Run ``python -m scripts.reproductions.compare_seeds`` with ``ZOO_DATA_DIR=data_root``."""
    env = {**os.environ, "ZOO_DATA_DIR": str(data_root), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "scripts.reproductions.compare_seeds", *args], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=600,
    )


@pytest.mark.slow
def test_study_trains_compares_resumes_and_refuses_mixed_arguments(mnist_root, tmp_path):
    entries = ["lenet_fashion_mnist", "mlp_fashion_mnist"]
    fast = ["--", "--trainer.max_epochs", "2", "--trainer.enable_model_summary", "false"]
    options = [*entries, "--seeds", "3-4", "--out", str(tmp_path), "--jobs", "2", "--threads", "1"]
    args = [*options, *fast]

    first = ok(study(*args, data_root=mnist_root))
    assert "0 of 4 runs already done; training 4" in first.stdout
    for entry in entries:
        for seed in (3, 4):
            results = json.loads((tmp_path / entry / f"seed{seed}.json").read_text())
            assert results["seed"] == seed and results["epochs"] == 2 and results["monitor"] == "val/acc"
            assert results["fit_args"] == fast[1:]
            assert 0.0 <= results["test"]["test/acc"] <= 1.0
            assert Path(results["best_checkpoint"]).is_relative_to(tmp_path / entry / f"seed{seed}")
            assert Path(results["best_checkpoint"]).exists()
    table = first.stdout[first.stdout.index("| side |"):]
    assert "| lenet_fashion_mnist | 2 | val/acc: " in table and "| mlp_fashion_mnist | 2 | val/acc: " in table
    assert "| lenet_fashion_mnist - mlp_fashion_mnist | standard error | paired by seed |" in table
    assert table.splitlines()[2].endswith(" s |")  # mean fit time

    again = ok(study(*args, data_root=mnist_root))  # nothing is trained again, and the table is the same
    assert "4 of 4 runs already done; training 0" in again.stdout
    assert again.stdout[again.stdout.index("| side |"):] == table

    # a metric the runs lack is named from the kept results, with nothing trained
    no_metric = study(*options, "--metric", "test/f1", *fast, data_root=mnist_root)
    assert no_metric.returncode != 0 and "0 of 4" not in no_metric.stdout
    assert "no test metric 'test/f1'; it has ['test/acc', 'test/loss']" in no_metric.stderr

    mixed = study(*args[:-1], "true", data_root=mnist_root)  # other zoo fit arguments into the same study directory
    assert mixed.returncode != 0
    assert "give another --out, or delete that file" in mixed.stderr

    unknown = study("lenet_fashion_mnist", "no_such_entry", "--out", str(tmp_path / "u"), data_root=mnist_root)
    assert unknown.returncode != 0 and "no_such_entry" in unknown.stderr
    assert not (tmp_path / "u").exists()


@pytest.mark.slow
def test_two_settings_of_one_entry(mnist_root, tmp_path):
    same = ["lenet_fashion_mnist", "lenet_fashion_mnist", "--seeds", "0-1", "--out", str(tmp_path), "--jobs", "2"]
    unnamed = study(*same, "--args-a=--model.init_args.lr 0.05", data_root=mnist_root)
    assert unnamed.returncode != 0 and "name them with --names" in unnamed.stderr
    identical = study(*same, "--names", "a", "b", data_root=mnist_root)
    assert identical.returncode != 0 and "give them different --args-a/-b" in identical.stderr

    proc = ok(study(*same, "--names", "fast", "base", "--args-a=--model.init_args.lr 0.05", "--",
                    "--trainer.max_epochs", "1", data_root=mnist_root))
    assert "fast = zoo fit -c lenet_fashion_mnist --model.init_args.lr 0.05" in proc.stdout
    assert "| fast - base | standard error |" in proc.stdout
    fast = json.loads((tmp_path / "fast" / "seed1.json").read_text())
    base = json.loads((tmp_path / "base" / "seed1.json").read_text())
    assert fast["fit_args"] == ["--model.init_args.lr", "0.05", "--trainer.max_epochs", "1"]
    assert base["fit_args"] == ["--trainer.max_epochs", "1"]
    saved = (tmp_path / "fast" / "seed1").rglob("config.yaml")
    assert yaml.safe_load(next(saved).read_text())["model"]["init_args"]["lr"] == 0.05
