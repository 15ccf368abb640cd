"""A callback that SIGKILLs its own ``zoo fit`` process at a chosen moment (used by ``kill_resume_trials.py``).

``--trainer.callbacks+=scripts.reproductions.kill_points.KillAt --trainer.callbacks.moment checkpoint_write
--trainer.callbacks.count 3`` (from the repository root) kills the process at the 3rd occurrence of the moment:

- ``train_step``: inside a training step, after the forward pass and before the optimizer step (``on_before_backward``);
- ``validation``: inside a validation loop, after one of its batches;
- ``checkpoint_write``: while a checkpoint is being written: a timer fires ``delay_ms`` after the checkpoint's
  contents were gathered, so the kill lands in ``torch.save``, the file write or the rename.

SIGKILL cannot be caught: what survives is what reached the disk, as with ``kill -9`` or the OOM killer.
``--trainer.callbacks.signal SIGTERM`` sends a scheduler's preemption signal instead.
"""

from __future__ import annotations

import os
import signal as signal_module
import threading
from typing import Any

import lightning as L


class KillAt(L.Callback):
    def __init__(self, moment: str = "train_step", count: int = 1, delay_ms: float = 2.0, signal: str = "SIGKILL"):
        if moment not in ("train_step", "validation", "checkpoint_write"):
            raise ValueError(f"moment must be train_step, validation or checkpoint_write, got {moment!r}")
        if signal not in ("SIGKILL", "SIGTERM"):
            raise ValueError(f"signal must be SIGKILL or SIGTERM, got {signal!r}")
        self.moment, self.count, self.delay_ms, self.seen = moment, count, delay_ms, 0
        self.signal = getattr(signal_module, signal)

    def _arrive(self, moment: str) -> bool:
        if moment != self.moment:
            return False
        self.seen += 1
        return self.seen == self.count

    def _kill(self) -> None:
        os.kill(os.getpid(), self.signal)

    def on_before_backward(self, trainer: L.Trainer, *args: Any) -> None:
        if self._arrive("train_step"):
            self._kill()

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if not trainer.sanity_checking and self._arrive("validation"):
            self._kill()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._arrive("checkpoint_write"):
            threading.Timer(self.delay_ms / 1000, self._kill).start()
