"""scripts/reproductions/paper_table1.py: where it finds runs, the mean +- SD it prints beside the paper's Table 1."""

from __future__ import annotations

import json

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
