"""Writing `zoo predict` outputs to disk with Lightning's ``BasePredictionWriter``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """Save every rank's predictions, concatenated, to ``<output_dir>/predictions[-rank<r>].pt``.

    Use: ``zoo predict -c <entry> --ckpt_path <ckpt> --trainer.callbacks+=zoo.writers.PredictionWriter
    --trainer.callbacks.output_dir predictions``. Tensor predictions are concatenated along the batch
    dimension; anything else is saved as the list of per-batch outputs.
    """

    def __init__(self, output_dir: str = "predictions") -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = Path(output_dir)

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Optional[Sequence[Any]],
    ) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        outputs: Any = list(predictions)
        if outputs and all(isinstance(p, torch.Tensor) for p in outputs):
            outputs = torch.cat(outputs)
        suffix = f"-rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        path = self.output_dir / f"predictions{suffix}.pt"
        torch.save(outputs, path)
        print(f"wrote predictions to {path}")


class ClassProbabilityPrinter(BasePredictionWriter):
    """Print ``<file>  <class>  <probability>`` for every image of a `zoo predict` run.

    For batches ``(x, y, paths)`` (the dogs-vs-cats datamodule) whose predictions are class probabilities. Use:
    ``zoo predict -c <entry> --ckpt_path <ckpt> --data.predict_dir my_photos
    --trainer.callbacks+=zoo.writers.ClassProbabilityPrinter``. ``class_names`` defaults to the datamodule's
    ``classes``.
    """

    def __init__(self, class_names: Optional[Sequence[str]] = None) -> None:
        super().__init__(write_interval="batch")
        self.class_names = list(class_names) if class_names else None

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Optional[Sequence[int]],
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        names = self.class_names or list(getattr(trainer.datamodule, "classes", []))
        probabilities, classes = prediction.max(dim=-1)
        for path, probability, index in zip(batch[-1], probabilities.tolist(), classes.tolist()):
            name = names[index] if index < len(names) else str(index)
            print(f"{path}\t{name}\t{probability:.4f}")
