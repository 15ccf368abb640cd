"""The callbacks every ``zoo fit`` adds to the trainer: the divergence stop and the progress bar.

- :class:`StopOnNonFiniteLoss` stops a run whose training loss became nan or infinite, with one message naming the
  step and the fix (:class:`TrainingDivergedError`).
- :class:`ZooProgressBar`: Lightning's TQDM bar, redrawn a few times a second rather than after every batch.

``zoo.lightning_cli`` adds both unless the config names its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor

from zoo import errors, lightning_compat
from zoo.errors import option


class TrainingDivergedError(errors.ZooError):
    """The training loss became nan or infinite; the message names the step and the fix."""


class StopOnNonFiniteLoss(L.Callback):
    """Stops ``fit`` with one message once a training step's loss is nan or infinite: the run diverged.

    The loss is the ``loss`` a ``training_step`` returns (models with manual optimization return none and are not
    checked). It is checked before any later checkpoint or validation, so no checkpoint and no best score come from
    the diverged weights. Reading a loss back from an accelerator waits for it, so there the losses are only
    gathered on the device (no wait) and read every ``check_every_n_steps`` steps and before every checkpoint and
    validation; on a CPU every step is read at once (``read_every_step``: ``None`` for this choice, or either way).
    Under DDP every process stops at the same check.
    """

    def __init__(self, check_every_n_steps: int = 50, read_every_step: Optional[bool] = None) -> None:
        self.check_every_n_steps, self.read_every_step = check_every_n_steps, read_every_step
        self._steps: list[tuple[int, int, int]] = []  # (step, epoch, batch) of the steps not read yet
        self._finite_steps: Optional[Tensor] = None  # how many of them, from the first, had a finite loss

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, Tensor):
            return
        finite = torch.isfinite(loss.detach()).all()
        if self._finite_steps is None:
            self._finite_steps = finite.long()
        else:  # stays put from the first non-finite loss on
            self._finite_steps += finite & (self._finite_steps == len(self._steps))
        self._steps.append((trainer.global_step, trainer.current_epoch, batch_idx))
        read_now = loss.device.type == "cpu" if self.read_every_step is None else self.read_every_step
        if read_now or len(self._steps) >= self.check_every_n_steps:
            self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._finite_steps is None:
            return
        finite_steps = int(trainer.strategy.reduce(self._finite_steps, reduce_op="min"))  # waits for the device
        steps, self._steps, self._finite_steps = self._steps, [], None
        if finite_steps == len(steps):
            return
        step, epoch, batch_idx = steps[finite_steps]
        lr = getattr(pl_module, "hparams", {}).get("lr")
        raise TrainingDivergedError(
            f"the training loss became nan or infinite at step {step} (epoch {epoch}, batch {batch_idx}): the run "
            f"diverged and stops here, keeping only the checkpoints written before. Lower the learning rate "
            f"({option('model', 'lr')}{f', {lr:g} now' if isinstance(lr, (int, float)) else ''}) and start again."
        )

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)


class ZooProgressBar(lightning_compat.ProgressBarHooks):
    """Lightning's TQDM bar, redrawn at most every ``min_interval`` seconds (and at each loop's last batch).

    The default bar redraws and formats its metrics after every batch, about 0.5 ms a step on a CPU (a tenth of
    a LeNet step); a person reads it a few times a second. ``zoo fit`` uses this bar unless the trainer's
    callbacks name another or ``--trainer.enable_progress_bar false``.
    """

    def __init__(self, min_interval: float = 0.2, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.min_interval = min_interval
        self._next_draw = 0.0

    def should_redraw(self, current: int, total: int) -> bool:
        now = time.monotonic()
        if current == total or now >= self._next_draw:
            self._next_draw = now + self.min_interval
            return True
        return False
