"""A callback for the DDP test of tests/test_generative.py, importable by the `zoo fit` subprocess run from the
repository root (``--trainer.callbacks+=tests.helpers.gan_ddp_check.GANWeightsEqualAcrossRanks``)."""

from __future__ import annotations

import lightning as L
import torch

from tests.helpers.ddp_rank_checks import RankCheck


class GANWeightsEqualAcrossRanks(RankCheck):
    """Fails the run unless the ranks see different images yet hold the same generator and discriminator weights
    after every training batch (DDP averages each network's gradients in both of its optimizer steps)."""

    what = "GAN weights"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self.record_batch(batch)
        for network in ("generator", "discriminator"):
            weights = torch.cat([p.detach().flatten() for p in getattr(pl_module, network).parameters()])
            gathered = trainer.strategy.all_gather(weights)
            assert torch.equal(gathered[0], gathered[1]), f"{network} weights differ between ranks"
        self.checks += 1
