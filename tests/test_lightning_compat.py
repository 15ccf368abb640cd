"""zoo.lightning_compat pinned to the installed Lightning: the supported range, and every Lightning internal it uses
present on real Lightning objects and doing what the zoo relies on. A Lightning upgrade that moves one fails here,
naming it; fix the function in zoo/lightning_compat.py that reads it, then widen SUPPORTED_LIGHTNING."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.fabric.loggers import tensorboard as fabric_tensorboard
from lightning.fabric.utilities import seed as fabric_seed
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from torch.utils.data import DataLoader, TensorDataset

from zoo import lightning_compat
from zoo.lightning_compat import PRIVATE_ATTRIBUTES, SUPPORTED_LIGHTNING

REPO = Path(__file__).resolve().parent.parent
MODULES = {"lightning.fabric.utilities.seed": fabric_seed, "lightning.fabric.loggers.tensorboard": fabric_tensorboard}
#: an object of each owner class (the CLI's class: its instances parse a command line)
OBJECTS = {"ModelCheckpoint": ModelCheckpoint, "TQDMProgressBar": TQDMProgressBar, "LightningCLI": lambda: LightningCLI,
           "LightningModule": L.LightningModule}
#: the parameters of the private methods the compat module overrides or calls
SIGNATURES = {
    (ModelCheckpoint, "_save_checkpoint"): ["self", "trainer", "filepath"],
    (ModelCheckpoint, "_save_last_checkpoint"): ["self", "trainer", "monitor_candidates"],
    (ModelCheckpoint, "_monitor_candidates"): ["self", "trainer"],
    (TQDMProgressBar, "_should_update"): ["self", "current", "total"],
    (LightningCLI, "_parse_ckpt_path"): ["self"],
}


def missing(owner: str, path: str) -> str:
    return (f"Lightning {L.__version__} has no {owner}.{path}, which zoo/lightning_compat.py uses: rewrite the function "
            f"that reads it for this version (supported: {SUPPORTED_LIGHTNING})")


def resolve(obj: Any, owner: str, path: str) -> Any:
    for name in path.split("."):
        assert hasattr(obj, name), missing(owner, path)
        obj = getattr(obj, name)
    return obj


def test_the_installed_lightning_is_in_the_supported_range():
    assert SpecifierSet(SUPPORTED_LIGHTNING).contains(Version(L.__version__), prereleases=True), (
        f"lightning {L.__version__} is installed, but zoo/lightning_compat.py supports {SUPPORTED_LIGHTNING}: run this "
        f"file, fix what it names, then change SUPPORTED_LIGHTNING")
    assert lightning_compat.unsupported_lightning() is None
    message = lightning_compat.unsupported_lightning("99.0.0")
    assert message is not None and "lightning 99.0.0" in message and SUPPORTED_LIGHTNING in message


def test_the_list_names_every_private_attribute_the_module_uses():
    source = Path(lightning_compat.__file__).read_text()
    used = set(re.findall(r"\.(_[A-Za-z]\w*)", source)) | set(re.findall(r"\bdef (_[A-Za-z]\w*)", source))
    used |= {name for line in re.findall(r"^from lightning\S* import (.*)$", source, re.M)
             for name in re.findall(r"\b_[A-Za-z]\w*", line)}
    listed = {part for _, path in PRIVATE_ATTRIBUTES for part in path.split(".")}
    assert used <= listed, f"add to PRIVATE_ATTRIBUTES: {sorted(used - listed)}"


def test_no_other_module_uses_lightning_internals():
    # torchmetrics' Metric has a _computed too (zoo.resume restores metric states): not a Lightning internal
    names = {part for _, path in PRIVATE_ATTRIBUTES for part in path.split(".") if part.startswith("_")} - {"_computed"}
    names |= {"fit_loop", "epoch_loop", "batch_progress", "epoch_progress"}
    pattern = re.compile(r"\.(%s)\b|^from lightning\S* import .*\b_[A-Za-z]" % "|".join(sorted(names)), re.M)
    compat = Path(lightning_compat.__file__).resolve()
    found = [f"{path.relative_to(REPO)}: {match.group(0)}"
             for path in sorted([*REPO.glob("zoo/**/*.py"), *REPO.glob("datamodules/**/*.py")]) if path != compat
             for match in pattern.finditer(path.read_text())]
    assert not found, f"Lightning internals outside zoo/lightning_compat.py (add a function there): {found}"


@pytest.mark.parametrize("method, parameters", SIGNATURES.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_private_methods_keep_their_parameters(method, parameters):
    owner, name = method
    assert callable(getattr(owner, name, None)), missing(owner.__name__, name)
    assert list(inspect.signature(getattr(owner, name)).parameters) == parameters, missing(
        owner.__name__, f"{name}({', '.join(parameters[1:])})")


def test_lightning_still_calls_the_overridden_methods():
    for owner, name in (*SIGNATURES, (ModelCheckpoint, "_save_last_checkpoint")):
        callers = [member for member in vars(owner).values() if inspect.isfunction(member)
                   and member.__name__ != name and f"self.{name}(" in inspect.getsource(member)]
        assert callers, missing(owner.__name__, f"{name} (no longer called by Lightning)")


def test_the_internals_of_modules_callbacks_and_the_cli_exist():
    checked = set()
    for owner, path in PRIVATE_ATTRIBUTES:
        if owner in MODULES or owner in OBJECTS:
            resolve(MODULES[owner] if owner in MODULES else OBJECTS[owner](), owner, path)
            checked.add((owner, path))
    # the rest are read during a fit (test_the_trainer_internals_exist_and_behave_as_the_zoo_relies_on)
    assert {owner for owner, path in PRIVATE_ATTRIBUTES if (owner, path) not in checked} == {"Trainer", "_ResultMetric"}
    assert lightning_compat.attached_trainer(L.LightningModule()) is None


class TinyRegression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.processed_at_start: list[tuple[int, int]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        self.log("train/max", loss, on_step=False, on_epoch=True, reduce_fx="max")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.processed_at_start.append((batch_idx, lightning_compat.batches_processed_this_epoch(self.trainer)))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Probe(L.Callback):
    """Reads every Trainer internal of PRIVATE_ATTRIBUTES during a fit, and calls the compat functions there."""

    def __init__(self) -> None:
        self.follows: list[tuple[int, bool, bool]] = []
        self.doubled: dict[str, tuple[float, float]] = {}
        self.ready_inside: list[tuple[int, int]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        progress = trainer.fit_loop.epoch_progress
        before = progress.total.ready
        with lightning_compat.epoch_not_started(trainer):
            self.ready_inside.append((before, progress.total.ready))
        assert progress.total.ready == before

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        for owner, path in PRIVATE_ATTRIBUTES:
            if owner == "Trainer":
                resolve(trainer, owner, path)
        for result in trainer.fit_loop.epoch_loop._results.values():
            for owner, path in PRIVATE_ATTRIBUTES:  # a batch size is counted for means only
                if owner == "_ResultMetric" and (path != "cumulated_batch_size" or result.meta.is_mean_reduction):
                    resolve(result, owner, path)
        assert lightning_compat.attached_trainer(pl_module) is trainer
        lightning_compat.set_sigterm(trainer)
        assert trainer.received_sigterm
        lightning_compat.clear_sigterm(trainer)
        assert not trainer.received_sigterm
        self.follows.append((batch_idx, lightning_compat.is_last_batch_of_epoch(trainer),
                             lightning_compat.validation_follows_this_batch(trainer)))
        if trainer.current_epoch == 0 and batch_idx == 2:  # saved sums added back: every sum doubles
            saved = lightning_compat.epoch_logged_sums(trainer)
            lightning_compat.add_epoch_logged_sums(trainer, saved)
            after = lightning_compat.epoch_logged_sums(trainer)
            self.doubled = {key.rpartition(".")[2]: (float(saved[key]["value"]), float(after[key]["value"]))
                            for key in saved}


def test_the_trainer_internals_exist_and_behave_as_the_zoo_relies_on(tmp_path):
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    model, probe = TinyRegression(), Probe()
    hooks = lightning_compat.CheckpointHooks(dirpath=str(tmp_path), save_last=True)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=4, limit_val_batches=1,
                        val_check_interval=2, logger=False, callbacks=[probe, hooks], enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(model, DataLoader(data, batch_size=4), DataLoader(data, batch_size=4))

    assert model.processed_at_start == [(i, i) for i in range(4)] * 2  # the batch index, before the step
    # epoch 0 and 1: a validation follows batch 1 (val_check_interval 2) and the last batch ends the epoch
    assert probe.follows == [(0, False, False), (1, False, True), (2, False, False), (3, True, True)] * 2
    assert set(probe.doubled) == {"train/loss", "train/max"}
    assert probe.doubled["train/loss"][1] == pytest.approx(2 * probe.doubled["train/loss"][0])
    assert probe.doubled["train/max"][1] == pytest.approx(probe.doubled["train/max"][0])  # max(x, x)
    assert [inside for _, inside in probe.ready_inside] == [before - 1 for before, _ in probe.ready_inside]

    # Lightning's own last.ckpt saves are dropped; write_last_checkpoint writes it, top-k book-keeping unchanged
    assert not (tmp_path / "last.ckpt").exists() and list(tmp_path.glob("*.ckpt"))
    step = hooks._last_global_step_saved
    hooks.write_last_checkpoint(trainer)
    assert (tmp_path / "last.ckpt").exists() and hooks._last_global_step_saved == step


def test_rng_states_logger_name_and_hook_classes(tmp_path):
    states = lightning_compat.global_rng_states(include_cuda=False)
    first = torch.rand(3)
    lightning_compat.set_global_rng_states(states)
    assert torch.equal(torch.rand(3), first)

    trainer = L.Trainer(accelerator="cpu", logger=True, default_root_dir=str(tmp_path), enable_progress_bar=False)
    assert type(trainer.logger).__name__ == lightning_compat.default_logger_name()

    class Never(lightning_compat.ProgressBarHooks):
        def should_redraw(self, current: int, total: int) -> bool:
            return False

    assert lightning_compat.ProgressBarHooks()._should_update(1, 10) and not Never()._should_update(1, 10)
    assert "_parse_ckpt_path" in vars(lightning_compat.CLIHooks)
