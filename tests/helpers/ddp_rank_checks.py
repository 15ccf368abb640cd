"""Shared part of the DDP test callbacks (tests/helpers/*_ddp_check.py), importable by `zoo fit` subprocesses run
from the repository root: each rank sums the pixels it saw, and at the end the ranks must have seen different data."""

from __future__ import annotations

import lightning as L
import torch


class RankCheck(L.Callback):
    """Base of a callback that asserts something equal across ranks; ``what`` names it in the final message."""

    what = "state"

    def __init__(self) -> None:
        self.pixel_sum = 0.0
        self.checks = 0

    def record_batch(self, batch) -> None:
        self.pixel_sum += float(batch[0].sum())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sums = trainer.strategy.all_gather(torch.tensor(self.pixel_sum))
        assert sums[0] != sums[1], f"the ranks saw the same data, so equal {self.what} would prove nothing"
        assert self.checks > 0, "nothing was checked"
        print(f"rank {trainer.global_rank}: {self.what} equal across ranks ({self.checks} checks)", flush=True)
