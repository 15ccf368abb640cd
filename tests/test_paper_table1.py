"""scripts/reproductions/paper_table1.py: where it finds runs, which epoch each statistic measures, mean +- SD."""

from __future__ import annotations

import json

import pytest

from scripts.reproductions import paper_table1


def test_results_of_reads_the_newest_results_json(tmp_path):
    run = paper_table1.run_dir(tmp_path, "sparse_cnn2_mnist", 1)
    assert run == tmp_path / "sparse_cnn2_mnist" / "seed1" and paper_table1.results_of(run) is None
    (run / "lightning_logs" / "version_0").mkdir(parents=True)
    (run / "lightning_logs" / "version_0" / "results.json").write_text(json.dumps({"best_checkpoint": "a.ckpt"}))
    assert paper_table1.results_of(run) == {"best_checkpoint": "a.ckpt"}


def test_table_gives_mean_and_sd_over_seeds_beside_the_paper():
    measured = {"sparse_cnn2_mnist": [{"acc": 99.0, "noise_score": 104_000}, {"acc": 98.8, "noise_score": 103_000}]}
    text = paper_table1.table(measured, markdown=True)
    row = next(line for line in text.splitlines() if line.startswith("| Sparse CNN-2"))
    assert "| 2 | 98.90 +- 0.14 | 99.09 | 103,500 +- 707 | 103,764 |" in row
    assert "99.00 / 104,000, 98.80 / 103,000" in row
    assert "| Dense CNN-1 | 0 | - | 99.14 | - | 74,569 | not trained |" in text
    only = paper_table1.table(measured, markdown=True, entries=["sparse_cnn2_mnist"])
    assert "Sparse CNN-2" in only and "CNN-1" not in only and "Dense" not in only


def test_best_test_takes_each_seeds_first_best_epoch_and_the_population_sd(tmp_path):
    """The authors' statistic: the epoch with the best clean test accuracy (the first on ties), its noise score."""
    directory = tmp_path / "sparse_cnn2_mnist" / "seed0"
    checkpoints = directory / "lightning_logs" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    accuracies = {0: 98.0, 1: 99.1, 2: 98.9, 10: 99.1, 11: 99.0}  # epoch 10 sorts after 2, not after 1
    cache = {}
    for epoch, acc in accuracies.items():
        path = checkpoints / f"epoch-{epoch}-{100 * (epoch + 1)}.ckpt"
        path.touch()  # never loaded: every figure is in the cache below
        cache[str(path)] = {"acc": acc, "noise_score": 100_000 + epoch}
    (directory / "table1_figures.json").write_text(json.dumps(cache))
    results = {"last_checkpoint": str(checkpoints / "last.ckpt")}

    names = [path.name for path in paper_table1.epoch_checkpoints(results)]
    assert names[-2:] == ["epoch-10-1100.ckpt", "epoch-11-1200.ckpt"]
    best = paper_table1.seed_figures("sparse_cnn2_mnist", directory, results, "best_test")
    assert best == {"acc": 99.1, "noise_score": 100_001, "epoch": 1, "last_acc": 99.0}

    measured = {"sparse_cnn2_mnist": [best, {**best, "acc": 98.9, "noise_score": 100_003}]}
    row = next(line for line in paper_table1.table(measured, True, "best_test").splitlines() if "Sparse CNN-2" in line)
    assert "| 99.00 +- 0.10 |" in row and "| 100,002 +- 1 |" in row  # np.std: population SD
    assert "99.10 / 100,001 (epoch 1)" in row


def test_best_test_needs_every_epochs_checkpoint(tmp_path):
    directory = tmp_path / "dense_cnn2_mnist" / "seed0"
    (directory / "checkpoints").mkdir(parents=True)
    results = {"last_checkpoint": str(directory / "checkpoints" / "last.ckpt")}
    with pytest.raises(SystemExit, match="needs every epoch's checkpoint.*--fit"):
        paper_table1.seed_figures("dense_cnn2_mnist", directory, results, "best_test")


def test_fit_keeps_every_epoch_and_both_statistics_measure_it(tmp_path, mnist_root, capsys):
    """``--fit`` trains a seed keeping each epoch's checkpoint; ``last`` and ``best_test`` then read the same run."""
    fit_args = ["--data.init_args.root", str(mnist_root), "--trainer.max_epochs", "2",
                "--trainer.limit_train_batches", "3"]
    common = ["--runs", str(tmp_path), "--seeds", "0", "--entries", "sparse_cnn2_mnist"]
    assert paper_table1.main([*common, "--statistic", "best_test", "--fit", "--fit_args", *fit_args]) == 0
    found = sorted(p.name for p in tmp_path.glob("sparse_cnn2_mnist/seed0/**/epoch-*.ckpt"))
    assert found == ["epoch-0-3.ckpt", "epoch-1-6.ckpt"]
    assert "test acc per epoch: " in capsys.readouterr().out
    assert paper_table1.main([*common, "--statistic", "last"]) == 0  # the cached last epoch, nothing refitted
    figures = json.loads((tmp_path / "sparse_cnn2_mnist" / "seed0" / "table1_figures.json").read_text())
    assert sum("noise_score" in f for f in figures.values()) >= 1 and len(figures) >= 2
