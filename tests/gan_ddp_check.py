"""A callback for the DDP test of tests/test_generative.py, importable by the `zoo fit` subprocess (PYTHONPATH=tests)."""

from __future__ import annotations

import lightning as L
import torch


class GANWeightsEqualAcrossRanks(L.Callback):
    """Fails the run unless the ranks see different images yet hold the same generator and discriminator weights
    after every training batch (DDP averages each network's gradients in both of its optimizer steps)."""

    def __init__(self) -> None:
        self.pixel_sum = 0.0
        self.checks = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self.pixel_sum += float(batch[0].sum())
        for network in ("generator", "discriminator"):
            weights = torch.cat([p.detach().flatten() for p in getattr(pl_module, network).parameters()])
            gathered = trainer.strategy.all_gather(weights)
            assert torch.equal(gathered[0], gathered[1]), f"{network} weights differ between ranks"
        self.checks += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sums = trainer.strategy.all_gather(torch.tensor(self.pixel_sum))
        assert sums[0] != sums[1], "the ranks saw the same data, so equal weights would prove nothing"
        assert self.checks > 0, "no training batch: nothing was checked"
        print(f"rank {trainer.global_rank}: GAN weights equal across ranks ({self.checks} checks)", flush=True)
