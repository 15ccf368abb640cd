"""Shipped weights: load an entry's safetensors file after checking its hash, and the checkpoints of ``zoo fit`` runs.

Weights are stored in safetensors, so loading them cannot run code. The manifest ``checkpoints/<entry>.json``
(:mod:`zoo.manifest`) records the model class and hyperparameters, the dataset and its sizes, the sha256 of the
weights, the metrics measured on the real test set and the commands that produced them; :mod:`zoo.export` writes
both files. Importing this module registers the zoo's backbone resolvers (:mod:`zoo.layers.backbones`):
``zoo:<entry>`` backbones are shipped entries, and backbone files follow the datasets' ``$ZOO_DATA_DIR`` rule.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from datamodules import resolve_root
from zoo import errors
from zoo import manifest as manifest_module
from zoo import registry
from zoo.checkpoint_trust import read_checkpoint, refuse_untrusted_checkpoint
from zoo.errors import ZooError, is_deliberate
from zoo.layers.backbones import Backbone, cut_classifier, register_backbone_scheme, set_path_resolver
from zoo.models.base import ZooModule
from zoo.preprocessing import image_transforms

TRUSTED_PREFIXES = ("zoo.", "datamodules.")
#: comma-separated modules of your own (e.g. ``my_models``) whose classes checkpoints and manifests may name
TRUSTED_MODULES_ENV = "ZOO_TRUSTED_MODULES"

#: how a ``zoo export`` / ``zoo evaluate --ckpt_path`` user accepts a checkpoint that needs globals outside
#: torch's weights-only allowlist.
EXPORT_ACCEPT = (
    "zoo export and zoo evaluate read weights-only checkpoints alone; if you trust the file, load it yourself with "
    "torch.load(path, weights_only=False) (which runs whatever code it names) and save the model again with "
    "Trainer.save_checkpoint."
)


class CheckpointError(ZooError, RuntimeError):
    """A shipped checkpoint is missing, corrupt, or names code the zoo does not trust."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trusted_prefixes() -> tuple[str, ...]:
    """The zoo's packages and the modules named by ``$ZOO_TRUSTED_MODULES``, as class-path prefixes."""
    own = (name.strip() for name in os.environ.get(TRUSTED_MODULES_ENV, "").split(","))
    return TRUSTED_PREFIXES + tuple(f"{name}." for name in own if name)


def import_trusted(class_path: str, base: type) -> type:
    """Import ``class_path`` (named by a manifest or a checkpoint) if it lives in the zoo's own packages, or in a
    module you trust through ``$ZOO_TRUSTED_MODULES``, and subclasses ``base``: importing a module runs its code."""
    module_name, _, name = class_path.rpartition(".")
    if not class_path.startswith(trusted_prefixes()):
        raise CheckpointError(
            f"refusing to import {class_path!r}: checkpoints and manifests may name classes of the zoo's packages "
            f"({', '.join(TRUSTED_PREFIXES)}) only, since importing a module runs its code; if it is your own class "
            f"(a subclass you trained), trust its module with {TRUSTED_MODULES_ENV}={module_name.split('.')[0]} "
            f"(comma-separated), else the file is not from this zoo or was edited"
        )
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        fix = "" if class_path.startswith(TRUSTED_PREFIXES) else \
            f"; make {module_name} importable (install it, or run with PYTHONPATH=<the folder that holds it>)"
        raise CheckpointError(f"cannot import {class_path!r} named by the checkpoint or manifest: {err}{fix}") from err
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckpointError(f"{class_path!r} is not a {base.__name__}")
    return cls


def plain_hparams(hparams: Any) -> dict[str, Any]:
    """Hyperparameters as JSON-ready values, without Lightning's private keys."""
    out = {}
    for key, value in dict(hparams).items():
        if key.startswith("_"):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


#: public sources of backbone files that shipped weights cannot hold, by sha256 (named in errors and manifests).
BACKBONE_SOURCES = {
    "2778381c5eb7639a2229bc39567cf644226e5aa3d3a1d46dfcee70b373738498": (
        "torchvision's int8 ImageNet MobileNet V2 traced by the PyTorch team: github.com/pytorch/ios-demo-app at "
        "commit b8f52b772b98, PyTorchDemo/PyTorchDemo/ImageClassification/model/mobilenet_quantized.pt"),
}


def locate_backbone_file(name: str) -> Path:
    """Where a backbone file named ``$ZOO_DATA_DIR/...`` is: under ``ZOO_DATA_DIR``, else in torch hub's
    ``checkpoints/`` folder (``$TORCH_HOME/hub/checkpoints``) under its file name."""
    path = resolve_root(name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(name).name
    return cached if not path.is_file() and cached.is_file() else path


def check_backbone_files(entry_name: str, recorded: dict[str, str]) -> None:
    """Refuse to build an entry whose backbone weights files are missing or differ from the exported ones."""
    for name, expected in recorded.items():
        path = locate_backbone_file(name)
        if not path.is_file():
            source = BACKBONE_SOURCES.get(expected)
            raise CheckpointError(
                f"{entry_name} needs the backbone weights file {Path(name).name} ({name}), which is neither in "
                f"{path.parent} nor in {Path(torch.hub.get_dir()) / 'checkpoints'}; "
                + (f"download it from {source} into either folder" if source else "put it there")
                + f" (sha256 {expected})")
        digest = sha256(path)
        if digest != expected:
            raise CheckpointError(
                f"backbone weights file {path} has sha256 {digest}, but {entry_name} was trained on the file with "
                f"sha256 {expected}: its shipped head does not fit another backbone. Restore that file."
            )


def class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def load_checkpoint(entry_name: str, ckpt_path: str, data_root: Optional[str] = None
                    ) -> tuple[ZooModule, L.LightningDataModule, dict[str, Any]]:
    """Rebuild ``entry_name``'s model (in eval mode) and datamodule from a Lightning checkpoint of a ``zoo fit``
    run, reading it weights-only; return them with the checkpoint dictionary.

    The datamodule is built from the hyperparameters Lightning stored in the checkpoint, so it is the one the
    model was trained with (its split, normalization and root).

    Raises:
        CheckpointError: the file is missing, or it is not a checkpoint of this entry's model class.
        ZooError: the file is damaged or not a checkpoint.
        UntrustedCheckpointError: the file needs globals outside torch's weights-only allowlist.
    """
    entry = registry.get(entry_name)
    if not Path(ckpt_path).is_file():
        raise CheckpointError(
            f"no checkpoint at {ckpt_path}; pass the .ckpt a `zoo fit -c {entry_name}` run wrote (its results.json "
            f"names it, under <default_root_dir>/lightning_logs/version_N/checkpoints/)"
        )
    refuse_untrusted_checkpoint(ckpt_path, how_to_accept=EXPORT_ACCEPT)
    checkpoint = read_checkpoint(ckpt_path, f"Pass the .ckpt a `zoo fit -c {entry_name}` run wrote.")
    entry_cls = import_trusted(entry.model_class, ZooModule)
    recorded = checkpoint.get("hyper_parameters", {}).get("_class_path", entry.model_class)
    model_cls = import_trusted(recorded, ZooModule)  # the entry's class or your subclass of it
    if not issubclass(model_cls, entry_cls):
        raise CheckpointError(f"{ckpt_path} is not a checkpoint of {entry.model_class} (entry {entry_name!r}) or a "
                              f"subclass of it but of {recorded}; pass the .ckpt a `zoo fit -c {entry_name}` run wrote")
    named = "_class_path" in checkpoint.get("hyper_parameters", {})
    model = rebuild_from_checkpoint(model_cls, ckpt_path, f"{ckpt_path} does not rebuild {recorded} (entry "
                                    f"{entry_name!r})" + ("" if named else
                                    " (the checkpoint names no model class: it was saved by a Trainer of your own, "
                                    "not `zoo fit`, so the entry's class was assumed; reload a subclass's checkpoint "
                                    "with YourClass.load_from_checkpoint in Python)"))
    stored = plain_hparams(checkpoint.get("datamodule_hyper_parameters", {}))
    dm_cls = import_trusted(checkpoint.get("datamodule_hyper_parameters", {}).get(
        "_class_path", entry.datamodule_class), L.LightningDataModule)
    if data_root is not None:
        stored["root"] = data_root
    datamodule = dm_cls(**stored)
    root = None if getattr(datamodule, "embedded_data", False) else getattr(datamodule, "root", None)
    if root is not None:  # the checkpoint chose where the data is read from: say so, or take the user's choice
        origin = "--data_root" if data_root is not None else "stored in the checkpoint; --data_root chooses another"
        print(f"{ckpt_path}: reading {dm_cls.__name__} data from {root} ({origin})", file=sys.stderr)
    return model.eval(), datamodule, checkpoint


def load_run(ckpt_path: str) -> tuple[ZooModule, L.LightningDataModule]:
    """The model (eval mode) and datamodule of any ``zoo fit`` checkpoint, read weights-only, with the datamodule's
    checkpointed state (e.g. :class:`~datamodules.ImageFolderDataModule`'s class names) restored.

    For ``zoo predict <run>.ckpt PATH ...`` after fine-tuning on your own folder.
    """
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"no checkpoint at {ckpt_path}; pass a .ckpt that `zoo fit` wrote")
    refuse_untrusted_checkpoint(ckpt_path, how_to_accept=EXPORT_ACCEPT)
    checkpoint = read_checkpoint(ckpt_path, "Pass a .ckpt that `zoo fit` wrote (its results.json names the best one).")
    model_path = checkpoint.get("hyper_parameters", {}).get("_class_path")
    dm_hparams = checkpoint.get("datamodule_hyper_parameters", {})
    if not model_path or "_class_path" not in dm_hparams:
        raise CheckpointError(f"{ckpt_path} does not record its model and datamodule classes; it was not written "
                              f"by `zoo fit`")
    model_cls = import_trusted(model_path, ZooModule)
    model = rebuild_from_checkpoint(model_cls, ckpt_path, f"{ckpt_path} does not rebuild {model_path}")
    dm_cls = import_trusted(dm_hparams["_class_path"], L.LightningDataModule)
    try:
        datamodule = dm_cls(**plain_hparams(dm_hparams))
    except (OSError, ValueError) as err:  # e.g. a text file named relative to the folder the run started in
        raise CheckpointError(f"{ckpt_path}: the {dm_cls.__name__} of its run cannot be rebuilt from the arguments "
                              f"the run stored: {err}; run from the folder that `zoo fit` ran in (relative paths are "
                              f"read from there) with the run's data where it was") from err
    if dm_cls.__qualname__ in checkpoint:
        datamodule.load_state_dict(checkpoint[dm_cls.__qualname__])
    return model.eval(), datamodule


def rebuild_from_checkpoint(model_cls: type, ckpt_path: str, failure: str) -> ZooModule:
    """``model_cls.load_from_checkpoint`` (weights-only, on the CPU); when the checkpoint does not rebuild the model
    (another model's state dict or hyperparameters, a backbone file gone), a ``CheckpointError`` ``failure: reason``
    whose reason is the zoo's own error where the model refused its arguments (jsonargparse wraps it)."""
    try:
        return model_cls.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    except (RuntimeError, TypeError, KeyError, ValueError, OSError) as err:
        reason: Optional[BaseException] = err
        while reason is not None and not is_deliberate(reason):
            reason = reason.__cause__ or reason.__context__
        raise CheckpointError(f"{failure}: {reason or err}") from err


def extra_state(model: ZooModule) -> dict[str, torch.Tensor]:
    """Tensors a model ships beyond its state dict (a transfer model's frozen backbones)."""
    extra = getattr(model, "shipped_extra_state", None)
    return extra() if callable(extra) else {}


def load_state(model: ZooModule, path: Path, held: Optional[list[str]] = None, strict: bool = True,
               source: str = "") -> tuple[list[str], list[str]]:
    """Load a safetensors file into ``model``: every tensor must fit its parameter's shape and dtype (floating
    tensors may be stored in float16/bfloat16 and are widened); returns (missing, unexpected) keys.

    With ``strict``, keys missing from the file (outside the modules not in ``held``) or unexpected are an error;
    without it, the tensors whose name and shape match are loaded and the rest reported.
    """
    source = source or str(path)
    try:
        stored = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{source} is not a readable safetensors file ({err}); restore or re-export it") from err
    extra = extra_state(model)
    own = {**model.state_dict(), **extra}
    unexpected = sorted(k for k in stored if k not in own)
    missing = sorted(k for k in own if k not in stored)
    if held:  # the file holds only these submodules (a GAN's generator): the rest keeps its initialization
        missing = [key for key in missing if key.split(".", 1)[0] in held]
    mismatched = [k for k in stored if k in own and stored[k].shape != own[k].shape]
    wrong_dtype = [
        f"{k} ({stored[k].dtype} for {own[k].dtype})" for k in stored
        if k in own and stored[k].dtype != own[k].dtype
        and not (stored[k].is_floating_point() and own[k].is_floating_point())
    ]
    if wrong_dtype:
        raise CheckpointError(f"{source} stores tensors of another kind than the model's: {wrong_dtype[:5]}; the file "
                              f"was altered or belongs to another model: restore or re-export it")
    if strict and (missing or unexpected or mismatched):
        shapes = [f"{k} {tuple(stored[k].shape)} for {tuple(own[k].shape)}" for k in mismatched]
        raise CheckpointError(
            f"{source} does not fit {class_path(model)}: missing keys {missing[:8]}, unexpected keys "
            f"{unexpected[:8]}, other shapes {shapes[:8]}; the weights and the manifest's hyperparameters disagree"
        )
    fitting = {k: v.to(own[k].dtype) for k, v in stored.items() if k in own and k not in mismatched}
    model.load_state_dict({k: v for k, v in fitting.items() if k not in extra}, strict=False)
    if extra:
        model.load_shipped_extra_state({k: v for k, v in fitting.items() if k in extra})
    return sorted(set(missing) | set(mismatched)), unexpected


def hparams_to_build(manifest: manifest_module.Manifest) -> dict[str, Any]:
    """The manifest's hyperparameters, with the backbones its weights hold built without their weights file (the
    shipped tensors replace them, so the entry needs only the zoo) and no feature cache."""
    hparams = dict(manifest.hparams)
    inside = manifest.backbones_in_weights
    if inside:
        hparams["backbone_weights"] = [None if held else str(locate_backbone_file(w))
                                       for held, w in zip(inside, hparams["backbone_weights"])]
        hparams["feature_cache_dir"] = None
    return hparams


def load(entry_name: str, map_location: str = "cpu") -> ZooModule:
    """Return the shipped model of ``entry_name`` in eval mode, after checking the weights' sha256.

    Raises:
        UnknownEntryError: no entry has this name (a ``KeyError``; the message suggests the closest names).
        CheckpointError: no shipped weights, a hash mismatch (corrupt or replaced file), tensors that do not fit
            the model, or a manifest naming a class outside the zoo.
    """
    entry = registry.get(entry_name)
    manifest = entry.manifest()
    if manifest is None:
        shipped = registry.list_models(shipped=True)
        raise CheckpointError(
            f"entry {entry_name!r} ships no weights (no {entry_name}.json in "
            f"{' or '.join(str(folder) for folder in registry.checkpoint_dirs())}); "
            f"train it with `zoo fit -c {entry_name}`, or load one of: {', '.join(shipped) or '(none)'}"
        )
    path = manifest_module.weights_file(entry.manifest_path, manifest)
    digest = sha256(path)
    if digest != manifest.sha256:
        raise CheckpointError(
            f"sha256 of {path} is {digest}, but the manifest expects {manifest.sha256}: the file is corrupt or "
            f"was replaced. Restore it (git checkout -- {path.name}, or reinstall) or re-export it with `zoo export`."
        )
    check_backbone_files(entry_name, manifest.backbone_files)
    model_cls = import_trusted(manifest.model_class, ZooModule)
    model = model_cls(**hparams_to_build(manifest))
    load_state(model, path, held=manifest.weights_hold_only)
    model.zoo_entry = entry_name
    return model.to(map_location).eval()


def start_from(model: ZooModule, weights: str) -> tuple[list[str], list[str]]:
    """Load the tensors of ``weights`` whose names and shapes fit ``model`` (for fine-tuning or evaluation);
    return (names kept at their initialization, names of the file the model has no place for).

    ``weights`` is ``zoo:<entry>`` (that entry's shipped weights, sha256-checked by :func:`load`) or the path of a
    safetensors file (``zoo export`` output, or any ``safetensors.torch.save_model`` file). A model whose head
    differs (another number of classes) keeps its new head and loads everything else.
    """
    command_line = errors.naming_command_line_options()
    given = f"--weights {weights}" if command_line else f"weights {weights!r}"
    if weights.startswith("zoo:"):
        entry_name = weights[4:]
        manifest = registry.get(entry_name).manifest()
        if manifest is None:
            lister = "`zoo models --shipped`" if command_line else "zoo.list_models(shipped=True)"
            raise CheckpointError(f"{given}: entry {entry_name!r} ships no weights; {lister} lists those that do")
        path = manifest_module.weights_file(registry.get(entry_name).manifest_path, manifest)
        load(entry_name)  # checks the sha256, the backbone files and that the file fits its own model
    else:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(f"{given}: no such file; give zoo:<entry> or a .safetensors file")
    kept, unused = load_state(model, path, strict=False, source=given)
    loaded = len(model.state_dict()) - len(kept)
    if loaded == 0:
        raise CheckpointError(f"{given}: no tensor of the file fits {class_path(model)} (names or shapes "
                              f"differ everywhere); start from weights of the same architecture")
    return kept, unused


def start_vocabularies(datamodule: Optional[L.LightningDataModule], weights: str) -> Optional[str]:
    """Give ``datamodule`` the vocabularies of ``weights`` = ``zoo:<entry>`` when that entry's manifest records them
    (the tagger) and ``datamodule`` is of the entry's datamodule class, so the loaded embeddings read the ids they
    were trained with on other files too (fine-tuning on a treebank of your own); the datamodule keeps them when it
    reads its files, and words the entry never saw are read as ``<unk>``. Returns a note of what was done, or
    ``None`` (nothing to do)."""
    if datamodule is None or not weights.startswith("zoo:"):
        return None
    manifest = registry.get(weights[4:]).manifest()
    if manifest is None or manifest.vocabularies is None:
        return None
    if not isinstance(datamodule, import_trusted(manifest.datamodule_class, L.LightningDataModule)):
        return None
    datamodule.load_state_dict({"vocabularies": manifest.vocabularies})
    sizes = ", ".join(f"{len(symbols):,} {name}" for name, symbols in manifest.vocabularies.items())
    return (f"the datamodule reads its files with the vocabularies of {weights} ({sizes}); words it never saw are "
            f"read as <unk>")


def transforms(entry_name: str) -> Any:
    """What turns your input into the input of ``entry_name``'s shipped model (like torchvision's
    ``Weights.transforms()``): for an image entry the torchvision (v2) transform of a uint8 image tensor
    ``(C, H, W)``, from its manifest's ``preprocessing``; for a text entry (the tagger) the encoder of a list of
    sentences, from its manifest's ``vocabularies``."""
    manifest = registry.get(entry_name).manifest()
    if manifest is not None and manifest.vocabularies is not None:
        datamodule = build_datamodule(entry_name)  # its arguments only: no data is read
        datamodule.load_state_dict({"vocabularies": manifest.vocabularies})
        return datamodule.sentence_encoder()
    if manifest is None:
        raise CheckpointError(f"entry {entry_name!r} ships no weights, so it records no image preprocessing or "
                              f"vocabularies; zoo.list_models(shipped=True) lists the entries that ship weights")
    if manifest.preprocessing is None:
        raise CheckpointError(f"entry {entry_name!r} records no image preprocessing or vocabularies: it reads neither "
                              f"images nor sentences; give its model, zoo.load({entry_name!r}), tensors directly")
    return image_transforms(manifest.preprocessing)


def class_names(entry_name: str) -> list[str]:
    """The names of ``entry_name``'s output classes, in label order, from its manifest."""
    manifest = registry.get(entry_name).manifest()
    if manifest is None or manifest.classes is None:
        raise CheckpointError(f"entry {entry_name!r} records no class names (it ships no weights, or it is not a "
                              f"classifier)")
    return list(manifest.classes)


def build_datamodule(entry_name: str, **overrides: Any) -> L.LightningDataModule:
    """The datamodule recorded in an entry's manifest, with ``overrides`` applied to its arguments."""
    entry = registry.get(entry_name)
    manifest = entry.manifest()
    if manifest is None:
        raise CheckpointError(f"entry {entry_name!r} ships no weights, so it has no manifest")
    dm_cls = import_trusted(manifest.datamodule_class, L.LightningDataModule)
    return dm_cls(**{**manifest.datamodule, **overrides})


def entry_normalization(entry_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a shipped entry's inputs were normalized with: its datamodule's ``mean``/``std`` arguments,
    else the ``normalize`` facts of its manifest, else the datamodule class's ``mean``/``std``."""
    manifest = registry.get(entry_name).manifest()
    if manifest is None:
        raise CheckpointError(f"entry {entry_name!r} ships no weights, so its input normalization is not recorded")
    dm_cls = import_trusted(manifest.datamodule_class, object)
    facts = manifest.data.get("normalize") or {}
    args = manifest.datamodule
    mean = args.get("mean", facts.get("mean", getattr(dm_cls, "mean", None)))
    std = args.get("std", facts.get("std", getattr(dm_cls, "std", None)))
    if mean is None or std is None:
        raise ValueError(f"zoo entry {entry_name!r}: its datamodule {manifest.datamodule_class} names no mean/std, "
                         f"so its input normalization is unknown")

    def as_tuple(value: Any) -> tuple[float, ...]:
        return tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))

    return as_tuple(mean), as_tuple(std)


def zoo_backbone(entry_name: str, input_mean: Any, input_std: Any) -> Backbone:
    """The penultimate features of a shipped zoo entry (sha256-checked by :func:`load`), fed at its input size
    and normalization (:func:`entry_normalization`): the ``zoo:<entry>`` backbones of transfer models."""
    model = load(entry_name)
    mean, std = entry_normalization(entry_name)
    net, size = cut_classifier(getattr(model, "network", model))
    hp = model.hparams
    manifest = registry.get(entry_name).manifest()
    sha = manifest.sha256[:12] if manifest else ""
    return Backbone(net, size, f"zoo-{entry_name}-{sha}", input_mean, input_std, mean, std,
                    size=hp.get("image_size"), channels=hp.get("in_channels", 3))


register_backbone_scheme("zoo", zoo_backbone)
set_path_resolver(resolve_root)
