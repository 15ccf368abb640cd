"""A callback for the DDP test of tests/test_sparse.py, importable by the `zoo fit` subprocess (PYTHONPATH=tests)."""

from __future__ import annotations

import lightning as L
import torch

from zoo.layers.sparse import kwinners_layers


class DutyCyclesEqualAcrossRanks(L.Callback):
    """Fails the run unless the ranks see different images yet hold the same duty cycles before every batch.

    It checks at the start of a batch, before the forward pass (where DDP's ``broadcast_buffers`` would copy
    rank 0's buffers to the others): the duty cycles then are what the previous batch's update left.
    """

    def __init__(self) -> None:
        self.pixel_sum = 0.0
        self.checks = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.pixel_sum += float(batch[0].sum())
        if batch_idx == 0:
            return
        for layer in kwinners_layers(pl_module):
            gathered = trainer.strategy.all_gather(layer.duty_cycles)
            assert torch.equal(gathered[0], gathered[1]), f"duty cycles differ between ranks: {gathered}"
            assert gathered[0].sum() > 0
            self.checks += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sums = trainer.strategy.all_gather(torch.tensor(self.pixel_sum))
        assert sums[0] != sums[1], "the ranks saw the same data, so equal duty cycles would prove nothing"
        assert self.checks > 0, "no batch after the first one: nothing was checked"
        print(f"rank {trainer.global_rank}: duty cycles equal across ranks ({self.checks} checks)", flush=True)
