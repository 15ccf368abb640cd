"""Pretrained feature extractors ("backbones") and torchvision's ImageNet classifiers, as plain ``torch.nn`` modules.

A backbone is named by a torchvision model name with weights that are a torchvision weights name
(``IMAGENET1K_V1``, from torch hub's ``checkpoints/`` directory or downloaded), a local state dict or TorchScript
file, or ``None`` (random initialisation). Names of the form ``<scheme>:<name>`` go to a builder that a higher layer
registers (:func:`register_backbone_scheme`; ``zoo.hub`` registers ``zoo:<entry>``, a shipped zoo classifier's
penultimate features), and file names go through the path resolver that layer sets (:func:`set_path_resolver`;
``zoo.hub`` sets the datasets' ``$ZOO_DATA_DIR`` rule), so nothing here reads the zoo's registry or weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Optional
from urllib.error import URLError

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F
from torch.serialization import get_unsafe_globals_in_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the quantized engine that runs int8 TorchScript backbones. torch's default on x86 ("x86") picks fbgemm or
#: oneDNN kernels by the CPU's instruction set, and their int8 results differ (MobileNet V2 features by up to 0.77
#: between the fbgemm and oneDNN engines on one CPU; a shipped head's test loss 0.06366 on an AMX Xeon, 0.06564 on
#: an AVX2 EPYC). One fixed engine, QNNPACK (the one torchvision's quantized weights were made for), takes the
#: kernel choice away from the CPU; its features were the same at 1 and 2 threads.
QUANTIZED_ENGINE = "qnnpack"


class BackboneWeightsError(FileNotFoundError):
    """Backbone weights are missing or do not fit the backbone; the message names the file and the fix."""


def expand_path(text: str) -> Path:
    """``~`` and environment variables expanded: the path rule until a higher layer sets another."""
    return Path(os.path.expanduser(os.path.expandvars(text)))


_resolve_path: Callable[[str], Path] = expand_path
#: ``scheme -> builder(name, input_mean, input_std)`` for backbone names written ``<scheme>:<name>``.
BACKBONE_SCHEMES: dict[str, Callable[[str, Sequence[float], Sequence[float]], "Backbone"]] = {}


def set_path_resolver(resolver: Callable[[str], Path]) -> None:
    """Resolve backbone weight files and feature-cache folders with ``resolver`` (a path string -> ``Path``)."""
    global _resolve_path
    _resolve_path = resolver


def resolve_path(text: str) -> Path:
    return _resolve_path(text)


def register_backbone_scheme(scheme: str, builder: Callable[[str, Sequence[float], Sequence[float]], "Backbone"]
                             ) -> None:
    """Build backbones named ``<scheme>:<name>`` with ``builder(name, input_mean, input_std)``."""
    BACKBONE_SCHEMES[scheme] = builder


def is_torchscript(path: Path) -> bool:
    """TorchScript archives hold ``<name>/constants.pkl``; ``torch.save`` state dicts do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def looks_like_path(weights: str) -> bool:
    return "/" in weights or "\\" in weights or weights.endswith((".pth", ".pt"))


def sha256_prefix(path: Path, length: int = 12) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:length]


def last_linear_name(model: nn.Module) -> str:
    """The dotted name of the model's last ``nn.Linear`` (its classifier), whose input is the pooled features."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier, so it has no pooled features to use")
    return names[-1]


def replace_last_linear(model: nn.Module, new_layer: nn.Module) -> int:
    """Put ``new_layer`` in place of the model's last ``nn.Linear``; return that layer's input size."""
    parent_name, _, child = last_linear_name(model).rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    features = getattr(parent, child).in_features
    setattr(parent, child, new_layer)
    return features


def cut_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the model's last linear layer by the identity; return the model and its feature size."""
    return model, replace_last_linear(model, nn.Identity())


def torchvision_pretrained(name: str, weights_name: str) -> nn.Module:
    """torchvision's model ``name`` built with its weights ``weights_name`` (torchvision's builder, which also sets
    the architecture options the weights need); offline and not cached, an error names the file and the directory
    (torch hub's ``checkpoints/``) to put it in."""
    weights = torchvision.models.get_model_weights(name)[weights_name]
    directory = Path(torch.hub.get_dir()) / "checkpoints"
    file_name = weights.url.rsplit("/", 1)[-1]
    try:
        return torchvision.models.get_model(name, weights=weights, progress=False)
    except (URLError, OSError) as err:
        raise BackboneWeightsError(
            f"torchvision weights {name} {weights_name} need the file {file_name}, which is not in {directory} "
            f"and could not be downloaded ({err}). Download {weights.url} and put it in {directory} (torch hub's "
            f"checkpoints directory, $TORCH_HOME/hub/checkpoints), or pass a local file or null as the weights."
        ) from err


def torchvision_model(name: str, weights: Optional[str], num_classes: Optional[int] = None) -> nn.Module:
    """torchvision's model ``name`` with ``weights``: a torchvision weights name, a state dict file or ``None``
    (random initialisation). ``num_classes``, when it differs from the weights' classes, replaces the last Linear
    layer by a new one."""
    if weights is None:
        return torchvision.models.get_model(name, **({} if num_classes is None else {"num_classes": num_classes}))
    if not looks_like_path(weights):
        model = torchvision_pretrained(name, weights)
    else:
        model = torchvision.models.get_model(name)
        path = resolve_path(weights)
        if not path.is_file():
            raise BackboneWeightsError(f"backbone weights file {path} (weights {weights!r}) not found; "
                                       f"point the weights at a state dict or TorchScript file of {name}")
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types; its own message would suggest weights_only=False
            unsafe = zipfile.is_zipfile(path) and get_unsafe_globals_in_checkpoint(str(path))
            cause = (f"it pickles {', '.join(sorted(unsafe))}, outside the tensors and plain types that torch's weights-only "
                     f"loader reads" if unsafe else "it is damaged, truncated or not a torch.save file")
            raise BackboneWeightsError(
                f"cannot read the backbone weights file {path} ({type(err).__name__}); {cause}. Point the weights at "
                f"a state dict (torch.save(model.state_dict(), path)) or a TorchScript file of {name}") from err
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as err:
            raise BackboneWeightsError(f"{path} does not fit torchvision's {name}: {err}") from err
    if num_classes is not None:
        classifier = model.get_submodule(last_linear_name(model))
        if classifier.out_features != num_classes:
            replace_last_linear(model, nn.Linear(classifier.in_features, num_classes))
    return model


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


def build_backbone(name: str, weights: Optional[str], input_mean: Sequence[float],
                   input_std: Sequence[float], trainable: bool) -> Backbone:
    """A :class:`Backbone` from a torchvision name (+ weights name, file or None) or ``<scheme>:<name>``."""
    scheme, colon, rest = name.partition(":")
    if colon:
        if scheme not in BACKBONE_SCHEMES:
            raise ValueError(f"backbone {name!r}: no builder for {scheme!r} names (known: {sorted(BACKBONE_SCHEMES)}); "
                             f"zoo:<entry> backbones are registered by zoo.hub, so import zoo.hub (or use the zoo "
                             f"command) before building the model")
        return BACKBONE_SCHEMES[scheme](rest, input_mean, input_std)
    identity = f"{name}-{weights or 'random'}"
    if weights is not None and looks_like_path(weights):
        path = resolve_path(weights)
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
