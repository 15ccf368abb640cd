"""Small task bases that every zoo model builds on.

A zoo model is a :class:`lightning.LightningModule` that builds its network in ``__init__`` from plain
arguments. :class:`ZooModule` saves those arguments (``save_hyperparameters`` collects the arguments of every
``__init__`` in the class chain), so ``Model.load_from_checkpoint(path)`` rebuilds the same network, and turns
the plain optimizer arguments into ``configure_optimizers``. A subclass changes one thing by overriding one small
method: ``build_network``, ``loss`` or ``configure_optimizers``.
"""

from __future__ import annotations

import inspect
import itertools
import operator
import time
from collections.abc import Sequence
from typing import Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy

from zoo.errors import option
from zoo.lightning_compat import attached_trainer

OptimizerName = Literal["sgd", "adam", "adamw"]


def datamodule_of(module: L.LightningModule) -> Optional[Any]:
    """The datamodule the module's trainer runs with, or ``None`` (no trainer, or plain dataloaders)."""
    trainer = attached_trainer(module)  # the public property raises when no trainer is attached
    return getattr(trainer, "datamodule", None) if trainer is not None else None


def check_class_count(module: L.LightningModule) -> None:
    """Refuse a datamodule whose ``class_names`` are not the module's ``num_classes`` names, naming the option to set
    (the labels would not fit a classifier's logits, or a conditional generator's one-hot labels)."""
    names = getattr(datamodule_of(module), "class_names", None)
    if names is not None and len(names) != module.hparams.num_classes:
        shown = ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
        raise ValueError(f"{type(module).__name__} has num_classes={module.hparams.num_classes} but the datamodule "
                         f"has {len(names)} classes ({shown}); set {option('model', 'num_classes', len(names))}")


def check_count(model: nn.Module, value: Any, call: str, what: str) -> int:
    """``value`` as an int >= 0 (0 asks for an empty result); else one ``ValueError`` naming ``call`` (the method
    and its arguments, ``"sample(n)"``) and ``what`` it counts (``"samples n"``)."""
    try:
        count = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        count = None
    if count is None or count < 0:
        raise ValueError(f"{type(model).__name__}.{call} takes a whole number of {what} >= 0, got {value!r}")
    return count


def check_saved_arguments(module: L.LightningModule) -> None:
    """Refuse a subclass whose saved hyperparameters would not rebuild it (call after ``save_hyperparameters``).

    ``save_hyperparameters`` collects the ``__init__`` arguments of every class on the way from the subclass to
    :class:`ZooModule`, the subclass's value winning. A subclass that passes a base argument up *changed*
    (``super().__init__(num_classes=num_classes + 1)``) builds its network from the changed value but saves its own,
    and an ``__init__`` that calls its base without ``super()`` is not seen at all: either way a checkpoint would
    rebuild another model. Both are refused here, naming the argument and the fix.
    """
    frame, levels = inspect.currentframe(), []
    while frame is not None:
        local = frame.f_locals
        if frame.f_code.co_name == "__init__" and local.get("self") is module and "__class__" in local:
            parameters = inspect.signature(local["__class__"].__init__).parameters.values()
            levels.append((local["__class__"], {p.name: local[p.name] for p in parameters if p.name in local and
                                                 p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}))
        frame = frame.f_back
    for (outer, given), (inner, passed) in itertools.product(levels[::-1], levels):
        for name in given.keys() & passed.keys():
            if issubclass(outer, inner) and outer is not inner and not _same_value(given[name], passed[name]):
                raise ValueError(
                    f"{outer.__name__} was given {name}={given[name]!r} but passes {name}={passed[name]!r} on to "
                    f"{inner.__name__}: the network is built from {passed[name]!r} while the saved hyperparameters, "
                    f"which rebuild the model from a checkpoint, keep {given[name]!r}. Give {outer.__name__}'s "
                    f"{name} the default you want and pass it up unchanged.")
    seen = {cls for cls, _ in levels}
    for cls in type(module).__mro__:
        if "__init__" in cls.__dict__ and issubclass(cls, ZooModule) and cls not in seen:
            raise ValueError(f"{cls.__name__}.__init__ calls its base class without the zero-argument super(), so its "
                             f"arguments are not saved and a checkpoint would not rebuild it: call super().__init__(...)")


def _same_value(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # tensors and the like: values the zoo's arguments never are
        return True


def check_image_size(module: L.LightningModule) -> None:
    """Refuse a datamodule whose images have another side than the module's ``image_size`` (when both declare one),
    naming both options; Lightning would otherwise stop with a traceback about merging the two sets of
    hyperparameters, or the first batch with one about matrix sizes."""
    datamodule = datamodule_of(module)
    model_size, data_size = module.hparams.get("image_size"), getattr(datamodule, "image_size", None)
    if model_size is None or data_size is None or model_size == data_size:
        return
    model_name, data_name = type(module).__name__, type(datamodule).__name__
    raise ValueError(f"{model_name} takes {model_size}x{model_size} images but {data_name} makes {data_size}x"
                     f"{data_size} ones; set {option('model', 'image_size', data_size, model_name)} (or "
                     f"{option('data', 'image_size', model_size, data_name)} where the datamodule takes one)")


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
        lr_schedule: ``"onecycle"``: ``lr`` is the peak of a one-cycle schedule over the whole run, stepped per batch
            (Smith & Topin, 2019, "Super-Convergence"; ``torch.optim.lr_scheduler.OneCycleLR``, cosine annealing).
        warmup_fraction: the share of the one-cycle run spent rising to ``lr``.
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
        lr_schedule: Optional[Literal["onecycle"]] = None,
        warmup_fraction: float = 0.25,
    ) -> None:
        super().__init__()
        if optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be one of 'sgd', 'adam', 'adamw', got {optimizer!r}")
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not value >= 0:  # nan too
                raise ValueError(f"{option('model', name)} must be 0 or more, got {value}; pass a non-negative {name}")
        if nesterov and optimizer == "sgd" and momentum <= 0:
            raise ValueError(
                f"nesterov=True needs momentum > 0, got momentum={momentum}; set momentum (e.g. 0.9) or nesterov=False"
            )
        if lr_schedule not in (None, "onecycle"):
            raise ValueError(f"lr_schedule must be null or 'onecycle', got {lr_schedule!r}")
        if lr_schedule is not None and lr_step_gamma is not None:
            raise ValueError("lr_schedule and lr_step_gamma both set a schedule; set one of them")
        if not 0 < warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be between 0 and 1, got {warmup_fraction}")
        self.save_hyperparameters()
        check_saved_arguments(self)
        self._epoch_metrics: dict[str, dict[str, tuple[Metric, bool]]] = {}
        self._train_sums: dict[str, tuple[Tensor, int, bool]] = {}
        self._next_step_log: dict[str, float] = {}

    def setup(self, stage: str) -> None:
        """Refuse a datamodule whose images are not this model's ``image_size`` (:func:`check_image_size`)."""
        check_image_size(self)

    # ------------------------------------------------------------------ cheap logging
    # Lightning's ``self.log`` costs about 0.4 ms a call on a CPU (it moves its stored result to the device on
    # every call), a tenth of a LeNet step; the two methods below log the same values with fewer calls.

    #: seconds between the progress bar's step values of ``log_train_step`` (the logger's steps always get theirs).
    step_log_interval: float = 0.25
    #: log the training metrics of :meth:`log_train_step` through ``self.log`` at every step (slower), for callbacks
    #: that read ``trainer.callback_metrics`` during an epoch; set on its own when a callback monitors ``train/...``.
    log_every_train_step: bool = False

    def logs_every_train_step(self, trainer: L.Trainer) -> bool:
        """Whether :meth:`log_train_step` logs every step in this fit: :attr:`log_every_train_step`, or a callback
        (``ModelCheckpoint``, ``EarlyStopping``, ...) whose ``monitor`` is a ``train/`` metric (read once a fit)."""
        if getattr(self, "_every_step_for", None) != id(trainer):
            monitors = [str(getattr(callback, "monitor", None) or "") for callback in trainer.callbacks]
            self._every_step = self.log_every_train_step or any(m.startswith("train/") for m in monitors)
            self._every_step_for = id(trainer)
        return self._every_step

    def log_train_step(self, name: str, value: Tensor, batch_size: int, prog_bar: bool = True) -> None:
        """In a training step, what ``self.log(name, value, on_step=True, on_epoch=True, prog_bar=...)`` logs.

        ``<name>_epoch``, the epoch mean weighted by batch size (Lightning's reduction), is summed here and logged
        when the epoch ends, with ``<name>`` (the epoch value, for callbacks) as before. ``<name>_step`` goes
        through ``self.log`` only on the steps where someone sees it: those whose step metrics Lightning writes to
        the logger (every ``trainer.log_every_n_steps``; every step under ``fast_dev_run``), and for the progress
        bar at most every ``step_log_interval`` seconds.

        A callback that reads a training metric at every step (a ``ModelCheckpoint`` or ``EarlyStopping`` whose
        ``monitor`` is a ``train/`` metric, or any callback when :attr:`log_every_train_step` is set) gets what
        ``self.log`` gives it: ``<name>`` and ``<name>_step`` are then logged at every step.
        """
        trainer = self.trainer
        if not self.automatic_optimization or self.logs_every_train_step(trainer):
            # manual optimization counts steps per optimizer, and a monitor needs every step: log as Lightning does
            self.log(name, value, on_step=True, on_epoch=True, prog_bar=prog_bar, batch_size=batch_size)
            return
        value = value.detach()
        total, count, _ = self._train_sums.get(name, (0.0, 0, prog_bar))
        self._train_sums[name] = (value * batch_size + total, count + batch_size, prog_bar)
        every = trainer.log_every_n_steps
        logger_step = every > 0 and (trainer.global_step + 1) % every == 0
        now = time.monotonic()
        if logger_step or trainer.fast_dev_run or now >= self._next_step_log.get(name, 0.0):
            self._next_step_log[name] = now + self.step_log_interval
            self.log(f"{name}_step", value, on_step=True, on_epoch=False, prog_bar=prog_bar, batch_size=batch_size)

    def _log_train_epoch_means(self) -> None:
        for name, (total, count, prog_bar) in self._train_sums.items():
            mean = total / count
            self.log(f"{name}_epoch", mean, on_step=False, on_epoch=True, prog_bar=prog_bar)
            self.log(name, mean, on_step=False, on_epoch=True, logger=False)
        self._train_sums.clear()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A mid-epoch checkpoint keeps the epoch sums of :meth:`log_train_step`, so a resumed epoch logs the same
        ``<name>_epoch`` values as an uninterrupted one."""
        checkpoint["zoo_train_sums"] = dict(self._train_sums)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._train_sums = dict(checkpoint.get("zoo_train_sums", {}))

    def log_loss(self, stage: str, name: str, value: Tensor, batch_size: int, prog_bar: bool = True) -> None:
        """``<stage>/<name>``: per step and per epoch in training (:meth:`log_train_step`), per epoch otherwise."""
        if stage == "train":
            self.log_train_step(f"train/{name}", value, batch_size, prog_bar=prog_bar)
        else:
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, prog_bar=prog_bar, batch_size=batch_size)

    # ------------------------------------------------------------------ epoch-level metrics
    def update_epoch_metric(self, stage: str, name: str, metric: Metric, *args: Any, prog_bar: bool = True) -> None:
        """Add this batch to ``metric``; it is logged once, as ``<stage>/<name>``, when the stage's epoch ends.

        The same value as ``self.log(name, metric, on_step=False, on_epoch=True)`` in every step, without the cost:
        Lightning moves a logged torchmetrics object to the device on every ``self.log`` call (about 0.5 ms on a
        CPU, a tenth of a LeNet step), and ``metric(...)`` would compute a batch value nobody reads.
        """
        metric.update(*args)
        self._epoch_metrics.setdefault(stage, {})[name] = (metric, prog_bar)

    def log_epoch_metrics(self, stage: str) -> None:
        """Log (Lightning then computes and resets) the metrics that ``update_epoch_metric`` updated in ``stage``."""
        for name, (metric, prog_bar) in self._epoch_metrics.pop(stage, {}).items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=prog_bar)

    def on_train_epoch_end(self) -> None:
        self._log_train_epoch_means()
        self.log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_metrics("test")

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = self.build_optimizer([p for p in self.parameters() if p.requires_grad])
        if hp.lr_schedule == "onecycle":
            one_cycle = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=hp.lr, total_steps=int(self.trainer.estimated_stepping_batches),
                pct_start=hp.warmup_fraction,
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": one_cycle, "interval": "step"}}
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

    Args:
        num_classes: number of classes.
        label_smoothing: the training loss's label smoothing (Szegedy et al., 2016, section 7); 0 is plain
            cross-entropy.
    """

    checkpoint_monitor = "val/acc"
    checkpoint_mode = "max"

    def __init__(self, num_classes: int = 10, label_smoothing: float = 0.0, **kwargs: Any) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{option('model', 'num_classes')} must be a whole number of at least 2 (the classes "
                             f"the model tells apart), got {num_classes!r}; pass the datamodule's number of classes")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        super().__init__(**kwargs)
        self.network = self.build_network()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def setup(self, stage: str) -> None:
        """Refuse a datamodule whose ``class_names`` are not ``num_classes`` names: its labels would not fit the
        logits (``zoo fit`` on a folder of three classes with a two-class model, say)."""
        super().setup(stage)
        check_class_count(self)

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
        return F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str, accuracy: MulticlassAccuracy) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        self.update_epoch_metric(stage, "acc", accuracy, logits.detach(), y)
        self.log_loss(stage, "loss", loss, len(y))
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
    """Classifier of images ``x`` of shape ``(N, in_channels, image_size, image_size)``.

    Args:
        num_classes: the classes told apart (logits per image), at least 2.
        in_channels, image_size: the input images.
        channels_last: run the network in the ``channels_last`` memory format (oneDNN's faster convolution layout on
            CPUs, Tensor Cores' on GPUs); the weights' values and names do not change.
        test_time_flip: in eval mode, average the logits of each image and its mirror image.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 channels_last: bool = False, test_time_flip: bool = False, **kwargs: Any) -> None:
        super().__init__(num_classes=num_classes, **kwargs)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def input_shape(self) -> tuple[Optional[int], ...]:
        size = self.hparams.image_size
        return (None, self.hparams.in_channels, size, size)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x, self.input_shape())
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.training or not self.hparams.test_time_flip:
            return self.network(x)
        return 0.5 * (self.network(x) + self.network(x.flip(-1)))


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
        self.log_loss(stage, "loss", loss, len(y))
        if stage != "train":
            rmse = self.val_rmse if stage == "val" else self.test_rmse
            self.update_epoch_metric(stage, "rmse", rmse, self.to_target_unit(prediction.detach()),
                                     self.to_target_unit(y))
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
