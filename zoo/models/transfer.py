"""Transfer learning on Kaggle's dogs vs. cats: chapter 7 of "深度学习入门之PyTorch" (Liao Xingyu, 2017).

The book's three methods, as the ``method`` of :class:`TransferClassifier`:

- ``finetune``: train the whole pretrained backbone with a new last layer (the book: ResNet-18, fc -> 2 classes).
- ``frozen``: freeze the backbone and train the book's head ``F -> 256 -> 256 -> 2`` (ReLU, dropout 0.5) on its
  pooled features (``F = 512`` for ResNet-18, 1280 for MobileNet V2).
- ``concat``: concatenate the pooled features of several frozen backbones and train one such head on them.

Backbones are named as :mod:`zoo.layers.backbones` describes (torchvision names with weights names, files or
``None``; ``zoo:<entry>`` for a shipped zoo classifier). Frozen backbones are not part of the state dict (the
manifest records their files' sha256) and their features are computed once per image and cached (in memory, and
in ``feature_cache_dir``) for training and validation; ``test`` (``zoo evaluate``) recomputes them from the pixels.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import torch
from torch import Tensor, nn

from zoo.errors import option
from zoo.layers.backbones import (IMAGENET_MEAN, IMAGENET_STD, Backbone, PerImage, build_backbone, looks_like_path,
                                  resolve_path)
from zoo.layers.heads import mlp
from zoo.models.base import ImageClassifier

Method = Literal["finetune", "frozen", "concat"]


class TransferClassifier(ImageClassifier):
    """Transfer learning with the book's three methods (module docstring) on ``(N, 3, S, S)`` images.

    Args:
        method: ``"finetune"``, ``"frozen"`` or ``"concat"``.
        backbones: torchvision model names or ``zoo:<entry>`` (one, except for ``concat``).
        backbone_weights: per backbone, a torchvision weights name, a file (``$ZOO_DATA_DIR`` may appear in it)
            or ``None`` (random initialisation; ``zoo:`` entries bring their own).
        head_hidden: hidden sizes of the head (the book's frozen head: ``[256, 256]``; ``[]``: one linear layer,
            the book's fine-tuning).
        dropout: dropout after each hidden layer of the head (the book: 0.5).
        backbone_batchnorm: ``"eval"`` keeps a fine-tuned backbone's BatchNorm statistics fixed (needed for the
            MobileNet V2 weights whose batch norm is folded into the convolutions); ``"train"`` updates them
            (a backbone trained from scratch).
        feature_cache_dir: directory where frozen backbones' features are saved, one file per backbone,
            weights and image size, so later runs skip the extraction (None: memory only).
        input_mean, input_std: the normalization of the images the datamodule gives.
        num_classes, in_channels, image_size: the classes and the input images (``in_channels`` 3: the
            backbones read RGB).

    To start from an entry's shipped weights, pass ``--weights zoo:<entry>`` to any ``zoo`` LightningCLI command
(in Python: ``zoo.hub.start_from(model, "zoo:<entry>")``).
    """

    def __init__(
        self,
        method: Method = "frozen",
        backbones: Sequence[str] = ("mobilenet_v2",),
        backbone_weights: Sequence[Optional[str]] = ("IMAGENET1K_V1",),
        head_hidden: Sequence[int] = (256, 256),
        dropout: float = 0.5,
        backbone_batchnorm: Literal["eval", "train"] = "eval",
        feature_cache_dir: Optional[str] = None,
        input_mean: tuple[float, float, float] = IMAGENET_MEAN,
        input_std: tuple[float, float, float] = IMAGENET_STD,
        num_classes: int = 2,
        in_channels: int = 3,
        image_size: int = 224,
        **kwargs: Any,
    ) -> None:
        if method not in ("finetune", "frozen", "concat"):
            raise ValueError(f"method must be 'finetune', 'frozen' or 'concat', got {method!r}")
        if len(backbones) != len(backbone_weights):
            raise ValueError(f"got {len(backbones)} backbones but {len(backbone_weights)} backbone_weights; "
                             f"give one weights entry (or null) per backbone")
        if (method == "concat") != (len(backbones) > 1):
            raise ValueError(f"method {method!r} takes {'several backbones' if method == 'concat' else 'one'}, "
                             f"got {list(backbones)}")
        if backbone_batchnorm not in ("eval", "train"):
            raise ValueError(f"backbone_batchnorm must be 'eval' or 'train', got {backbone_batchnorm!r}")
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
        if self.hparams.in_channels != 3:
            raise ValueError(f"TransferClassifier takes RGB images, got in_channels={in_channels}")

    @property
    def frozen(self) -> bool:
        return self.hparams.method != "finetune"

    def build_network(self) -> nn.Module:
        hp = self.hparams
        built = [build_backbone(name, weights, hp.input_mean, hp.input_std, trainable=not self.frozen)
                 for name, weights in zip(hp.backbones, hp.backbone_weights)]
        if self.frozen:
            # kept out of _modules: no parameters for the optimizer, no keys in the state dict, never in train mode
            self.__dict__["frozen_backbones"] = [b.requires_grad_(False).eval() for b in built]
            self._cache: list[dict[str, Tensor]] = [{} for _ in built]
            self._cache_loaded = [False] * len(built)
            self._cache_dirty = [False] * len(built)
        else:
            self.backbone = built[0]
        return nn.Sequential(*mlp([sum(b.feature_size for b in built), *hp.head_hidden, hp.num_classes], dropout=hp.dropout))

    @property
    def backbones(self) -> list[Backbone]:
        return self.__dict__["frozen_backbones"] if self.frozen else [self.backbone]

    def backbones_in_weights(self) -> list[bool]:
        """Per backbone, whether shipped weights hold it (all but TorchScript files, whose int8 kernels have no
        safetensors form): a fine-tuned backbone is in the state dict, frozen ones in :meth:`shipped_extra_state`."""
        return [not isinstance(backbone.net, PerImage) for backbone in self.backbones]

    def shipped_extra_state(self) -> dict[str, Tensor]:
        """The frozen backbones' tensors, which the state dict leaves out (nothing trains them), so that the
        shipped weights of a frozen-backbone entry need no backbone file (keys ``frozen_backbones.<i>.*``)."""
        if not self.frozen:
            return {}
        return {f"frozen_backbones.{i}.{key}": value for i, backbone in enumerate(self.backbones)
                if self.backbones_in_weights()[i] for key, value in backbone.state_dict().items()}

    def shipped_extra_parameters(self) -> dict[str, Tensor]:
        """The parameters among :meth:`shipped_extra_state` (for the manifest's parameter count)."""
        if not self.frozen:
            return {}
        return {f"frozen_backbones.{i}.{name}": value for i, backbone in enumerate(self.backbones)
                if self.backbones_in_weights()[i] for name, value in backbone.named_parameters()}

    def load_shipped_extra_state(self, state: dict[str, Tensor]) -> None:
        """Load the frozen backbones' tensors of :meth:`shipped_extra_state`."""
        for i, backbone in enumerate(self.backbones if self.frozen else []):
            prefix = f"frozen_backbones.{i}."
            part = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
            if part:
                backbone.load_state_dict(part)

    def external_weight_files(self) -> list[str]:
        """The ``backbone_weights`` that are files, as written (the manifest records their sha256)."""
        return [w for w in self.hparams.backbone_weights if w is not None and looks_like_path(w)]

    def _apply(self, fn: Any, recurse: bool = True) -> "TransferClassifier":
        for backbone in self.__dict__.get("frozen_backbones", []):
            backbone._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> "TransferClassifier":
        super().train(mode)
        if not self.frozen and self.hparams.backbone_batchnorm == "eval":
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    # --- the feature cache of frozen backbones -------------------------------------------------------------

    def cache_file(self, index: int) -> Optional[Path]:
        directory = self.hparams.feature_cache_dir
        if directory is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.backbones[index].identity)
        return resolve_path(directory) / f"{name}-{self.hparams.image_size}px.pt"

    def _load_cache(self, index: int) -> None:
        self._cache_loaded[index] = True
        path = self.cache_file(index)
        if path is not None and path.exists():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                self._cache[index].update(zip(stored["paths"], stored["features"], strict=True))
            except Exception as err:  # a damaged cache costs one recomputation, not the run
                warnings.warn(f"the feature cache {path} cannot be read ({type(err).__name__}: {err}); its features "
                              f"are computed again and the file is rewritten at the next save", stacklevel=2)
                self._cache[index].clear()
                self._cache_dirty[index] = True

    def save_feature_cache(self) -> None:
        """Write the frozen backbones' cached features that are new since the last save."""
        for index in range(len(self.backbones)):
            path = self.cache_file(index)
            if path is None or not self._cache_dirty[index]:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            paths = sorted(self._cache[index])
            partial = path.with_name(path.name + ".partial")  # a run stopped while saving keeps the old cache
            torch.save({"paths": paths, "features": torch.stack([self._cache[index][p] for p in paths])}, partial)
            os.replace(partial, path)
            self._cache_dirty[index] = False

    def backbone_features(self, index: int, x: Tensor, paths: Optional[Sequence[str]] = None) -> Tensor:
        """Pooled features of backbone ``index``; a frozen one's are cached per image path."""
        backbone = self.backbones[index]
        if not self.frozen:
            return backbone(x)
        if paths is None:
            with torch.no_grad():
                return backbone(x)
        if not self._cache_loaded[index]:
            self._load_cache(index)
        cache = self._cache[index]
        todo = [i for i, path in enumerate(paths) if path not in cache]
        if todo:
            with torch.no_grad():
                computed = backbone(x[todo]).cpu()
            for i, feature in zip(todo, computed):
                cache[paths[i]] = feature.clone()
            self._cache_dirty[index] = True
        return torch.stack([cache[path] for path in paths]).to(x.device)

    def features(self, x: Tensor, paths: Optional[Sequence[str]] = None) -> Tensor:
        """The concatenated pooled features of all backbones, ``(N, sum of feature sizes)``."""
        self.check_input(x, self.input_shape())
        return torch.cat([self.backbone_features(i, x, paths) for i in range(len(self.backbones))], dim=1)

    def forward(self, x: Tensor, paths: Optional[Sequence[str]] = None) -> Tensor:
        return self.network(self.features(x, paths))

    # --- Lightning steps on (x, y, path) batches ---------------------------------------------------------

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.frozen and getattr(datamodule, "hparams", {}).get("augment", False):
            raise ValueError("frozen backbones cache one feature per image, so the training images must not be "
                             f"augmented: set {option('data', 'augment', False, type(datamodule).__name__)}")

    def _shared_step(self, batch: Sequence[Any], stage: str, accuracy: Any) -> Tensor:
        x, y, paths = batch
        logits = self(x, paths if stage in ("train", "val") else None)  # test: features recomputed from pixels
        loss = self.loss(logits, y)
        self.update_epoch_metric(stage, "acc", accuracy, logits.detach(), y)
        self.log_loss(stage, "loss", loss, len(y))
        return loss

    def predict_step(self, batch: Sequence[Any], batch_idx: int) -> Tensor:
        """Class probabilities ``(N, num_classes)`` (the writer prints them per file); the user's files are not
        added to the feature cache."""
        return self(batch[0]).softmax(-1)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.frozen:
            self.save_feature_cache()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.frozen:
            self.save_feature_cache()
