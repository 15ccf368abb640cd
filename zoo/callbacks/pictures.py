"""Callbacks that draw what a model produces while it trains: sample grids of generative models, frame strips of
the ConvLSTM forecaster. Entries add them in their config (``trainer.callbacks``).

- :class:`SampleGridCallback`: a grid of samples from a fixed noise batch after every ``every_n_epochs`` epochs.
- :class:`FrameStripCallback`: strips of input, target and predicted frames of the first validation and test
  sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid, save_image

from zoo.models.generative import GenerativeModel


def save_and_log_image(trainer: L.Trainer, image: Tensor, path: Path, tag: str) -> None:
    """Write ``image`` ``(3, H, W)`` in [0, 1] to ``path`` and to the trainer's loggers: TensorBoard's
    ``add_image``, or ``log_image`` for loggers that have it (e.g. Weights & Biases)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, path)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, global_step=trainer.global_step)
        elif callable(getattr(logger, "log_image", None)):
            logger.log_image(key=tag, images=[image], step=trainer.global_step)


class SampleGridCallback(L.Callback):
    """Writes a grid of samples from a fixed noise batch after every ``every_n_epochs`` training epochs.

    The same generator seed is used every time, so successive grids show the same noise decoded by the
    model as it trains. Conditional models get one row per class. The PNG goes to
    ``<dirpath>/epoch=<E>.png`` (``dirpath`` defaults to ``<trainer.log_dir>/samples``) and to TensorBoard
    (``add_image``) when a TensorBoard logger is attached.

    Args:
        dirpath: where to write the PNG files.
        per_row: samples per row (and per class for conditional models).
        rows: rows of an unconditional grid.
        seed: seed of the fixed noise batch.
        every_n_epochs: write a grid every this many epochs.
    """

    def __init__(self, dirpath: Optional[str] = None, per_row: int = 8, rows: int = 8, seed: int = 0,
                 every_n_epochs: int = 1) -> None:
        super().__init__()
        if min(per_row, rows, every_n_epochs) < 1:
            raise ValueError(f"per_row, rows and every_n_epochs must be >= 1, got {per_row}, {rows}, "
                             f"{every_n_epochs}")
        self.dirpath, self.per_row, self.rows = dirpath, per_row, rows
        self.seed, self.every_n_epochs = seed, every_n_epochs
        self.written: list[Path] = []

    def grid(self, model: GenerativeModel) -> Tensor:
        """The grid image ``(3, H', W')`` of the fixed noise batch."""
        labels = None
        if model.hparams.conditional:
            labels = torch.arange(model.hparams.num_classes).repeat_interleave(self.per_row)
        n = len(labels) if labels is not None else self.per_row * self.rows
        samples = model.sample(n, labels=labels, generator=torch.Generator().manual_seed(self.seed))
        return make_grid(samples.cpu(), nrow=self.per_row, padding=2, pad_value=0.5)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        # Every rank reads trainer.log_dir: under DDP it is a broadcast, so reading it on rank 0 alone deadlocks.
        directory = Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "samples")
        if not trainer.is_global_zero:
            return
        path = directory / f"epoch={trainer.current_epoch:03d}.png"
        save_and_log_image(trainer, self.grid(pl_module), path, "samples (fixed noise)")
        self.written.append(path)


class FrameStripCallback(L.Callback):
    """Writes PNG strips of input, target and predicted frames of the first validation and test sequences.

    For each of the first ``num_sequences`` sequences of the first batch, three rows: the input frames, the
    true future frames, the model's predicted future frames (``pl_module.predict_frames``). The image goes to
    ``<dirpath>/<stage>-epoch=<E>.png`` (``dirpath`` defaults to ``<trainer.log_dir>/strips``) and to the logger:
    TensorBoard's ``add_image``, or ``log_image`` for loggers that have it (e.g. Weights & Biases).

    Args:
        dirpath: where to write the PNG files.
        num_sequences: sequences per strip.
        every_n_epochs: write a validation strip every this many epochs (test strips are always written).
    """

    def __init__(self, dirpath: Optional[str] = None, num_sequences: int = 2, every_n_epochs: int = 1) -> None:
        super().__init__()
        if num_sequences < 1 or every_n_epochs < 1:
            raise ValueError(f"num_sequences and every_n_epochs must be >= 1, got {num_sequences}, {every_n_epochs}")
        self.dirpath, self.num_sequences, self.every_n_epochs = dirpath, num_sequences, every_n_epochs
        self._batch: Optional[tuple[Tensor, Tensor]] = None
        self.written: list[Path] = []

    def _keep_first(self, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if batch_idx == 0 and dataloader_idx == 0:
            inputs, target = batch
            self._batch = (inputs[: self.num_sequences].detach(), target[: self.num_sequences].detach())

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep_first(batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep_first(batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._write(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def strip(self, pl_module: L.LightningModule, inputs: Tensor, target: Tensor) -> Tensor:
        """The image ``(3, H', W')``: per sequence a row of inputs, of targets and of predictions."""
        predictions = pl_module.predict_frames(inputs)
        rows = []
        for row in (inputs, target, predictions):
            rows.append(F.pad(row, (0, 0, 0, 0, 0, 0, 0, max(inputs.shape[1], target.shape[1]) - row.shape[1])))
        frames = torch.stack(rows, dim=1).flatten(0, 2)  # (sequences * 3 rows * columns, C, H, W)
        columns = rows[0].shape[1]
        return make_grid(frames.float().cpu(), nrow=columns, padding=2, pad_value=0.5)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._batch is None or not trainer.is_global_zero:
            return
        image = self.strip(pl_module, *self._batch)
        self._batch = None
        directory = Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "strips")
        path = directory / f"{stage}-epoch={trainer.current_epoch:03d}.png"
        save_and_log_image(trainer, image, path, f"{stage}/frames (rows: inputs, targets, predictions)")
        self.written.append(path)
