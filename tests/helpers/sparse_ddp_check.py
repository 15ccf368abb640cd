"""A callback for the DDP test of tests/test_sparse_cnn.py, importable by the `zoo fit` subprocess run from the
repository root (``--trainer.callbacks+=tests.helpers.sparse_ddp_check.DutyCyclesEqualAcrossRanks``)."""

from __future__ import annotations

import lightning as L
import torch

from tests.helpers.ddp_rank_checks import RankCheck
from zoo.layers.sparse import kwinners_layers


class DutyCyclesEqualAcrossRanks(RankCheck):
    """Fails the run unless the ranks see different images yet hold the same duty cycles before every batch.

    It checks at the start of a batch, before the forward pass (where DDP's ``broadcast_buffers`` would copy
    rank 0's buffers to the others): the duty cycles then are what the previous batch's update left.
    """

    what = "duty cycles"

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.record_batch(batch)
        if batch_idx == 0:
            return
        for layer in kwinners_layers(pl_module):
            gathered = trainer.strategy.all_gather(layer.duty_cycles)
            assert torch.equal(gathered[0], gathered[1]), f"duty cycles differ between ranks: {gathered}"
            assert gathered[0].sum() > 0
            self.checks += 1
