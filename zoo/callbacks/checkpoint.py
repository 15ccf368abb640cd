"""The zoo's checkpoint callback: the best and the last checkpoint, written so that a run resumes exactly.

:class:`ZooCheckpoint` decides when ``last.ckpt`` is written (each complete epoch, every few steps or minutes, on
SIGTERM), writes every file atomically, and stores what an exact resume needs beyond Lightning's own checkpoint
(random states, the epoch's logged sums, the CSV rows logged so far; :mod:`zoo.resume` holds those helpers). The
Lightning internals it needs are reached through :mod:`zoo.lightning_compat`.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from zoo import errors, lightning_compat, resume


class ZooCheckpoint(lightning_compat.CheckpointHooks):
    """ModelCheckpoint that keeps the best and the last checkpoint, and makes a run resumable exactly.

    Unless ``monitor`` is given, it watches the model's ``checkpoint_monitor`` (``val/acc`` for classifiers) in
    the model's ``checkpoint_mode``; a run without validation (``--trainer.limit_val_batches 0``) watches nothing,
    and its best checkpoint is the newest. At the end of ``fit`` it prints the best checkpoint and its score.

    For resuming (``zoo fit ... --ckpt_path last``; see ``zoo.resume``):

    - ``last.ckpt`` is written once an epoch is complete (validated and logged: at the next epoch's start and at
      the end of training), every ``last_every_n_steps`` training steps and every ``last_every_minutes`` minutes
      (whichever comes first; ``null`` turns one off), so a kill loses at most that much. Mid-epoch checkpoints
      hold the training loader's position (torchdata ``StatefulDataLoader``) and are not taken at a batch that
      a validation follows.
    - Every file is written under a temporary name and moved into place with ``os.replace``: a kill during a
      write leaves the previous file whole.
    - Checkpoints hold the global torch/CUDA/numpy/Python random states, restored when training restarts, and
      mid-epoch ones what the epoch-level metrics gathered so far; loggers are flushed first, and a resumed run
      drops the CSV rows logged after the checkpoint.
    - On SIGTERM (a scheduler's preemption) Lightning stops after the current training batch; this callback then
      writes ``last.ckpt`` and the process exits with status 0. A SIGTERM during a validation, or in the last
      batch of an epoch, takes effect once that validation (and the epoch's logging) has finished, so no
      checkpoint is taken in the middle of one.
    """

    def __init__(
        self,
        dirpath: Optional[str] = None,
        filename: Optional[str] = "best-{epoch}-{step}",
        monitor: Optional[str] = None,
        mode: str = "min",
        save_last: Optional[bool] = True,
        save_top_k: int = 1,
        every_n_epochs: Optional[int] = None,
        last_every_n_steps: Optional[int] = 200,
        last_every_minutes: Optional[float] = 10.0,
    ) -> None:
        super().__init__(
            dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_last=save_last,
            save_top_k=save_top_k, every_n_epochs=every_n_epochs, auto_insert_metric_name=False,
        )
        for name, value in (("last_every_n_steps", last_every_n_steps), ("last_every_minutes", last_every_minutes)):
            if value is not None and value <= 0:
                off = "null" if errors.naming_command_line_options() else "None"
                raise ValueError(f"{errors.option('checkpoint', name)} must be positive or {off} (off), got {value}")
        self._monitor_given = monitor is not None
        self.last_every_n_steps, self.last_every_minutes = last_every_n_steps, last_every_minutes
        self._last_saved_step: Optional[int] = None
        self._last_saved_time = time.monotonic()
        self._sigterm_deferred = False
        self._fit_seconds_before = 0.0  # time trained by the earlier parts of a resumed run
        self._fit_started = time.monotonic()
        self._rng_states_to_restore: Optional[dict[str, Any]] = None
        self._accumulators_to_restore: Optional[dict[str, Any]] = None
        self._csv_history: dict[str, list[list[str]]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._monitor_given:
            validates = trainer.limit_val_batches != 0
            self.monitor = getattr(pl_module, "checkpoint_monitor", None) if validates else None
            self.mode = getattr(pl_module, "checkpoint_mode", "min")
            self.kth_value = torch.tensor(math.inf if self.mode == "min" else -math.inf)
        super().setup(trainer, pl_module, stage)
        self._fit_started = self._last_saved_time = time.monotonic()

    def remember_csv_history(self, trainer: L.Trainer) -> None:
        """Read the ``metrics.csv`` files of the trainer's CSV loggers before ``fit`` starts them: a CSV logger
        deletes the file of an existing version when it starts, and a resumed run keeps its rows."""
        self._csv_history = {}
        for path in self._csv_files(trainer):
            if path.is_file():
                with open(path, newline="") as f:
                    self._csv_history[str(path)] = list(csv.reader(f))

    @staticmethod
    def _csv_files(trainer: L.Trainer) -> list[Path]:
        return [Path(logger.log_dir) / "metrics.csv" for logger in trainer.loggers if isinstance(logger, CSVLogger)]

    # ------------------------------------------------------------------ atomic files
    def write_checkpoint_file(self, trainer: L.Trainer, filepath: str) -> None:
        """A temporary file, which ``os.replace`` moves into place once it is whole."""
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero:
            resume.atomic_replace(partial, filepath)
        trainer.strategy.barrier("ZooCheckpoint.atomic_replace")

    # ------------------------------------------------------------------ state beyond Lightning's
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:  # what is logged up to now reaches the disk with the checkpoint
            logger.save()
        checkpoint[resume.RNG_KEY] = resume.collect_rng_states()
        if not lightning_compat.is_last_batch_of_epoch(trainer):  # mid-epoch
            checkpoint["zoo_epoch_accumulators"] = resume.epoch_accumulators(trainer, pl_module)
        checkpoint["zoo_csv_rows"] = {str(path): resume.count_csv_rows(path) for path in self._csv_files(trainer)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._rng_states_to_restore = checkpoint.get(resume.RNG_KEY)
        self._last_saved_step = checkpoint.get("global_step")  # this state is on disk already
        self._accumulators_to_restore = checkpoint.get("zoo_epoch_accumulators")
        if trainer.is_global_zero:  # before the loggers start (Lightning restores callbacks first)
            for logger in trainer.loggers:
                if isinstance(logger, CSVLogger):
                    self._restore_csv_history(logger, checkpoint.get("zoo_csv_rows", {}))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fit_seconds": self.fit_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._fit_seconds_before = float(state_dict.get("fit_seconds", 0.0))

    @property
    def fit_seconds(self) -> float:
        """Training wall time of the whole run, the parts before a resume included."""
        return self._fit_seconds_before + time.monotonic() - self._fit_started

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # restored here, after the sanity check and the loaders' set-up: from now on the resumed run draws the
        # same numbers as the run it replaces did after its checkpoint
        if self._rng_states_to_restore is not None:
            resume.restore_rng_states(self._rng_states_to_restore)
            self._rng_states_to_restore = None
        if self._accumulators_to_restore is not None:
            resume.restore_metric_states(pl_module, self._accumulators_to_restore["metrics"])

    def _restore_csv_history(self, logger: CSVLogger, rows_to_keep: dict[str, int]) -> None:
        """The rows of ``metrics.csv`` logged up to the checkpoint, written back after the logger's start deleted
        the file; the rows a killed run logged after its checkpoint are dropped (they are logged again)."""
        path = str(Path(logger.log_dir) / "metrics.csv")
        history, keep = self._csv_history.get(path), rows_to_keep.get(path)
        if not history or keep is None:
            return
        writer = logger.experiment  # starting the writer deletes the file
        header, rows = history[0], history[1 : keep + 1]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        writer.metrics_keys = list(header)

    # ------------------------------------------------------------------ when last.ckpt is written
    def _save_last_now(self, trainer: L.Trainer) -> None:
        """Write last.ckpt unless this step is saved already (top-k files do not count: they may precede logging).

        ModelCheckpoint would write last.ckpt beside each top-k file, after validation and before the epoch's
        metrics are logged; a run resumed from there would not log them. Here last.ckpt is written by this method
        only (see :class:`zoo.lightning_compat.CheckpointHooks`)."""
        if (not self.save_last or trainer.fast_dev_run or trainer.sanity_checking
                or trainer.state.fn != TrainerFn.FITTING or self._last_saved_step == trainer.global_step):
            return
        self.write_last_checkpoint(trainer)
        self._last_saved_step = trainer.global_step
        self._last_saved_time = time.monotonic()

    def _periodic_save_due(self, trainer: L.Trainer) -> bool:
        step_due = bool(self.last_every_n_steps) and trainer.global_step % self.last_every_n_steps == 0
        time_due = bool(self.last_every_minutes) and (
            time.monotonic() - self._last_saved_time >= 60 * self.last_every_minutes
        )
        due = trainer.strategy.broadcast(step_due or time_due)  # clocks differ across ranks: rank 0 decides
        # not when a validation follows this batch (Lightning would not redo it from here) or the epoch ends
        return due and not lightning_compat.validation_follows_this_batch(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        if self._accumulators_to_restore is not None:  # the first batch after a mid-epoch resume has logged
            lightning_compat.add_epoch_logged_sums(trainer, self._accumulators_to_restore["results"])
            self._accumulators_to_restore = None
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if trainer.received_sigterm and lightning_compat.is_last_batch_of_epoch(trainer):
            self._defer_sigterm(trainer)  # stop once the epoch is validated and logged
        if self._last_saved_step != trainer.global_step and self._periodic_save_due(trainer):
            self._save_last_now(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The previous epoch is complete here: validated, its epoch metrics logged, its LR schedulers stepped. The
        # file records the loop as it was when that epoch completed (Lightning counts the new epoch as "ready"
        # before this hook), so a resume starts the new epoch afresh, as the uninterrupted run does from here.
        if trainer.current_epoch == 0:
            return
        with lightning_compat.epoch_not_started(trainer):
            self._save_last_now(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_last_now(trainer)

    # ------------------------------------------------------------------ preemption
    def _defer_sigterm(self, trainer: L.Trainer) -> None:
        lightning_compat.clear_sigterm(trainer)
        self._sigterm_deferred = True

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        # Lightning would stop mid-validation; a checkpoint there would resume with half a validation's metrics
        if trainer.received_sigterm and trainer.state.fn == TrainerFn.FITTING:
            self._defer_sigterm(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._sigterm_deferred and not lightning_compat.is_last_batch_of_epoch(trainer):
            self._resume_sigterm(trainer)  # a mid-epoch validation: stop after this batch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._sigterm_deferred:  # Lightning stops once this epoch is logged and complete
            self._resume_sigterm(trainer)

    def _resume_sigterm(self, trainer: L.Trainer) -> None:
        lightning_compat.set_sigterm(trainer)
        self._sigterm_deferred = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        self._save_last_now(trainer)
        how = ("the same command and --ckpt_path last" if errors.naming_command_line_options() else
               f"trainer.fit(model, datamodule, ckpt_path={self.last_model_path!r}) on a Trainer built as before")
        rank_zero_info(f"SIGTERM: stopped at step {trainer.global_step}; {self.last_model_path} holds the run. Resume "
                       f"it with {how}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_model_path:
            score = self.best_model_score
            shown = f"{self.monitor}={float(score):.4f}" if score is not None else ""
            rank_zero_info(f"best checkpoint: {self.best_model_path} {shown}".rstrip())
        if self.last_model_path:
            rank_zero_info(f"last checkpoint: {self.last_model_path}")
