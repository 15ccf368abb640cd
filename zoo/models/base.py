"""Small task bases that every zoo model builds on.

A zoo model is a :class:`lightning.LightningModule` that builds its network in ``__init__`` from plain
arguments. :class:`ZooModule` saves those arguments (``save_hyperparameters`` collects the arguments of every
``__init__`` in the class chain), so ``Model.load_from_checkpoint(path)`` rebuilds the same network, and turns
the plain optimizer arguments into ``configure_optimizers``. A subclass changes one thing by overriding one small
method: ``build_network``, ``loss`` or ``configure_optimizers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanSquaredError
from torchmetrics.classification import MulticlassAccuracy

OptimizerName = Literal["sgd", "adam", "adamw"]


class ZooModule(L.LightningModule):
    """Base of all zoo models: optimizer from plain hyperparameters, input-shape checks.

    Args:
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: learning rate.
        momentum: SGD momentum (ignored by Adam).
        nesterov: SGD with Nesterov momentum (needs ``momentum > 0``; ignored by Adam).
        weight_decay: L2 penalty.
        lr_step_gamma: if set, the learning rate is multiplied by this after every epoch (``StepLR``).
        betas: Adam's ``(beta1, beta2)``.
    """

    #: the logged metric that the zoo's checkpoint callback keeps the best of, and its direction.
    checkpoint_monitor: str = "val/loss"
    checkpoint_mode: Literal["min", "max"] = "min"

    def __init__(
        self,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        lr_step_gamma: Optional[float] = None,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        super().__init__()
        if optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be one of 'sgd', 'adam', 'adamw', got {optimizer!r}")
        if nesterov and optimizer == "sgd" and momentum <= 0:
            raise ValueError(
                f"nesterov=True needs momentum > 0, got momentum={momentum}; set momentum (e.g. 0.9) or nesterov=False"
            )
        self.save_hyperparameters()

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = self.build_optimizer([p for p in self.parameters() if p.requires_grad])
        if hp.lr_step_gamma is None:
            return opt
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=hp.lr_step_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def build_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """The optimizer of the hyperparameters over ``params`` (models with several optimizers call it per set)."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
            )
        else:
            cls = torch.optim.Adam if hp.optimizer == "adam" else torch.optim.AdamW
            opt = cls(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        return opt

    def check_input(self, x: Tensor, expected: Sequence[Optional[int]], name: str = "input") -> None:
        """Raise ``ValueError`` naming the expected and the received shape (``None`` matches any size)."""
        ok = x.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
        if not ok:
            want = "(" + ", ".join("N" if i == 0 and e is None else "*" if e is None else str(e)
                                   for i, e in enumerate(expected)) + ")"
            raise ValueError(
                f"{type(self).__name__} expects {name} of shape {want}, got {tuple(x.shape)}; "
                f"check the datamodule or the model's size arguments"
            )


class Classifier(ZooModule):
    """Cross-entropy classifier with torchmetrics accuracy.

    Batches are ``(x, y)`` with integer labels ``y`` of shape ``(N,)``. Subclasses implement
    :meth:`build_network` (returning logits) and :meth:`input_shape`; they may override :meth:`loss`.
    Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``.
    """

    checkpoint_monitor = "val/acc"
    checkpoint_mode = "max"

    def __init__(self, num_classes: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = self.build_network()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def build_network(self) -> nn.Module:
        """Return the network mapping a batch of inputs to logits of shape ``(N, num_classes)``.

        Read sizes from ``self.hparams`` (saved before this is called).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement build_network()")

    def input_shape(self) -> tuple[Optional[int], ...]:
        """The expected input shape, ``None`` where any size goes (first entry: the batch)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x, self.input_shape())
        return self.network(x)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str, accuracy: MulticlassAccuracy) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        accuracy(logits.detach(), y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train", self.train_acc)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test", self.test_acc)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Class probabilities of shape ``(N, num_classes)``."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=-1)


class ImageClassifier(Classifier):
    """Classifier of images ``x`` of shape ``(N, in_channels, image_size, image_size)``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, **kwargs: Any) -> None:
        super().__init__(num_classes=num_classes, **kwargs)

    def input_shape(self) -> tuple[Optional[int], ...]:
        size = self.hparams.image_size
        return (None, self.hparams.in_channels, size, size)


class Regressor(ZooModule):
    """Least-squares regressor: batches ``(x, y)`` with real targets ``y`` of shape ``(N,)``.

    Subclasses implement :meth:`build_network` (mapping ``x`` to ``(N, 1)`` or ``(N,)`` predictions; a subclass
    that registers its own modules may return ``None`` and override :meth:`forward`) and :meth:`input_shape`.
    The loss is the mean squared error of the model's outputs; :meth:`to_target_unit` maps outputs and targets
    to the unit the RMSE is reported in (identity here; a forecaster of scaled values multiplies the scale back).
    Logs ``train/loss``, ``val/loss``, ``val/rmse``, ``test/loss`` and ``test/rmse`` (torchmetrics' root mean
    squared error over the whole split).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        network = self.build_network()
        if network is not None:
            self.network = network
        self.val_rmse = MeanSquaredError(squared=False)
        self.test_rmse = MeanSquaredError(squared=False)

    def build_network(self) -> Optional[nn.Module]:
        raise NotImplementedError(f"{type(self).__name__} must implement build_network()")

    def input_shape(self) -> tuple[Optional[int], ...]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Predictions of shape ``(N,)``."""
        self.check_input(x, self.input_shape())
        return self.network(x).reshape(len(x))

    def to_target_unit(self, values: Tensor) -> Tensor:
        """Outputs or targets in the unit that the RMSE and predictions are reported in."""
        return values

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(prediction, target)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        prediction = self(x)
        loss = self.loss(prediction, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=len(y))
        if stage != "train":
            rmse = self.val_rmse if stage == "val" else self.test_rmse
            rmse(self.to_target_unit(prediction.detach()), self.to_target_unit(y))
            self.log(f"{stage}/rmse", rmse, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Predictions in the target unit, shape ``(N,)``."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.to_target_unit(self(x))
