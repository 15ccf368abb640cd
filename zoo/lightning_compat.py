"""Every use of Lightning's private API in the zoo, behind small named functions and three hook classes.

The exact resume, the signal-safe ``last.ckpt``, the throttled progress bar and the ``--ckpt_path`` checks need a
few Lightning internals that no public API offers: the fit loop's progress counters and logged epoch sums, the
SIGTERM flag, ``ModelCheckpoint``'s save methods, ``TQDMProgressBar._should_update``,
``LightningCLI._parse_ckpt_path``, and the like. They are read, written and overridden here only; every other zoo
module calls the functions below, whose docstrings name the internal each one uses.

:data:`SUPPORTED_LIGHTNING` is the range of Lightning versions these internals were checked against, and
:data:`PRIVATE_ATTRIBUTES` lists them. ``tests/test_lightning_compat.py`` checks that the installed Lightning is in
the range and that every listed internal exists on real Lightning objects (and that the list names every private
attribute this file uses, and no other zoo module uses one), so a Lightning upgrade that moves one fails that test
file, naming it, rather than the resume tests in many places. To support a new Lightning: widen the range, run that
test file, and fix the functions it names.

This module imports Lightning alone (no zoo module), so the models, the datamodules and the training modules may
all import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Optional
from weakref import proxy

import lightning as L
import torch
from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE, _TENSORBOARDX_AVAILABLE
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI
from packaging.specifiers import SpecifierSet
from packaging.version import Version

#: The Lightning versions whose internals the functions below were checked against (the installed one: 2.6.6).
SUPPORTED_LIGHTNING = ">=2.6,<2.7"

#: Every Lightning internal used in this file, as ``(owner, dotted path)``; the owner is a class whose instances
#: have it, or a module. ``Trainer`` paths are read during a ``fit``, ``_ResultMetric`` ones on the items of
#: ``fit_loop.epoch_loop._results``. Public names under a private one (``..._data_fetcher``) are listed because
#: Lightning may change them freely.
PRIVATE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("Trainer", "_signal_connector.received_sigterm"),
    ("Trainer", "fit_loop._data_fetcher"),
    ("Trainer", "fit_loop.epoch_loop._should_check_val_fx"),
    ("Trainer", "fit_loop.epoch_loop._results"),
    ("Trainer", "fit_loop.epoch_loop.batch_progress.is_last_batch"),
    ("Trainer", "fit_loop.epoch_loop.batch_progress.current.processed"),
    ("Trainer", "fit_loop.epoch_progress.total.ready"),
    ("Trainer", "fit_loop.epoch_progress.current.ready"),
    ("_ResultMetric", "value"),
    ("_ResultMetric", "is_tensor"),
    ("_ResultMetric", "cumulated_batch_size"),
    ("_ResultMetric", "_computed"),
    ("_ResultMetric", "meta.on_epoch"),
    ("_ResultMetric", "meta.is_max_reduction"),
    ("_ResultMetric", "meta.is_min_reduction"),
    ("_ResultMetric", "meta.reduce_fx"),
    ("ModelCheckpoint", "_save_checkpoint"),
    ("ModelCheckpoint", "_save_last_checkpoint"),
    ("ModelCheckpoint", "_monitor_candidates"),
    ("ModelCheckpoint", "_last_global_step_saved"),
    ("ModelCheckpoint", "_last_checkpoint_saved"),
    ("TQDMProgressBar", "_should_update"),
    ("LightningCLI", "_parse_ckpt_path"),
    ("LightningModule", "_trainer"),
    ("lightning.fabric.utilities.seed", "_collect_rng_states"),
    ("lightning.fabric.utilities.seed", "_set_rng_states"),
    ("lightning.fabric.loggers.tensorboard", "_TENSORBOARD_AVAILABLE"),
    ("lightning.fabric.loggers.tensorboard", "_TENSORBOARDX_AVAILABLE"),
)


def unsupported_lightning(version: Optional[str] = None) -> Optional[str]:
    """A warning naming the installed Lightning (or ``version``) when it is outside :data:`SUPPORTED_LIGHTNING`;
    ``None`` inside it."""
    version = version or L.__version__
    if SpecifierSet(SUPPORTED_LIGHTNING).contains(Version(version), prereleases=True):
        return None
    return (f"lightning {version} is outside the versions this zoo supports ({SUPPORTED_LIGHTNING}): checkpointing "
            f"and exact resume use Lightning internals that may have changed (tests/test_lightning_compat.py checks "
            f"them). Install a supported version, e.g. pip install 'lightning{SUPPORTED_LIGHTNING}'.")


# ---------------------------------------------------------------------------------------------- the trainer
def clear_sigterm(trainer: L.Trainer) -> None:
    """Forget a received SIGTERM for now, so Lightning does not stop after this batch
    (``trainer._signal_connector.received_sigterm = False``; the public ``trainer.received_sigterm`` is read-only)."""
    trainer._signal_connector.received_sigterm = False


def set_sigterm(trainer: L.Trainer) -> None:
    """Mark a SIGTERM as received, so Lightning stops at its next check (``trainer._signal_connector.received_sigterm
    = True``)."""
    trainer._signal_connector.received_sigterm = True


def is_last_batch_of_epoch(trainer: L.Trainer) -> bool:
    """Whether the training batch being run is its epoch's last
    (``fit_loop.epoch_loop.batch_progress.is_last_batch``)."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def validation_follows_this_batch(trainer: L.Trainer) -> bool:
    """Whether a validation or the epoch's end follows the training batch just run: its epoch's last batch, or
    ``fit_loop.epoch_loop._should_check_val_fx(fit_loop._data_fetcher)`` (Lightning's own decision to validate)."""
    epoch_loop = trainer.fit_loop.epoch_loop
    return is_last_batch_of_epoch(trainer) or bool(epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher))


def batches_processed_this_epoch(trainer: L.Trainer) -> int:
    """Training batches of the current epoch processed so far, restored with the loops on resume
    (``fit_loop.epoch_loop.batch_progress.current.processed``)."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


@contextlib.contextmanager
def epoch_not_started(trainer: L.Trainer) -> Iterator[None]:
    """Within this block the fit loop counts the epoch that is starting as not started: Lightning counts it as
    ready (``fit_loop.epoch_progress.total.ready`` and ``.current.ready``) before ``on_train_epoch_start``, so a
    checkpoint written there would resume after that epoch's start instead of at it."""
    progress = trainer.fit_loop.epoch_progress
    progress.total.ready -= 1
    progress.current.ready -= 1
    try:
        yield
    finally:
        progress.total.ready += 1
        progress.current.ready += 1


def epoch_logged_sums(trainer: L.Trainer) -> dict[str, Any]:
    """The sums (and batch sizes) of the values logged with ``on_epoch=True`` in the current training epoch, which
    Lightning does not checkpoint: the tensor items of ``fit_loop.epoch_loop._results`` (a ``_ResultCollection``
    of ``_ResultMetric``: ``value``, ``cumulated_batch_size``, ``is_tensor``, ``meta.on_epoch``)."""
    return {
        key: {"value": result.value, "cumulated_batch_size": getattr(result, "cumulated_batch_size", None)}
        for key, result in trainer.fit_loop.epoch_loop._results.items() if result.is_tensor and result.meta.on_epoch
    }


def add_epoch_logged_sums(trainer: L.Trainer, saved: dict[str, Any]) -> None:
    """Add sums of :func:`epoch_logged_sums`, saved before a mid-epoch checkpoint, to those of the first resumed
    batch (``fit_loop.epoch_loop._results``: ``_ResultMetric.value``, ``cumulated_batch_size``, ``meta.reduce_fx``
    for max/min reductions, and ``_computed``, the cached epoch value, reset).

    Called once, after that batch logged: ``saved + first`` is the same float addition the uninterrupted run made
    (``sum_before + first``), so the epoch means come out bit for bit the same.
    """
    results = trainer.fit_loop.epoch_loop._results
    for key, entry in saved.items():
        result = results.get(key)
        if result is None or not result.is_tensor:
            continue
        before = entry["value"].to(result.value.device)
        if result.meta.is_max_reduction or result.meta.is_min_reduction:
            result.value = result.meta.reduce_fx(before, result.value)
        else:
            result.value = before + result.value
        if entry["cumulated_batch_size"] is not None:
            before_size = entry["cumulated_batch_size"].to(result.value.device)
            result.cumulated_batch_size = before_size + result.cumulated_batch_size
        result._computed = None


# ---------------------------------------------------------------------------------------------- elsewhere
def attached_trainer(module: L.LightningModule) -> Optional[L.Trainer]:
    """The trainer ``module`` runs in, or ``None`` (``LightningModule._trainer``; the public ``trainer`` property
    raises when no trainer is attached)."""
    return module._trainer


def global_rng_states(include_cuda: bool) -> dict[str, Any]:
    """The global torch, CUDA (``include_cuda``), numpy and Python random states
    (``lightning.fabric.utilities.seed._collect_rng_states``; numpy's as its ``get_state()`` tuple)."""
    return _collect_rng_states(include_cuda=include_cuda)


def set_global_rng_states(states: dict[str, Any]) -> None:
    """Set the global random states of :func:`global_rng_states`
    (``lightning.fabric.utilities.seed._set_rng_states``)."""
    _set_rng_states(states)


def default_logger_name() -> str:
    """The class ``Trainer(logger=True)`` logs with: ``TensorBoardLogger`` when tensorboard or tensorboardX is
    installed, else ``CSVLogger`` (``lightning.fabric.loggers.tensorboard._TENSORBOARD_AVAILABLE``,
    ``_TENSORBOARDX_AVAILABLE``)."""
    return "TensorBoardLogger" if _TENSORBOARD_AVAILABLE or _TENSORBOARDX_AVAILABLE else "CSVLogger"


# ---------------------------------------------------------------------------------------------- hook classes
class CheckpointHooks(ModelCheckpoint):
    """``ModelCheckpoint`` with the private methods the zoo changes turned into public ones.

    - :meth:`write_checkpoint_file` writes one checkpoint file: ``ModelCheckpoint._save_checkpoint`` calls it where
      it calls ``trainer.save_checkpoint``, then keeps Lightning's book-keeping (``_last_global_step_saved``,
      ``_last_checkpoint_saved``, the loggers' ``after_save_checkpoint``).
    - ``last.ckpt`` is written by :meth:`write_last_checkpoint` alone (``ModelCheckpoint._save_last_checkpoint``
      with ``_monitor_candidates``): Lightning's own calls of ``_save_last_checkpoint`` (beside each top-k file, on
      an exception, at the end of training) write nothing, and writing ``last.ckpt`` leaves the step a top-k save
      compares with (``_last_global_step_saved``) as it was.
    """

    def write_checkpoint_file(self, trainer: L.Trainer, filepath: str) -> None:
        """Write the checkpoint file ``filepath`` (Lightning: ``trainer.save_checkpoint``)."""
        trainer.save_checkpoint(filepath, self.save_weights_only)

    def write_last_checkpoint(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` now, named and rotated as ``ModelCheckpoint`` names and rotates it."""
        top_k_step = self._last_global_step_saved  # a last-only file must not make a top-k save skip this step
        super()._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = top_k_step

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:  # ModelCheckpoint._save_checkpoint
        self.write_checkpoint_file(trainer, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        pass  # ModelCheckpoint._save_last_checkpoint, as Lightning calls it: see write_last_checkpoint


class ProgressBarHooks(TQDMProgressBar):
    """``TQDMProgressBar`` whose redraw decision (``TQDMProgressBar._should_update``) also asks
    :meth:`should_redraw`."""

    def should_redraw(self, current: int, total: int) -> bool:
        """Whether the bar redraws at batch ``current`` of ``total``, once Lightning's refresh rate allows it."""
        return True

    def _should_update(self, current: int, total: int) -> bool:  # TQDMProgressBar._should_update
        return super()._should_update(current, total) and self.should_redraw(current, total)


class CLIHooks(LightningCLI):
    """``LightningCLI`` with a hook before it reads ``--ckpt_path``: ``LightningCLI._parse_ckpt_path`` loads the
    checkpoint's hyperparameters into the config after parsing, before any public hook."""

    def before_reading_ckpt_path(self) -> bool:
        """Runs before LightningCLI reads the hyperparameters of ``--ckpt_path`` into the config; ``False`` skips
        that read (the command line alone then configures the model)."""
        return True

    def _parse_ckpt_path(self) -> None:  # LightningCLI._parse_ckpt_path
        if self.before_reading_ckpt_path():
            super()._parse_ckpt_path()
