"""Chapter 7 of "深度学习入门之PyTorch" (Liao Xingyu, 2017): transfer learning on Kaggle's dogs vs. cats.

The book's three methods, as the ``method`` of :class:`TransferClassifier`:

- ``finetune``: train the whole pretrained backbone with a new last layer (the book: ResNet-18, fc -> 2 classes).
- ``frozen``: freeze the backbone and train the book's head ``F -> 256 -> 256 -> 2`` (ReLU, dropout 0.5) on its
  pooled features (``F = 512`` for ResNet-18, 1280 for MobileNet V2).
- ``concat``: concatenate the pooled features of several frozen backbones and train one such head on them.

A backbone is a torchvision model name with ``backbone_weights`` one of: a torchvision weights name
(``IMAGENET1K_V1``; downloaded into torch hub's ``checkpoints/`` directory), a local state dict or TorchScript file,
or ``None`` (random initialisation: the from-scratch baseline). ``zoo:<entry>`` names a shipped zoo entry, whose
penultimate features are used. Frozen backbones are not part of the state dict (the manifest records their files'
sha256) and their features are computed once per image and cached (in memory, and in ``feature_cache_dir``) for
training and validation; ``test`` (``zoo evaluate``) recomputes them from the pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Optional, Sequence
from urllib.error import URLError

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F

from datamodules._paths import resolve_root
from zoo.models.base import ImageClassifier
from zoo.models.textbook_ch4 import mlp_head

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Method = Literal["finetune", "frozen", "concat"]


class BackboneWeightsError(FileNotFoundError):
    """Backbone weights are missing or do not fit the backbone; the message names the file and the fix."""


def is_torchscript(path: Path) -> bool:
    """TorchScript archives hold ``<name>/constants.pkl``; ``torch.save`` state dicts do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def looks_like_path(weights: str) -> bool:
    return "/" in weights or "\\" in weights or weights.endswith((".pth", ".pt"))


def last_linear_name(model: nn.Module) -> str:
    """The dotted name of the model's last ``nn.Linear`` (its classifier), whose input is the pooled features."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier, so it has no pooled features to use")
    return names[-1]


def cut_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the model's last linear layer by the identity; return the model and its feature size."""
    name = last_linear_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    features = getattr(parent, child).in_features
    setattr(parent, child, nn.Identity())
    return model, features


def torchvision_weights_state_dict(name: str, weights_name: str) -> dict[str, Tensor]:
    """The state dict of torchvision's ``weights_name`` for model ``name``; offline and not cached, an error
    names the file and the directory (torch hub's ``checkpoints/``) to put it in."""
    weights = torchvision.models.get_model_weights(name)[weights_name]
    directory = Path(torch.hub.get_dir()) / "checkpoints"
    file_name = weights.url.rsplit("/", 1)[-1]
    try:
        return weights.get_state_dict(progress=False)
    except (URLError, OSError) as err:
        raise BackboneWeightsError(
            f"torchvision weights {name} {weights_name} need the file {file_name}, which is not in {directory} "
            f"and could not be downloaded ({err}). Download {weights.url} and put it in {directory} (torch hub's "
            f"checkpoints directory, $TORCH_HOME/hub/checkpoints), or pass a local file as backbone_weights."
        ) from err


#: the quantized engine that runs int8 TorchScript backbones. torch's default on x86 ("x86") picks fbgemm or
#: oneDNN kernels by the CPU's instruction set, and their int8 results differ (MobileNet V2 features by up to 0.77
#: between the fbgemm and oneDNN engines on one CPU; a shipped head's test loss 0.06366 on an AMX Xeon, 0.06564 on
#: an AVX2 EPYC). One fixed engine, QNNPACK (the one torchvision's quantized weights were made for), takes the
#: kernel choice away from the CPU; its features were the same at 1 and 2 threads.
QUANTIZED_ENGINE = "qnnpack"


@contextlib.contextmanager
def quantized_engine(engine: str = QUANTIZED_ENGINE) -> Iterator[None]:
    """Selects torch's quantized engine for the block and restores the previous one after it."""
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"this torch build has no {engine!r} quantized engine "
                           f"(it has {torch.backends.quantized.supported_engines}); int8 backbones need it")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class PerImage(nn.Module):
    """Runs an int8 TorchScript backbone one image at a time (traced files may hard-code batch size 1), on
    :data:`QUANTIZED_ENGINE` (loaded under it too, since loading packs the weights for the current engine)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        with quantized_engine():
            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def forward(self, x: Tensor) -> Tensor:
        with quantized_engine():
            return torch.cat([self.module(image[None]).reshape(1, -1) for image in x])


class Backbone(nn.Module):
    """A feature extractor with its input adaptation: from the datamodule's normalization to its own.

    Args:
        net: maps a normalized image batch to pooled features ``(N, feature_size)``.
        feature_size: its output size.
        identity: a string naming the network and its weights (for the feature cache's file name).
        input_mean, input_std: the normalization of the images it receives.
        own_mean, own_std: the normalization it was trained with; ``size``: its input side (None: any);
        ``channels``: 1 for grey networks (the image is turned grey first).
    """

    def __init__(self, net: nn.Module, feature_size: int, identity: str, input_mean: Sequence[float],
                 input_std: Sequence[float], own_mean: Sequence[float], own_std: Sequence[float],
                 size: Optional[int] = None, channels: int = 3) -> None:
        super().__init__()
        self.net, self.feature_size, self.identity = net, feature_size, identity
        self.size, self.channels = size, channels
        self.adapt = (size is not None or channels != 3 or tuple(own_mean) != tuple(input_mean)
                      or tuple(own_std) != tuple(input_std))
        for key, value in (("input_mean", input_mean), ("input_std", input_std), ("own_mean", own_mean),
                           ("own_std", own_std)):
            self.register_buffer(key, torch.tensor(value, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.adapt:
            x = x * self.input_std + self.input_mean
            if self.size is not None:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                  align_corners=False)
            if self.channels == 1:
                x = torchvision.transforms.v2.functional.rgb_to_grayscale(x)
            x = (x - self.own_mean) / self.own_std
        return self.net(x).flatten(1)


def sha256_prefix(path: Path, length: int = 12) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:length]


def torchvision_model(name: str, weights: Optional[str]) -> nn.Module:
    """torchvision's model ``name`` with ``weights``: a torchvision weights name, a state dict file or ``None``
    (random initialisation)."""
    model = torchvision.models.get_model(name)
    if weights is None:
        return model
    if not looks_like_path(weights):
        model.load_state_dict(torchvision_weights_state_dict(name, weights))
        return model
    path = resolve_root(weights)
    if not path.is_file():
        raise BackboneWeightsError(f"backbone weights file {path} (backbone_weights={weights!r}) not found; "
                                   f"point backbone_weights at a state dict or TorchScript file of {name}")
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except RuntimeError as err:
        raise BackboneWeightsError(f"{path} does not fit torchvision's {name}: {err}") from err
    return model


def build_backbone(name: str, weights: Optional[str], input_mean: Sequence[float],
                   input_std: Sequence[float], trainable: bool) -> Backbone:
    """A :class:`Backbone` from a torchvision name (+ weights name, file or None) or ``zoo:<entry>``."""
    if name.startswith("zoo:"):
        return zoo_backbone(name[4:], input_mean, input_std)
    identity = f"{name}-{weights or 'random'}"
    if weights is not None and looks_like_path(weights):
        path = resolve_root(weights)
        identity = f"{name}-{sha256_prefix(path)}" if path.is_file() else identity
        if path.is_file() and is_torchscript(path):
            if trainable:
                raise ValueError(f"{path} is a TorchScript file: it can be a frozen backbone, not fine-tuned; "
                                 f"use method 'frozen' or 'concat', or a state dict for 'finetune'")
            net = PerImage(path)
            identity = f"{identity}-{QUANTIZED_ENGINE}"
            with torch.no_grad():
                size = net(torch.zeros(1, 3, 224, 224)).shape[1]
            return Backbone(net, size, identity, input_mean, input_std, IMAGENET_MEAN, IMAGENET_STD)
    net, size = cut_classifier(torchvision_model(name, weights))
    return Backbone(net, size, identity, input_mean, input_std, IMAGENET_MEAN, IMAGENET_STD)


def as_triple(value: Any) -> tuple[float, ...]:
    values = tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    return values


def entry_normalization(entry: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a shipped entry's inputs were normalized with: its datamodule's ``mean``/``std`` arguments,
    else the ``normalize`` facts of its manifest, else the datamodule class's ``mean``/``std``."""
    from zoo import hub, registry

    manifest = registry.get(entry).manifest() or {}
    dm_cls = hub.import_trusted(manifest["datamodule_class"], object)
    facts = manifest.get("data", {}).get("normalize") or {}
    args = manifest.get("datamodule", {})
    mean = args.get("mean", facts.get("mean", getattr(dm_cls, "mean", None)))
    std = args.get("std", facts.get("std", getattr(dm_cls, "std", None)))
    if mean is None or std is None:
        raise ValueError(f"zoo entry {entry!r}: its datamodule {manifest['datamodule_class']} names no mean/std, "
                         f"so its input normalization is unknown")
    return as_triple(mean), as_triple(std)


def zoo_backbone(entry: str, input_mean: Sequence[float], input_std: Sequence[float]) -> Backbone:
    """The penultimate features of a shipped zoo entry (sha256-checked by ``zoo.load``), fed at its input size
    and normalization (:func:`entry_normalization`)."""
    from zoo import hub, registry

    model = hub.load(entry)
    mean, std = entry_normalization(entry)
    net, size = cut_classifier(getattr(model, "network", model))
    hp = model.hparams
    sha = (registry.get(entry).manifest() or {}).get("sha256", "")[:12]
    return Backbone(net, size, f"zoo-{entry}-{sha}", input_mean, input_std, mean, std,
                    size=hp.get("image_size"), channels=hp.get("in_channels", 3))


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
        weights_from: ``zoo:<entry>`` starts from that entry's shipped weights (sha256-checked by ``zoo.load``),
            e.g. for ``zoo predict -c <entry> --model.weights_from zoo:<entry> --data.predict_dir my_photos``.
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
        weights_from: Optional[str] = None,
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
        if weights_from is not None:
            if not weights_from.startswith("zoo:"):
                raise ValueError(f"weights_from must be 'zoo:<entry>', got {weights_from!r}")
            from zoo import hub

            self.load_state_dict(hub.load(weights_from[4:]).state_dict())

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
        return nn.Sequential(*mlp_head([sum(b.feature_size for b in built), *hp.head_hidden, hp.num_classes],
                                       dropout=hp.dropout))

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
        return resolve_root(directory) / f"{name}-{self.hparams.image_size}px.pt"

    def _load_cache(self, index: int) -> None:
        self._cache_loaded[index] = True
        path = self.cache_file(index)
        if path is not None and path.exists():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            self._cache[index].update(zip(stored["paths"], stored["features"]))

    def save_feature_cache(self) -> None:
        """Write the frozen backbones' cached features that are new since the last save."""
        for index in range(len(self.backbones)):
            path = self.cache_file(index)
            if path is None or not self._cache_dirty[index]:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            paths = sorted(self._cache[index])
            torch.save({"paths": paths, "features": torch.stack([self._cache[index][p] for p in paths])}, path)
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
        datamodule_hparams = getattr(getattr(self.trainer, "datamodule", None), "hparams", {})
        if self.frozen and datamodule_hparams.get("augment", False):
            raise ValueError("frozen backbones cache one feature per image, so the training images must not be "
                             "augmented: set --data.augment false")

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
