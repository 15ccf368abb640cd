"""The Lightning half of the ``zoo`` command: ``zoo fit|validate|test|predict`` as a LightningCLI.

Imported only when one of these subcommands runs (``zoo models``, ``zoo evaluate --help`` and the like start
without torch or Lightning; see :mod:`zoo.cli`). ``-c`` also takes a zoo entry name. Every ``zoo fit`` writes
``results.json`` (best score and checkpoint, test metrics, ...) beside its saved config.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, Optional
from weakref import proxy

import lightning as L
import torch
import yaml
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

import datamodules  # noqa: F401  (registers the datamodules for --data <Name>)
import zoo.models  # noqa: F401  (registers the models for --model <Name>)
from zoo import errors, hub, registry, resume
from zoo.checkpoint_trust import RefuseUntrustedCkptPath, check_subcommand_checkpoint

class ZooCheckpoint(ModelCheckpoint):
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
                raise ValueError(f"--checkpoint.{name} must be positive or null (off), got {value}")
        self._monitor_given = monitor is not None
        self.last_every_n_steps, self.last_every_minutes = last_every_n_steps, last_every_minutes
        self._last_saved_step: Optional[int] = None
        self._last_saved_time = time.monotonic()
        self._sigterm_deferred = False
        self._writing_last = False
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
    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        # ModelCheckpoint._save_checkpoint, writing a temporary file that os.replace moves into place
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero:
            resume.atomic_replace(partial, filepath)
        trainer.strategy.barrier("ZooCheckpoint.atomic_replace")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    # ------------------------------------------------------------------ state beyond Lightning's
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:  # what is logged up to now reaches the disk with the checkpoint
            logger.save()
        checkpoint[resume.RNG_KEY] = resume.collect_rng_states()
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:  # mid-epoch
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
        """Write last.ckpt unless this step is saved already (top-k files do not count: they may precede logging)."""
        if (not self.save_last or trainer.fast_dev_run or trainer.sanity_checking
                or trainer.state.fn != TrainerFn.FITTING or self._last_saved_step == trainer.global_step):
            return
        top_k_step = self._last_global_step_saved  # a last-only file must not make a top-k save skip this step
        self._writing_last = True
        try:
            super()._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        finally:
            self._writing_last = False
        self._last_global_step_saved = top_k_step
        self._last_saved_step = trainer.global_step
        self._last_saved_time = time.monotonic()

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        # ModelCheckpoint writes last.ckpt beside each top-k file, after validation and before the epoch's metrics
        # are logged; a run resumed from there would not log them. last.ckpt is written by _save_last_now only.
        if self._writing_last:
            super()._save_last_checkpoint(trainer, monitor_candidates)

    def _periodic_save_due(self, trainer: L.Trainer) -> bool:
        step_due = bool(self.last_every_n_steps) and trainer.global_step % self.last_every_n_steps == 0
        time_due = bool(self.last_every_minutes) and (
            time.monotonic() - self._last_saved_time >= 60 * self.last_every_minutes
        )
        due = trainer.strategy.broadcast(step_due or time_due)  # clocks differ across ranks: rank 0 decides
        epoch_loop = trainer.fit_loop.epoch_loop
        # a validation follows this batch (Lightning would not redo it from here) or the epoch ends
        validation_follows = epoch_loop.batch_progress.is_last_batch or epoch_loop._should_check_val_fx(
            trainer.fit_loop._data_fetcher
        )
        return due and not validation_follows

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        if self._accumulators_to_restore is not None:  # the first batch after a mid-epoch resume has logged
            resume.merge_logged_sums(trainer.fit_loop.epoch_loop._results, self._accumulators_to_restore["results"])
            self._accumulators_to_restore = None
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if trainer.received_sigterm and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._defer_sigterm(trainer)  # stop once the epoch is validated and logged
        if self._last_saved_step != trainer.global_step and self._periodic_save_due(trainer):
            self._save_last_now(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The previous epoch is complete here: validated, its epoch metrics logged, its LR schedulers stepped. The
        # file records the loop as it was when that epoch completed (Lightning counts the new epoch as "ready"
        # before this hook), so a resume starts the new epoch afresh, as the uninterrupted run does from here.
        if trainer.current_epoch == 0:
            return
        progress = trainer.fit_loop.epoch_progress
        progress.total.ready -= 1
        progress.current.ready -= 1
        try:
            self._save_last_now(trainer)
        finally:
            progress.total.ready += 1
            progress.current.ready += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_last_now(trainer)

    # ------------------------------------------------------------------ preemption
    def _defer_sigterm(self, trainer: L.Trainer) -> None:
        trainer._signal_connector.received_sigterm = False
        self._sigterm_deferred = True

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        # Lightning would stop mid-validation; a checkpoint there would resume with half a validation's metrics
        if trainer.received_sigterm and trainer.state.fn == TrainerFn.FITTING:
            self._defer_sigterm(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._sigterm_deferred and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._resume_sigterm(trainer)  # a mid-epoch validation: stop after this batch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._sigterm_deferred:  # Lightning stops once this epoch is logged and complete
            self._resume_sigterm(trainer)

    def _resume_sigterm(self, trainer: L.Trainer) -> None:
        trainer._signal_connector.received_sigterm = True
        self._sigterm_deferred = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        self._save_last_now(trainer)
        rank_zero_info(
            f"SIGTERM: stopped at step {trainer.global_step}; {self.last_model_path} holds the run. Resume it with "
            f"the same command and --ckpt_path last"
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_model_path:
            score = self.best_model_score
            shown = f"{self.monitor}={float(score):.4f}" if score is not None else ""
            rank_zero_info(f"best checkpoint: {self.best_model_path} {shown}".rstrip())
        if self.last_model_path:
            rank_zero_info(f"last checkpoint: {self.last_model_path}")


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
            f"(--model.init_args.lr{f', {lr:g} now' if isinstance(lr, (int, float)) else ''}) and start again."
        )

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)


class ZooProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, redrawn at most every ``min_interval`` seconds (and at each loop's last batch).

    The default bar redraws and formats its metrics after every batch, about 0.5 ms a step on a CPU (a tenth of
    a LeNet step); a person reads it a few times a second. ``zoo fit`` uses this bar unless the trainer's
    callbacks name another or ``--trainer.enable_progress_bar false``.
    """

    def __init__(self, min_interval: float = 0.2, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.min_interval = min_interval
        self._next_draw = 0.0

    def _should_update(self, current: int, total: int) -> bool:
        if not super()._should_update(current, total):
            return False
        now = time.monotonic()
        if current == total or now >= self._next_draw:
            self._next_draw = now + self.min_interval
            return True
        return False


class ZooArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors are the message and a pointer to ``--help`` (not 60 lines of usage)."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:
        if not self.exit_on_error or errors.debug_enabled():
            super().error(message, ex)
        prog = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {message.rstrip()}\n(`{prog} --help` lists the accepted options)\n")
        sys.exit(2)


def cpu_has_bfloat16_units() -> bool:
    """Whether oneDNN runs bfloat16 convolutions and matrix products natively on this CPU (AVX-512 BF16, AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def warn_if_cpu_bfloat16_is_emulated(trainer: L.Trainer) -> None:
    """Warns when a CPU run asks for bfloat16 that this CPU lacks: autocast then emulates it, far slower than float32
    (the airbench net: a training step 17x slower on an AVX2-only EPYC, 3x faster on an AMX Xeon;
    ``scripts/benchmark_precision.py`` measures it)."""
    if (str(trainer.precision).startswith("bf16") and isinstance(trainer.accelerator, CPUAccelerator)
            and not cpu_has_bfloat16_units()):
        rank_zero_warn(
            f"--trainer.precision {trainer.precision} on a CPU without bfloat16 units (no AVX-512 BF16 or AMX): "
            "bfloat16 is emulated and usually much slower than float32 here. Use --trainer.precision 32-true "
            "(python scripts/benchmark_precision.py measures both on this machine).")


class ZooCLI(RefuseUntrustedCkptPath, LightningCLI):
    """LightningCLI with the zoo's checkpoint callback always on (``--checkpoint.*`` configures it).

    ``zoo fit ... --ckpt_path last`` resumes from the newest ``last.ckpt`` under the run's root (a fresh start
    when there is none, so a preempted job can be requeued with one command), and a run resumed in its own root
    keeps writing into the logger version (run directory) of its checkpoint. A checkpoint of another model,
    datamodule or hyperparameters is refused before anything is written (``resume.refuse_other_run``). A fresh
    run claims its own version directory first (``resume.claim_run_directory``), and :class:`StopOnNonFiniteLoss`
    stops a diverged run.

    A value check in a model's, datamodule's or callback's ``__init__`` fails inside jsonargparse, which wraps it in
    a ``ValueError`` of its own; the zoo's error is raised instead, so the ``zoo`` command prints its one message.
    """

    _claimed_run_directory: Optional[Path] = None
    _logger_as_configured: Any = None

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(ZooCheckpoint, "checkpoint")
        parser.add_argument(
            "--weights", type=Optional[str], default=None,
            help="start from these weights: zoo:<entry> (its shipped weights) or a .safetensors file; tensors whose "
                 "name and shape fit are loaded, the others (a new head) keep their initialization",
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=False,
            help="after `fit`, test the best checkpoint on the test set and print its metrics",
        )

    def start_weights(self) -> None:
        """Load the model's starting weights (``--weights``) before any subcommand runs; warn when ``validate``,
        ``test`` or ``predict`` would run an untrained model of an entry that ships weights."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        weights = config.get("weights")
        if weights:
            kept, unused = hub.start_from(self.model, weights)
            rank_zero_info(f"--weights {weights}: loaded {len(self.model.state_dict()) - len(kept)} tensors"
                           + (f"; kept the initialization of {', '.join(kept)}" if kept else "")
                           + (f"; not used from the file: {', '.join(unused)}" if unused else ""))
        elif self.subcommand in ("validate", "test", "predict") and not config.get("ckpt_path"):
            entry = entry_of_config(config.get("config") or [])
            if entry and registry.get(entry).shipped:
                rank_zero_info(f"warning: zoo {self.subcommand}: the model is untrained (random weights); add "
                               f"--weights zoo:{entry} for the shipped weights or --ckpt_path <ckpt> for a run of yours")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The configured Trainer, with :class:`StopOnNonFiniteLoss`, and :class:`ZooProgressBar` as its bar unless
        the config names one or none."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        added: list[L.Callback] = [] if any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks) else [
            StopOnNonFiniteLoss()]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            added.append(ZooProgressBar())
        kwargs.setdefault("callbacks", [*callbacks, *added])
        if self._claimed_run_directory is not None:  # config.yaml keeps the logger as configured (see below)
            self.config["fit"].trainer.logger = self._logger_as_configured
        trainer = super().instantiate_trainer(**kwargs)
        warn_if_cpu_bfloat16_is_emulated(trainer)
        return trainer

    def _parse_ckpt_path(self) -> None:
        # before LightningCLI reads the checkpoint's hyperparameters into the config, which would hide a changed value
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else {}
        found_by_last = subcommand == "fit" and resume.resolve_last_checkpoint(config)
        path = config.get("ckpt_path")
        # --weights_only false: the user accepts a file outside the allowlist; the command line configures the run
        if path and Path(path).is_file() and config.get("weights_only") is not False:
            check_subcommand_checkpoint(config)  # an untrusted file is refused before anything reads it
            checkpoint = resume.read_checkpoint(path)
            if subcommand == "fit":
                dump = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False, skip_none=False))
                resume.refuse_other_run(path, checkpoint, dump["fit"], found_by_last)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        if self.subcommand == "fit":
            config = self.config["fit"]
            resume.resume_in_run_directory(config)
            # the claimed version is where this run writes, not part of its config: a config.yaml run again
            # must claim a new directory, not write into this one
            self._logger_as_configured = copy.deepcopy(config.trainer.get("logger"))
            self._claimed_run_directory = resume.claim_run_directory(config)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:
            resume.release_run_directory(self._claimed_run_directory)  # nothing was written into it
            if errors.debug_enabled():
                raise
            cause = errors.deliberate_cause(err)
            if cause is not None and errors.is_lightning_misconfiguration(cause):
                raise errors.ZooError(f"Lightning refuses the trainer's options: {cause} Change that --trainer "
                                      f"option (`zoo fit --help` lists them).") from cause
            if cause is None or cause is err:
                raise
            raise cause from cause.__cause__  # the zoo's message, not jsonargparse's wrapper around it

    def before_validate(self) -> None:
        self.start_weights()

    def before_test(self) -> None:
        self.start_weights()

    def before_predict(self) -> None:
        self.start_weights()

    def before_fit(self) -> None:
        self.start_weights()
        self._fit_started = time.perf_counter()
        if isinstance(self.trainer.checkpoint_callback, ZooCheckpoint) and self.trainer.is_global_zero:
            self.trainer.checkpoint_callback.remember_csv_history(self.trainer)

    def after_fit(self) -> None:
        fit_seconds = getattr(self.trainer.checkpoint_callback, "fit_seconds", time.perf_counter() - self._fit_started)
        # taken before testing: loading the best checkpoint for the test can reset the callback's last_model_path
        results = fit_results(self.trainer, fit_seconds, self.config[self.subcommand].get("seed_everything"))
        results["resumed_from"] = self.config[self.subcommand].get("ckpt_path")
        if self.config_init[self.subcommand].get("test_after_fit"):
            # fast_dev_run and runs without validation keep no best checkpoint: test the weights in memory
            metrics = self.trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path="best" if results["best_checkpoint"] else None
            )
            results["test"] = {key: float(value) for key, value in (metrics[0] if metrics else {}).items()}
        if self.trainer.fast_dev_run:  # a smoke test: like Lightning's logs and checkpoints, nothing is written
            return
        log_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # a collective under DDP: all ranks ask
        if self.trainer.is_global_zero:  # written whole or not at all: a temporary file moved into place
            log_dir.mkdir(parents=True, exist_ok=True)
            partial = log_dir / "results.json.partial"
            partial.write_text(json.dumps(results, indent=2) + "\n")
            resume.atomic_replace(str(partial), str(log_dir / "results.json"))
            rank_zero_info(f"results: {log_dir / 'results.json'}")


def entry_of_config(configs: Any) -> Optional[str]:
    """The zoo entry whose shipped YAML is among the run's config files, if any."""
    for path in configs if isinstance(configs, (list, tuple)) else [configs]:
        path = Path(str(getattr(path, "absolute", path) or path))
        if path.parent.resolve() == registry.CONFIG_DIR.resolve() and path.suffix == ".yaml":
            return path.stem
    return None


def fit_results(trainer: L.Trainer, fit_seconds: float, seed: Optional[int]) -> dict[str, Any]:
    """What a finished ``fit`` writes to ``results.json`` beside its saved ``config.yaml`` (the trainer's log_dir).

    Scripts read it instead of parsing printed tables: the seed, the monitored metric with the best score and
    checkpoint, the last checkpoint, epochs and steps trained, the fit's wall time, and ``test``: the test metrics
    of the best checkpoint when ``test_after_fit`` is on (else empty).
    """
    callback = trainer.checkpoint_callback  # None when checkpointing is off: those fields are null
    score = getattr(callback, "best_model_score", None)
    return {
        "seed": seed,
        "monitor": getattr(callback, "monitor", None),
        "best_score": float(score) if score is not None else None,
        "best_checkpoint": getattr(callback, "best_model_path", "") or None,
        "last_checkpoint": getattr(callback, "last_model_path", "") or None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(fit_seconds, 3),
        "test": {},
    }


def cli_main(args: Optional[list[str]] = None) -> ZooCLI:
    """Run a LightningCLI subcommand (``args`` without the program name)."""
    # LightningCLI reads sys.argv, and DDP relaunches the script with it: put the resolved arguments there.
    sys.argv[1:] = registry.resolve_config_args(sys.argv[1:] if args is None else args)
    try:
        return ZooCLI(
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=ZooArgumentParser,
            parser_kwargs={"prog": "zoo", "description": "lightning-zoo: train and evaluate zoo models"},
            save_config_kwargs={"overwrite": True},
        )
    finally:
        # Lightning destroys only NCCL process groups at exit. A gloo group (DDP on CPUs) left to interpreter shutdown
        # can abort a finished run ("terminate called without an active exception", exit status -6).
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
