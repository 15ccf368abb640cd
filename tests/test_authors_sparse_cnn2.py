"""scripts/reproductions/authors_sparse_cnn2.py: the notebook's loop around a nupic.torch checkout (a stand-in one
here, written in the checkout's layout), the per-seed records, resuming and the table's statistics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from scripts.reproductions import authors_sparse_cnn2 as authors

STAND_IN_MODELS = """
from torch import nn
BUILT = []
class Gain(nn.Module):
    # a plain float attribute that changes the outputs, as nupic.torch's boost strength does
    def __init__(self):
        super().__init__()
        self.strength = 1.0
    def forward(self, x):
        return x * self.strength
class MNISTSparseCNN(nn.Sequential):
    def __init__(self):
        BUILT.append(self)
        super().__init__(nn.Flatten(), nn.Linear(784, 10), Gain(), nn.LogSoftmax(dim=1))
"""
STAND_IN_MODULES = """
CALLS = {"rezero": [], "boost": []}
def rezero_weights(m):
    CALLS["rezero"].append((type(m).__name__, m.training))
def update_boost_strength(m):
    CALLS["boost"].append((type(m).__name__, m.training))
    if hasattr(m, "strength"):
        m.strength *= 0.5
"""


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A nupic.torch checkout in the src/ layout whose model is a linear softmax; imported fresh, then forgotten."""
    package = tmp_path / "nupic.torch" / "src" / "nupic" / "torch"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(STAND_IN_MODELS)
    (package / "modules.py").write_text(STAND_IN_MODULES)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [n for n in sys.modules if n == "nupic" or n.startswith("nupic.")]:
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path / "nupic.torch"
    for name in [n for n in sys.modules if n == "nupic" or n.startswith("nupic.")]:
        del sys.modules[name]


def test_a_folder_without_nupic_torch_is_refused_with_the_fix(tmp_path):
    with pytest.raises(SystemExit, match=r"no nupic/torch package.*git clone https://github.com/numenta/nupic.torch"):
        authors.import_nupic_torch(tmp_path)


def test_seeds_are_trained_with_the_notebooks_loop_recorded_and_not_trained_again(checkout, mnist_root, tmp_path,
                                                                                  capsys):
    runs = tmp_path / "runs"
    argv = ["--nupic_torch", str(checkout), "--runs", str(runs), "--seeds", "0-1", "--epochs", "3",
            "--data", str(mnist_root)]
    assert authors.main(argv) == 0
    models, modules = sys.modules["nupic.torch.models"], sys.modules["nupic.torch.modules"]
    assert len(models.BUILT) == 2
    # after every epoch, in training mode, on every submodule (``apply``: the three layers, then the Sequential)
    assert modules.CALLS["rezero"] == modules.CALLS["boost"] == [(name, True) for name in
                                                                 ["Flatten", "Linear", "Gain", "LogSoftmax",
                                                                  "MNISTSparseCNN"]] * 6
    for seed in (0, 1):
        record = json.loads((runs / f"seed{seed}.json").read_text())
        history = record["history"]
        assert [h["epoch"] for h in history] == [0, 1, 2] and record["seed"] == seed
        assert all(0 <= h["acc"] <= 100 for h in history)
        assert "noise_score" in history[0] and "noise_score" in history[-1]  # the first epoch and the last
        for h in history:
            best_so_far = h["acc"] >= max(x["acc"] for x in history[:h["epoch"] + 1])
            assert ("noise_score" in h) == (best_so_far or h["epoch"] == 2)
            if "noise_score" in h:
                assert h["noise_score"] == sum(h["per_eta"].values()) and len(h["per_eta"]) == 11
                assert h["per_eta"]["0.0"] == round(h["acc"])  # 100 fixture test images: correct = acc %
    printed = capsys.readouterr().out
    assert printed.count("MNISTSparseCNN(") == 2  # each seed shows the model it trains
    assert "| Sparse CNN-2, nupic.torch | 2 |" in printed and "(epoch " in printed
    # resuming: finished seeds are read back, not trained again; the other statistic reads the same records
    assert authors.main(argv + ["--statistic", "last"]) == 0
    assert len(models.BUILT) == 2
    assert "(epoch " not in capsys.readouterr().out.split("| net |")[1]


def test_a_seed_stopped_mid_run_resumes_exactly_after_its_last_saved_epoch(checkout, mnist_root, tmp_path,
                                                                          monkeypatch, capsys):
    def run(runs):
        assert authors.main(["--nupic_torch", str(checkout), "--runs", str(runs), "--seeds", "0", "--epochs", "3",
                             "--data", str(mnist_root)]) == 0
        state = torch.load(runs / "seed0.state.pt", weights_only=True)
        figures = [{k: v for k, v in h.items() if k != "seconds"} for h in state["record"]["history"]]
        return figures, state

    straight, straight_state = run(tmp_path / "straight")
    saved, save_progress = [], authors.save_progress

    def save_then_stop_after_epoch_1(out, record, state):
        save_progress(out, record, state)
        saved.append(len(record["history"]))
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(authors, "save_progress", save_then_stop_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    monkeypatch.setattr(authors, "save_progress", save_progress)
    stopped = json.loads((tmp_path / "resumed" / "seed0.json").read_text())
    assert [h["epoch"] for h in stopped["history"]] == [0, 1]
    capsys.readouterr()
    resumed, resumed_state = run(tmp_path / "resumed")
    assert "seed 0: resuming after epoch 1 from" in capsys.readouterr().out
    assert resumed == straight  # the same accuracy and noise figures in every epoch
    assert resumed_state["module_numbers"][""] == straight_state["module_numbers"][""]
    assert resumed_state["module_numbers"]["2"]["strength"] == straight_state["module_numbers"]["2"]["strength"]
    assert resumed_state["module_numbers"]["2"]["strength"] == 0.125  # halved after each of the 3 epochs
    for name, tensor in straight_state["model"].items():
        assert torch.equal(resumed_state["model"][name], tensor), name
    assert torch.equal(resumed_state["rng"]["torch"], straight_state["rng"]["torch"])


def test_a_state_file_that_is_corrupt_or_of_another_run_is_refused_and_kept(checkout, mnist_root, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    argv = ["--nupic_torch", str(checkout), "--runs", str(runs), "--seeds", "0", "--epochs", "3",
            "--data", str(mnist_root)]
    state_path = runs / "seed0.state.pt"
    state_path.write_bytes(b"not a state")
    with pytest.raises(SystemExit, match=r"seed0.state.pt is not a training state.*delete it to train this seed"):
        authors.main(argv)
    assert state_path.read_bytes() == b"not a state"
    torch.save({"record": {"seed": 0, "epochs": 15, "history": []}}, state_path)
    with pytest.raises(SystemExit, match=r"holds seed 0 of 15 epochs, not seed 0 of 3: pass another --runs"):
        authors.main(argv)
    assert torch.load(state_path, weights_only=True)["record"]["epochs"] == 15


def test_a_missing_dataset_and_a_run_of_other_length_are_refused_with_the_fix(checkout, tmp_path):
    with pytest.raises(SystemExit, match=r"MNIST not found under .*point ZOO_DATA_DIR at a folder holding MNIST/raw/"):
        authors.mnist_tensors(tmp_path / "empty", train=True)
    runs = tmp_path / "runs"
    runs.mkdir()
    finished = {"seed": 0, "epochs": 15, "history": [{"epoch": e, "acc": 99.0, "noise_score": 1} for e in range(15)]}
    (runs / "seed0.json").write_text(json.dumps(finished))
    with pytest.raises(SystemExit, match=r"a run of 15 epochs, not --epochs 10: pass --epochs 15, or another --runs"):
        authors.main(["--nupic_torch", str(checkout), "--runs", str(runs), "--seeds", "0", "--epochs", "10"])
    assert json.loads((runs / "seed0.json").read_text()) == finished  # kept as it was


def test_the_best_test_epoch_is_the_first_best_and_the_sd_follows_the_statistic():
    def record(accs, scores):
        return {"history": [{"epoch": e, "acc": a, "noise_score": s} for e, (a, s) in enumerate(zip(accs, scores))]}

    first, second = record([98.0, 99.0, 99.0], [1, 2, 3]), record([99.5, 98.0, 97.0], [10, 20, 30])
    assert authors.seed_figures(first, "best_test")["epoch"] == 1
    assert authors.seed_figures(first, "last")["noise_score"] == 3
    row = authors.table([first, second], "best_test").splitlines()[-1]
    assert "| 99.25 +- 0.25 |" in row  # population SD of 99.0 and 99.5
    assert "99.00 / 2 (epoch 1), 99.50 / 10 (epoch 0)" in row
    assert "| 98.00 +- 1.41 |" in authors.table([first, second], "last")  # sample SD of 99.0 and 97.0


def test_noisy_test_sets_set_the_paper_protocols_pixel_count_and_repeat_per_seed():
    images = torch.zeros(5, 1, 28, 28)
    sets = authors.noisy_test_sets(images, seed=3)
    noise = (authors.NOISE_VALUE - authors.MEAN) / authors.STD
    for eta, noisy in sets.items():
        assert noisy.shape == images.shape
        counts = torch.isclose(noisy, torch.tensor(noise)).flatten(1).sum(1)
        assert counts.tolist() == [int(784 * eta)] * 5
    assert torch.equal(sets[0.0], (images - authors.MEAN) / authors.STD)
    again = authors.noisy_test_sets(images, seed=3)
    assert all(torch.equal(sets[eta], again[eta]) for eta in sets)
    assert not torch.equal(authors.noisy_test_sets(images, seed=4)[0.5], sets[0.5])
