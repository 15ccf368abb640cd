"""A datamodule base whose four loaders come from one ``_loader(split, shuffle)`` method."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader


class SplitLoaders(L.LightningDataModule):
    """Loaders of the ``train`` (shuffled), ``val`` and ``test`` splits; ``predict`` reads the test split."""

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        raise NotImplementedError(f"{type(self).__name__} must implement _loader(split, shuffle)")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
