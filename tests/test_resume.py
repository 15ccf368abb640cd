"""Exact resume (issue 21): SIGKILL and SIGTERM of a real ``zoo fit``, mid-epoch checkpoints, the run directory."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scripts.reproductions import kill_resume_trials as trials
from tests.helpers import REPO, ok, run_script, run_zoo, subprocess_env
from zoo import resume
from zoo.callbacks import ZooCheckpoint

# a small BookCNN (batch norm, dropout, step LR) on MNIST-mini with the batch-wise jitter: 2 epochs of 25 steps
EPOCHS, EVERY = 2, 7


def killed(root: Path, moment: str, count: int, signal: str = "SIGKILL", *options: str) -> int:
    """Run the trial command (plus ``options``) with a KillAt callback; returns the exit status."""
    command = trials.fit_command(trials.DEFAULT_RUN, root, EPOCHS, EVERY) + list(options)
    extra = [f"--trainer.callbacks+={trials.KILL_AT}", "--trainer.callbacks.moment", moment,
             "--trainer.callbacks.count", str(count), "--trainer.callbacks.signal", signal]
    return subprocess.run(command + extra, env=trials.environment(), cwd=REPO, capture_output=True).returncode


def resumed(root: Path) -> None:
    trials.run_to_end(trials.fit_command(trials.DEFAULT_RUN, root, EPOCHS, EVERY) + ["--ckpt_path", "last"],
                      root.parent / f"{root.name}.log")


def saved_step(root: Path) -> int:
    return int(torch.load(trials.last_checkpoint(root), map_location="cpu", weights_only=True)["global_step"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "reference"
    trials.run_to_end(trials.fit_command(trials.DEFAULT_RUN, root, EPOCHS, EVERY), root.parent / "reference.log")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("count", [10, 26])  # mid-epoch (last.ckpt at step 7), just after the first epoch (25)
def test_sigkill_in_a_training_step_then_resume_is_the_uninterrupted_run(reference, tmp_path, count):
    root = tmp_path / "run"
    assert killed(root, "train_step", count) == -9
    assert saved_step(root) == {10: 7, 26: 25}[count]  # every 7 steps, and once the epoch is complete
    resumed(root)
    assert trials.compare(reference, root) == (0.0, [])
    assert len(list((root / "lightning_logs").iterdir())) == 1  # one run directory, one metrics.csv


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_a_usable_last_checkpoint(reference, tmp_path):
    root = tmp_path / "run"
    assert killed(root, "checkpoint_write", 3) == -9
    torch.load(trials.last_checkpoint(root), map_location="cpu", weights_only=True)  # whole, not truncated
    resumed(root)
    assert trials.compare(reference, root) == (0.0, [])


@pytest.mark.slow
@pytest.mark.parametrize("moment, count, stopped_at", [("train_step", 12, 12), ("validation", 3, 25)])
def test_sigterm_saves_exits_cleanly_and_resumes_exactly(reference, tmp_path, moment, count, stopped_at):
    root = tmp_path / "run"
    assert killed(root, moment, count, signal="SIGTERM") == 0
    # a SIGTERM in validation waits for its end and the epoch's logging: no checkpoint in the middle of one
    assert saved_step(root) == stopped_at
    resumed(root)
    assert trials.compare(reference, root) == (0.0, [])


def test_last_checkpoint_every_few_minutes(tmp_path):
    root = tmp_path / "run"
    # 0.0002 minutes = 12 ms and no step cadence: last.ckpt follows within a step or two of the kill at step 20
    assert killed(root, "train_step", 20, "SIGKILL", "--checkpoint.last_every_n_steps", "null",
                  "--checkpoint.last_every_minutes", "0.0002") == -9
    assert 10 <= saved_step(root) <= 19


@pytest.mark.slow
def test_kill_resume_trials_script(tmp_path):
    out = tmp_path / "trials"
    proc = ok(run_script("reproductions.kill_resume_trials", "--trials", "4", "--epochs", "2", "--out", str(out),
                         env=trials.environment(), timeout=900))
    assert "4/4 identical" in proc.stdout, proc.stdout


def test_ckpt_path_last_continues_the_run_directory(tmp_path):
    common = ["fit", "-c", "lenet_mnist_mini", "--data.init_args.batch_size", "200",
              "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
              "--test_after_fit", "false"]
    first = ok(run_zoo(*common, "--trainer.max_epochs", "1", "--ckpt_path", "last"))
    assert "no last.ckpt yet, starting" in first.stdout + first.stderr
    ok(run_zoo(*common, "--trainer.max_epochs", "2", "--ckpt_path", "last"))
    runs = sorted(p.name for p in (tmp_path / "lightning_logs").iterdir())
    assert runs == ["version_0"]  # the resumed run writes into its own run directory
    results = json.loads((tmp_path / "lightning_logs" / "version_0" / "results.json").read_text())
    assert results["epochs"] == 2 and results["global_step"] == 2 * 4
    assert results["resumed_from"].endswith("version_0/checkpoints/last.ckpt")
    assert len(list((tmp_path / "lightning_logs" / "version_0").glob("events.out.tfevents.*"))) >= 2


def test_newest_last_checkpoint_ignores_partial_files(tmp_path):
    for version in ("version_0", "version_1"):
        (tmp_path / "lightning_logs" / version / "checkpoints").mkdir(parents=True)
    old = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    new = tmp_path / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    os.utime(old, (time.time() - 60, time.time() - 60))
    (new.parent / "last.ckpt.partial").write_bytes(b"trunc")  # a write a kill interrupted
    assert resume.newest_last_checkpoint([tmp_path / "lightning_logs", tmp_path]) == new
    assert resume.logger_version_of(new, tmp_path, "lightning_logs") == "version_1"
    assert resume.logger_version_of(new, tmp_path / "elsewhere", "lightning_logs") is None
    assert resume.newest_last_checkpoint([tmp_path / "nothing"]) is None


def test_atomic_replace_swaps_whole_files(tmp_path):
    target, partial = tmp_path / "last.ckpt", tmp_path / "last.ckpt.partial"
    target.write_bytes(b"previous")
    partial.write_bytes(b"next")
    resume.atomic_replace(str(partial), str(target))
    assert target.read_bytes() == b"next" and not partial.exists()


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.save({resume.RNG_KEY: resume.collect_rng_states()}, tmp_path / "states.pt")
    expected = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    resume.restore_rng_states(torch.load(tmp_path / "states.pt", weights_only=True)[resume.RNG_KEY])
    drawn = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(drawn[0], expected[0]) and np.array_equal(drawn[1], expected[1]) and drawn[2] == expected[2]


def test_checkpoint_cadence_arguments_are_checked():
    with pytest.raises(ValueError, match=r"^last_every_n_steps must be positive or None \(off\), got 0$"):
        ZooCheckpoint(last_every_n_steps=0)
    assert ZooCheckpoint(last_every_n_steps=None, last_every_minutes=None).last_every_n_steps is None


SIGTERM_IN_A_PYTHON_FIT = """
import os, signal
import lightning as L
from datamodules import EmbeddedMNISTDataModule
from zoo.callbacks import ZooCheckpoint
from zoo.models import LeNet

class Terminate(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

trainer = L.Trainer(max_epochs=1, default_root_dir=".", callbacks=[ZooCheckpoint(), Terminate()], logger=False,
                    limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(LeNet(), EmbeddedMNISTDataModule(batch_size=32))
"""


def test_a_sigterm_in_a_python_fit_says_how_to_resume_it_in_python(tmp_path):
    """A ``Trainer`` of the user's own script is told the ``ckpt_path`` to give ``fit``, not the ``zoo`` flag."""
    proc = subprocess.run([sys.executable, "-c", SIGTERM_IN_A_PYTHON_FIT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**subprocess_env(None), "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and (tmp_path / "checkpoints" / "last.ckpt").is_file(), proc.stderr
    assert ("Resume it with trainer.fit(model, datamodule, ckpt_path='./checkpoints/last.ckpt')"
            in proc.stdout + proc.stderr), proc.stderr
    assert "--ckpt_path" not in proc.stdout + proc.stderr
