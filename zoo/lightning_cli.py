"""The Lightning half of the ``zoo`` command: ``zoo fit|validate|test|predict`` as a LightningCLI.

Imported only when one of these subcommands runs (``zoo models``, ``zoo evaluate --help`` and the like start
without torch or Lightning; see :mod:`zoo.cli`). ``-c`` also takes a zoo entry name. Every ``zoo fit`` writes
``results.json`` (best score and checkpoint, test metrics, ...) beside its saved config.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

import datamodules  # noqa: F401  (registers the datamodules for --data <Name>)
import zoo.models  # noqa: F401  (registers the models for --model <Name>)
from zoo import errors, registry
from zoo.checkpoint_trust import RefuseUntrustedCkptPath

class ZooCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps the best and the last checkpoint.

    Unless ``monitor`` is given, it watches the model's ``checkpoint_monitor`` (``val/acc`` for classifiers) in
    the model's ``checkpoint_mode``. At the end of ``fit`` it prints the best checkpoint and its score.
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
    ) -> None:
        super().__init__(
            dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_last=save_last,
            save_top_k=save_top_k, every_n_epochs=every_n_epochs, auto_insert_metric_name=False,
        )
        self._monitor_given = monitor is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._monitor_given:
            self.monitor = getattr(pl_module, "checkpoint_monitor", None)
            self.mode = getattr(pl_module, "checkpoint_mode", "min")
            self.kth_value = torch.tensor(math.inf if self.mode == "min" else -math.inf)
        super().setup(trainer, pl_module, stage)

    def _save_last_every_epoch(self, trainer: L.Trainer) -> None:
        # Lightning 2.6 writes last.ckpt only when a top-k file was written in the same step; resuming needs
        # the true last state, so write it whenever this step has not been saved as last yet.
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        if getattr(self, "_last_saved_step", None) != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_saved_step = trainer.global_step

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_model_path:
            score = self.best_model_score
            shown = f"{self.monitor}={float(score):.4f}" if score is not None else ""
            rank_zero_info(f"best checkpoint: {self.best_model_path} {shown}".rstrip())
        if self.last_model_path:
            rank_zero_info(f"last checkpoint: {self.last_model_path}")


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


class ZooCLI(RefuseUntrustedCkptPath, LightningCLI):
    """LightningCLI with the zoo's checkpoint callback always on (``--checkpoint.*`` configures it)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(ZooCheckpoint, "checkpoint")
        parser.add_argument(
            "--test_after_fit", type=bool, default=False,
            help="after `fit`, test the best checkpoint on the test set and print its metrics",
        )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The configured Trainer, with :class:`ZooProgressBar` as its bar unless the config names one or none."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs.setdefault("callbacks", [*callbacks, ZooProgressBar()])
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        self._fit_started = time.perf_counter()

    def after_fit(self) -> None:
        fit_seconds = time.perf_counter() - self._fit_started
        # taken before testing: loading the best checkpoint for the test can reset the callback's last_model_path
        results = fit_results(self.trainer, fit_seconds, self.config[self.subcommand].get("seed_everything"))
        if self.config_init[self.subcommand].get("test_after_fit"):
            # fast_dev_run and runs without validation keep no best checkpoint: test the weights in memory
            metrics = self.trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path="best" if results["best_checkpoint"] else None
            )
            results["test"] = {key: float(value) for key, value in (metrics[0] if metrics else {}).items()}
        log_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # a collective under DDP: all ranks ask
        if self.trainer.is_global_zero:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            rank_zero_info(f"results: {log_dir / 'results.json'}")


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
