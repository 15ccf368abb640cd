"""The `zoo fit` path trains the same weights as a hand-written loop (scripts/benchmarks/benchmark_trainer.py's), so the
speed figures of that benchmark compare the same computation, and the zoo's logging changes no numerics."""

from __future__ import annotations

import copy
import csv
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from scripts.benchmarks import benchmark_trainer as bench
from zoo.callbacks import ZooProgressBar


@pytest.mark.parametrize("entry", ["lenet_mnist", "cnn_mnist", "sparse_cnn2_mnist", "lstm_airline"])
def test_zoo_fit_path_and_plain_loop_give_the_same_weights(entry, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    cli = bench.build_zoo_fit(entry, 16, str(tmp_path), ["--trainer.enable_progress_bar", "false"])
    plain_model = copy.deepcopy(cli.model)
    before = copy.deepcopy(plain_model.state_dict())
    train = DataLoader(bench.random_batches(cli.model, 6, 16, seed=0), batch_size=None)
    val = DataLoader(bench.random_batches(cli.model, 2, 16, seed=1), batch_size=None)
    torch.manual_seed(7)  # dropout draws from the global generator: both paths start from the same state
    bench.plain_fit(plain_model, train, val)
    torch.manual_seed(7)
    bench.zoo_fit(cli, cli.model, train, val)
    assert cli.trainer.global_step == 6
    zoo_state, plain_state = cli.model.state_dict(), plain_model.state_dict()
    assert zoo_state.keys() == plain_state.keys()
    changed = [k for k in plain_state if not torch.equal(plain_state[k], before[k])]
    assert any("weight" in k for k in changed), "the plain loop did not train"
    for key in plain_state:
        torch.testing.assert_close(zoo_state[key], plain_state[key], rtol=1e-5, atol=1e-6, msg=key)


class RecordLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[tuple[int, float, int]] = []  # (epoch, loss, batch size)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append((trainer.current_epoch, float(outputs["loss"]), len(batch[1])))


@pytest.mark.parametrize("interval", [0.0, 1e9])  # progress-bar values every step / only on the logger's steps
def test_logged_training_loss_is_each_logged_step_and_the_weighted_epoch_mean(interval, tmp_path):
    from zoo.models import LeNet

    torch.manual_seed(0)
    model = LeNet()
    model.step_log_interval = interval
    x, y = torch.randn(101, 1, 28, 28), torch.randint(0, 10, (101,))  # 6 batches of 16 and one of 5
    train = DataLoader(TensorDataset(x, y), batch_size=16)
    val = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=16)
    record = RecordLosses()
    trainer = L.Trainer(max_epochs=2, logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=2,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[record])
    trainer.fit(model, train, val)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    step_rows = {int(r["step"]): float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")}
    losses = [loss for _, loss, _ in record.losses]
    assert step_rows.keys() == {s for s in range(len(losses)) if (s + 1) % 2 == 0}
    for step, value in step_rows.items():
        assert value == pytest.approx(losses[step], rel=1e-6)
    epoch_rows = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    for epoch, logged in enumerate(epoch_rows):
        batch = [(loss, n) for e, loss, n in record.losses if e == epoch]
        assert logged == pytest.approx(sum(loss * n for loss, n in batch) / sum(n for _, n in batch), rel=1e-6)
    assert len(epoch_rows) == 2
    assert len([r for r in rows if r.get("train/acc")]) == 2 and len([r for r in rows if r.get("val/acc")]) == 2
    assert trainer.callback_metrics["train/loss"] == pytest.approx(epoch_rows[-1], rel=1e-6)


def test_the_zoo_progress_bar_redraws_at_most_every_interval_and_at_the_last_batch():
    slow = ZooProgressBar(min_interval=3600.0)
    assert [slow._should_update(n, 100) for n in (1, 2, 50, 99, 100)] == [True, False, False, False, True]
    every = ZooProgressBar(min_interval=0.0)
    assert all(every._should_update(n, 100) for n in (1, 2, 50, 99, 100))


class ReadTrainLoss(RecordLosses):
    """What a callback reading ``trainer.callback_metrics`` at every step sees, beside each step's loss."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[object, object]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        metrics = trainer.callback_metrics
        self.seen.append((metrics.get("train/loss"), metrics.get("train/loss_step")))


@pytest.mark.parametrize("how", ["monitor", "flag"])
def test_a_callback_monitoring_a_training_metric_reads_every_steps_value(how, tmp_path):
    """``ModelCheckpoint(monitor="train/loss", every_n_train_steps=2)`` compared stale values (the throttled step
    logging of ZooModule.log_train_step): the zoo now logs every step when a callback monitors a train/ metric, or
    when the model's ``log_every_train_step`` is set; each step's checkpoint is then saved with that step's loss."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from zoo.models import LeNet

    torch.manual_seed(0)
    model = LeNet()
    x, y = torch.randn(48, 1, 28, 28), torch.randint(0, 10, (48,))
    read = ReadTrainLoss()
    callbacks = [read]
    if how == "monitor":
        callbacks.append(ModelCheckpoint(dirpath=tmp_path, monitor="train/loss", every_n_train_steps=2, save_top_k=-1,
                                         filename="{step}-{train/loss:.6f}", auto_insert_metric_name=False))
    else:
        model.log_every_train_step = True
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=how == "monitor",
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=callbacks)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=16))
    losses = [loss for _, loss, _ in read.losses]
    assert len(losses) == 6
    for loss, (as_loss, as_step) in zip(losses, read.seen):
        assert float(as_loss) == pytest.approx(loss, rel=1e-6) and float(as_step) == pytest.approx(loss, rel=1e-6)
    if how == "monitor":
        saved = sorted(path.stem for path in tmp_path.glob("*.ckpt"))
        assert saved == sorted(f"{s}-{losses[s - 1]:.6f}" for s in (2, 4, 6))
