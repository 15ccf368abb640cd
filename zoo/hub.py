"""Shipped weights: export a trained checkpoint to safetensors + manifest, load it back after checking its hash.

Weights are stored in safetensors, so loading them cannot run code. The manifest ``checkpoints/<entry>.json``
records the model class and hyperparameters, the dataset and its sizes, the sha256 of the weights, the metrics
measured on the real test set and the commands that produced them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo import manifest as manifest_module
from zoo import registry
from zoo.checkpoint_trust import refuse_untrusted_checkpoint
from zoo.errors import ZooError
from zoo.models.base import Classifier, ZooModule

TRUSTED_PREFIXES = ("zoo.", "datamodules.")

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


def import_trusted(class_path: str, base: type) -> type:
    """Import ``class_path`` if it lives in the zoo's own packages and subclasses ``base``."""
    if not class_path.startswith(TRUSTED_PREFIXES):
        raise CheckpointError(
            f"refusing to import {class_path!r}: a manifest may only name classes in {TRUSTED_PREFIXES}; "
            f"the manifest is not from this zoo or was edited"
        )
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"cannot import {class_path!r} named by the manifest: {err}") from err
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


def backbones_inside(model: L.LightningModule) -> list[bool]:
    """Per backbone of a transfer model, whether its shipped weights hold it ([] for other models)."""
    inside = getattr(model, "backbones_in_weights", None)
    return inside() if callable(inside) else []


def backbone_file_hashes(model: L.LightningModule) -> dict[str, str]:
    """The sha256 of each weights file a model loads at construction (``external_weight_files``) and its shipped
    weights do not hold, by its name as written in the hyperparameters (``$ZOO_DATA_DIR/...``)."""
    from datamodules._paths import resolve_root

    files = getattr(model, "external_weight_files", None)
    inside = dict(zip(getattr(model.hparams, "backbone_weights", []) or [], backbones_inside(model)))
    return {name: sha256(resolve_root(name)) for name in (files() if files else []) if not inside.get(name)}


#: public sources of backbone files that shipped weights cannot hold, by sha256 (named in errors and manifests).
BACKBONE_SOURCES = {
    "2778381c5eb7639a2229bc39567cf644226e5aa3d3a1d46dfcee70b373738498": (
        "torchvision's int8 ImageNet MobileNet V2 traced by the PyTorch team: github.com/pytorch/ios-demo-app at "
        "commit b8f52b772b98, PyTorchDemo/PyTorchDemo/ImageClassification/model/mobilenet_quantized.pt"),
}


def locate_backbone_file(name: str) -> Path:
    """Where a backbone file named ``$ZOO_DATA_DIR/...`` is: under ``ZOO_DATA_DIR``, else in torch hub's
    ``checkpoints/`` folder (``$TORCH_HOME/hub/checkpoints``) under its file name."""
    from datamodules._paths import resolve_root

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


def test_metrics(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """Run ``trainer.test`` on CPU and return the logged metrics as floats."""
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def model_metrics(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """``trainer.test`` metrics plus those of the model's ``evaluation_metrics(datamodule)`` if it has one
    (the generative models' sample quality)."""
    metrics = test_metrics(model, datamodule)
    extra = getattr(model, "evaluation_metrics", None)
    if callable(extra):
        metrics.update(extra(datamodule))
    return metrics


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
        UntrustedCheckpointError: the file needs globals outside torch's weights-only allowlist.
    """
    entry = registry.get(entry_name)
    if not Path(ckpt_path).is_file():
        raise CheckpointError(
            f"no checkpoint at {ckpt_path}; pass the .ckpt a `zoo fit -c {entry_name}` run wrote (its results.json "
            f"names it, under <default_root_dir>/lightning_logs/version_N/checkpoints/)"
        )
    refuse_untrusted_checkpoint(ckpt_path, how_to_accept=EXPORT_ACCEPT)
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model_cls = import_trusted(entry.model_class, ZooModule)
    try:
        model = model_cls.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    except (RuntimeError, TypeError, KeyError) as err:  # another model's state dict or hyperparameters
        raise CheckpointError(
            f"{ckpt_path} is not a checkpoint of {entry.model_class} (entry {entry_name!r}): {err}"
        ) from err
    stored = plain_hparams(checkpoint.get("datamodule_hyper_parameters", {}))
    dm_cls = import_trusted(checkpoint.get("datamodule_hyper_parameters", {}).get(
        "_class_path", entry.datamodule_class), L.LightningDataModule)
    if data_root is not None:
        stored["root"] = data_root
    datamodule = dm_cls(**stored)
    root = getattr(datamodule, "root", None)
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
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model_path = checkpoint.get("hyper_parameters", {}).get("_class_path")
    dm_hparams = checkpoint.get("datamodule_hyper_parameters", {})
    if not model_path or "_class_path" not in dm_hparams:
        raise CheckpointError(f"{ckpt_path} does not record its model and datamodule classes; it was not written "
                              f"by `zoo fit`")
    model_cls = import_trusted(model_path, ZooModule)
    try:
        model = model_cls.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    except (RuntimeError, TypeError, KeyError) as err:
        raise CheckpointError(f"{ckpt_path} does not rebuild {model_path}: {err}") from err
    dm_cls = import_trusted(dm_hparams["_class_path"], L.LightningDataModule)
    datamodule = dm_cls(**plain_hparams(dm_hparams))
    if dm_cls.__qualname__ in checkpoint:
        datamodule.load_state_dict(checkpoint[dm_cls.__qualname__])
    return model.eval(), datamodule


STORED_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def stored_state(model: ZooModule, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """The tensors ``zoo export`` ships: the whole state dict, or only the ``shipped_modules`` (a GAN's generator),
    with floating-point tensors stored as ``dtype``. Non-finite values are refused (a diverged run)."""
    shipped_modules = getattr(model, "shipped_modules", None)
    prefixes = tuple(f"{name}." for name in shipped_modules) if shipped_modules else ("",)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k.startswith(prefixes)}
    state.update({k: v.detach().contiguous() for k, v in extra_state(model).items()})
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"refusing to export weights with NaN or infinite values in {bad[:5]}"
                              f"{' ...' if len(bad) > 5 else ''}: the run diverged; train again with a lower lr")
    target = STORED_DTYPES[dtype]
    return {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}


def extra_state(model: ZooModule) -> dict[str, torch.Tensor]:
    """Tensors a model ships beyond its state dict (a transfer model's frozen backbones)."""
    extra = getattr(model, "shipped_extra_state", None)
    return extra() if callable(extra) else {}


def parameter_count(model: ZooModule, stored: set[str]) -> int:
    """Elements of the model's parameters held in the weights file (buffers and unshipped modules excluded)."""
    extra = getattr(model, "shipped_extra_parameters", None)  # a transfer model's frozen backbones
    parameters = {**dict(model.named_parameters()), **(extra() if callable(extra) else {})}
    return sum(p.numel() for name, p in parameters.items() if name in stored)


def describe_weights(model: ZooModule, datamodule: L.LightningDataModule, weights: Path, dtype: str,
                     stored: set[str]) -> dict[str, Any]:
    """What a user needs besides the weights: preprocessing, class names, size, and where metrics were measured."""
    spec = datamodule.input_spec() if callable(getattr(datamodule, "input_spec", None)) else None
    # class names mean something for a classifier's outputs and a conditional generator's labels only
    labelled = isinstance(model, Classifier) or bool(getattr(model.hparams, "conditional", False))
    names = getattr(datamodule, "class_names", None) if labelled else None
    data = datamodule.describe() if callable(getattr(datamodule, "describe", None)) else {}
    return {
        "schema": manifest_module.SCHEMA_VERSION,
        **({"preprocessing": spec} if spec else {}),
        **({"classes": list(names)} if names else {}),
        "parameters": parameter_count(model, stored),
        "file_size": weights.stat().st_size,
        "stored_dtype": dtype,
        "measured_on": {
            "split": data.get("test_split", "test"),
            "size": data.get("test_size"),
            "dataset": data.get("dataset"),
            "device": "cpu",
        },
    }


def export(
    entry_name: str,
    ckpt_path: str,
    fit_command: str,
    extra_metrics: Optional[dict[str, float]] = None,
    notes: str = "",
    out_dir: Optional[Path] = None,
    dtype: str = "float32",
    trained_on: str = "cpu",
    data_root: Optional[str] = None,
) -> dict[str, Any]:
    """Turn a Lightning checkpoint of ``entry_name`` into shipped weights and a manifest.

    The model and the datamodule are rebuilt from the hyperparameters stored in the checkpoint; the weights are
    stored (floating-point tensors as ``dtype``), loaded back from the stored file, and tested on the datamodule's
    test set, so every metric in the manifest is a metric of the shipped file. Both files are written under
    temporary names and moved into place only when everything succeeded.
    """
    if dtype not in STORED_DTYPES:
        raise CheckpointError(f"--dtype must be one of {sorted(STORED_DTYPES)}, got {dtype!r}")
    trained, datamodule, checkpoint = load_checkpoint(entry_name, ckpt_path, data_root)
    dm_hparams = plain_hparams(checkpoint.get("datamodule_hyper_parameters", {}))
    out_dir = Path(out_dir) if out_dir else registry.checkpoint_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{entry_name}.safetensors"
    manifest_path = out_dir / f"{entry_name}.json"
    partial_weights = out_dir / f".{entry_name}.safetensors.partial"
    partial_manifest = out_dir / f".{entry_name}.json.partial"
    try:
        state = stored_state(trained, dtype)
        save_file(state, str(partial_weights), metadata={"entry": entry_name, "model_class": class_path(trained)})
        partial_weights.chmod(0o644)  # safetensors writes owner-only files; shipped weights are read by everyone
        model = type(trained)(**plain_hparams(trained.hparams))
        load_state(model, partial_weights, held=list(getattr(trained, "shipped_modules", None) or []))
        model.eval()
        metrics = model_metrics(model, datamodule)
        metrics.update(extra_metrics or {})
        bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
        if bad:
            raise CheckpointError(f"refusing to export {entry_name}: the metrics {bad} are not finite")
        if callable(getattr(datamodule, "describe", None)):
            datamodule.setup("fit")  # so the manifest records the training and validation sizes too
        shipped_modules = getattr(model, "shipped_modules", None)
        manifest = {
            "entry": entry_name,
            "model_class": class_path(model),
            "hparams": plain_hparams(model.hparams),
            "datamodule_class": class_path(datamodule),
            "datamodule": dm_hparams,
            "data": datamodule.describe() if callable(getattr(datamodule, "describe", None)) else {},
            "metrics": metrics,
            "trained": {"epochs": checkpoint.get("epoch", -1) + 1, "global_step": checkpoint.get("global_step"),
                        "device": trained_on},
            "weights": weights.name,
            **({"weights_hold_only": list(shipped_modules)} if shipped_modules else {}),
            "sha256": sha256(partial_weights),
            **describe_weights(model, datamodule, partial_weights, dtype, set(state)),
            **({"backbones_in_weights": inside} if (inside := backbones_inside(model)) else {}),
            **({"backbone_files": hashes} if (hashes := backbone_file_hashes(model)) else {}),
            **({"backbone_sources": sources} if (sources := {name: BACKBONE_SOURCES[digest] for name, digest in
                                                             hashes.items() if digest in BACKBONE_SOURCES}) else {}),
            "command": fit_command,
            "export_command": "zoo export " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if sys.argv[1:2] == ["export"] else "",
            "versions": {"torch": torch.__version__, "lightning": L.__version__},
            "created": _dt.date.today().isoformat(),
            "notes": notes,
        }
        partial_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(partial_weights, weights)
        os.replace(partial_manifest, manifest_path)
    finally:
        for leftover in (partial_weights, partial_manifest):
            leftover.unlink(missing_ok=True)
    return manifest


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


def hparams_to_build(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's hyperparameters, with the backbones its weights hold built without their weights file (the
    shipped tensors replace them, so the entry needs only the zoo) and no feature cache."""
    hparams = dict(manifest["hparams"])
    inside = manifest.get("backbones_in_weights")
    if inside:
        hparams["backbone_weights"] = [None if held else str(locate_backbone_file(w))
                                       for held, w in zip(inside, hparams["backbone_weights"])]
        hparams["feature_cache_dir"] = None
    return hparams


def load(entry_name: str, map_location: str = "cpu") -> ZooModule:
    """Return the shipped model of ``entry_name`` in eval mode, after checking the weights' sha256.

    Raises:
        CheckpointError: no shipped weights, a hash mismatch (corrupt or replaced file), tensors that do not fit
            the model, or a manifest naming a class outside the zoo.
    """
    entry = registry.get(entry_name)
    manifest = entry.manifest()
    if manifest is None:
        shipped = registry.list_models(shipped=True)
        raise CheckpointError(
            f"entry {entry_name!r} ships no weights ({entry.manifest_path} is missing); "
            f"train it with `zoo fit -c {entry_name}`, or load one of: {', '.join(shipped) or '(none)'}"
        )
    path = manifest_module.weights_file(entry.manifest_path, manifest)
    digest = sha256(path)
    if digest != manifest["sha256"]:
        raise CheckpointError(
            f"sha256 of {path} is {digest}, but the manifest expects {manifest['sha256']}: the file is corrupt or "
            f"was replaced. Restore it (git checkout -- {path.name}, or reinstall) or re-export it with `zoo export`."
        )
    check_backbone_files(entry_name, manifest.get("backbone_files", {}))
    model_cls = import_trusted(manifest["model_class"], ZooModule)
    model = model_cls(**hparams_to_build(manifest))
    load_state(model, path, held=manifest.get("weights_hold_only"))
    model.zoo_entry = entry_name
    return model.to(map_location).eval()


def start_from(model: ZooModule, weights: str) -> tuple[list[str], list[str]]:
    """Load the tensors of ``weights`` whose names and shapes fit ``model`` (for fine-tuning or evaluation);
    return (names kept at their initialization, names of the file the model has no place for).

    ``weights`` is ``zoo:<entry>`` (that entry's shipped weights, sha256-checked by :func:`load`) or the path of a
    safetensors file (``zoo export`` output, or any ``safetensors.torch.save_model`` file). A model whose head
    differs (another number of classes) keeps its new head and loads everything else.
    """
    if weights.startswith("zoo:"):
        entry_name = weights[4:]
        manifest = registry.get(entry_name).manifest()
        if manifest is None:
            raise CheckpointError(f"--weights {weights}: entry {entry_name!r} ships no weights; `zoo models "
                                  f"--shipped` lists those that do")
        path = manifest_module.weights_file(registry.get(entry_name).manifest_path, manifest)
        load(entry_name)  # checks the sha256, the backbone files and that the file fits its own model
    else:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(f"--weights {weights}: no such file; give zoo:<entry> or a .safetensors file")
    kept, unused = load_state(model, path, strict=False, source=f"--weights {weights}")
    loaded = len(model.state_dict()) - len(kept)
    if loaded == 0:
        raise CheckpointError(f"--weights {weights}: no tensor of the file fits {class_path(model)} (names or shapes "
                              f"differ everywhere); start from weights of the same architecture")
    return kept, unused


def transforms(entry_name: str) -> Any:
    """The torchvision (v2) transform from a uint8 image tensor ``(C, H, W)`` to the input of ``entry_name``'s
    shipped model, from its manifest's ``preprocessing`` (like torchvision's ``Weights.transforms()``)."""
    from zoo.preprocessing import image_transforms

    manifest = registry.get(entry_name).manifest() or {}
    if "preprocessing" not in manifest:
        raise CheckpointError(f"entry {entry_name!r} records no image preprocessing (it ships no weights, or its "
                              f"inputs are not images); `zoo models --shipped` lists the image entries")
    return image_transforms(manifest["preprocessing"])


def class_names(entry_name: str) -> list[str]:
    """The names of ``entry_name``'s output classes, in label order, from its manifest."""
    manifest = registry.get(entry_name).manifest() or {}
    if "classes" not in manifest:
        raise CheckpointError(f"entry {entry_name!r} records no class names (it ships no weights, or it is not a "
                              f"classifier)")
    return list(manifest["classes"])


def build_datamodule(entry_name: str, **overrides: Any) -> L.LightningDataModule:
    """The datamodule recorded in an entry's manifest, with ``overrides`` applied to its arguments."""
    entry = registry.get(entry_name)
    manifest = entry.manifest()
    if manifest is None:
        raise CheckpointError(f"entry {entry_name!r} ships no weights, so it has no manifest")
    dm_cls = import_trusted(manifest["datamodule_class"], L.LightningDataModule)
    return dm_cls(**{**manifest["datamodule"], **overrides})


def agrees(measured: float, recorded: float, tolerance: float) -> bool:
    """``measured`` is within ``tolerance`` of ``recorded``, relative to its size (absolute below 1)."""
    return abs(measured - recorded) <= tolerance * max(1.0, abs(recorded))


def evaluate(entry_name: str, ckpt_path: Optional[str] = None, data_root: Optional[str] = None
             ) -> tuple[dict[str, float], dict[str, float]]:
    """Re-measure an entry's test metrics with its shipped weights, or with the Lightning checkpoint
    ``ckpt_path`` of a run of it (and the datamodule stored there, reading from ``data_root`` if given); return
    (measured, manifest's)."""
    if ckpt_path is None:
        model = load(entry_name)
        datamodule = build_datamodule(entry_name, **({"root": data_root} if data_root is not None else {}))
    else:
        model, datamodule, _ = load_checkpoint(entry_name, ckpt_path, data_root)
    measured = model_metrics(model, datamodule)
    manifest = registry.get(entry_name).manifest() or {}
    return measured, manifest.get("metrics", {})
