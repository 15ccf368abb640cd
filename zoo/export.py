"""``zoo export``: turn a ``zoo fit`` checkpoint into shipped weights (safetensors) and their manifest.

The model and the datamodule are rebuilt from the checkpoint, the weights stored (optionally in float16/bfloat16),
loaded back from the stored file and measured on the test set (:mod:`zoo.evaluation`), so every figure of the
manifest (:mod:`zoo.manifest`) is a figure of the shipped file. :mod:`zoo.hub` loads what this writes.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from safetensors.torch import save_file

from datamodules import resolve_root
from zoo import registry
from zoo.manifest import SCHEMA_VERSION, Manifest
from zoo.evaluation import model_metrics
from zoo.hub import (BACKBONE_SOURCES, CheckpointError, class_path, extra_state, load_checkpoint, load_state,
                     plain_hparams, sha256)
from zoo.models.base import Classifier, ZooModule


def backbones_inside(model: L.LightningModule) -> list[bool]:
    """Per backbone of a transfer model, whether its shipped weights hold it ([] for other models)."""
    inside = getattr(model, "backbones_in_weights", None)
    return inside() if callable(inside) else []


def backbone_file_hashes(model: L.LightningModule) -> dict[str, str]:
    """The sha256 of each weights file a model loads at construction (``external_weight_files``) and its shipped
    weights do not hold, by its name as written in the hyperparameters (``$ZOO_DATA_DIR/...``)."""
    files = getattr(model, "external_weight_files", None)
    inside = dict(zip(getattr(model.hparams, "backbone_weights", []) or [], backbones_inside(model)))
    return {name: sha256(resolve_root(name)) for name in (files() if files else []) if not inside.get(name)}


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


def parameter_count(model: ZooModule, stored: set[str]) -> int:
    """Elements of the model's parameters held in the weights file (buffers and unshipped modules excluded)."""
    extra = getattr(model, "shipped_extra_parameters", None)  # a transfer model's frozen backbones
    parameters = {**dict(model.named_parameters()), **(extra() if callable(extra) else {})}
    return sum(p.numel() for name, p in parameters.items() if name in stored)


def describe_weights(model: ZooModule, datamodule: L.LightningDataModule, weights: Path, dtype: str,
                     stored: set[str]) -> dict[str, Any]:
    """What a user needs besides the weights: preprocessing, class names, vocabularies, size, and where metrics were
    measured (as :class:`~zoo.manifest.Manifest` fields; ``preprocessing``, ``classes`` and ``vocabularies`` only
    when the datamodule has them)."""
    spec = datamodule.input_spec() if callable(getattr(datamodule, "input_spec", None)) else None
    # class names mean something for a classifier's outputs and a conditional generator's labels only
    labelled = isinstance(model, Classifier) or bool(getattr(model.hparams, "conditional", False))
    names = getattr(datamodule, "class_names", None) if labelled else None
    vocabularies = getattr(datamodule, "vocabularies", None)  # a text entry's input symbols
    data = datamodule.describe() if callable(getattr(datamodule, "describe", None)) else {}
    return {
        "schema": SCHEMA_VERSION,
        **({"preprocessing": spec} if spec else {}),
        **({"classes": list(names)} if names else {}),
        **({"vocabularies": vocabularies} if vocabularies else {}),
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
    overwrite: bool = False,
) -> Manifest:
    """Turn a Lightning checkpoint of ``entry_name`` into shipped weights and a manifest; return the manifest.

    The model and the datamodule are rebuilt from the hyperparameters stored in the checkpoint; the weights are
    stored (floating-point tensors as ``dtype``), loaded back from the stored file, and tested on the datamodule's
    test set, so every metric in the manifest is a metric of the shipped file. Both files are written under
    temporary names and moved into place only when everything succeeded. They go to ``out_dir`` (default:
    :func:`zoo.registry.checkpoint_dir`, where ``zoo.load`` reads); weights already there for ``entry_name`` (the
    shipped ones, say) are replaced only with ``overwrite``.
    """
    if dtype not in STORED_DTYPES:
        raise CheckpointError(f"--dtype must be one of {sorted(STORED_DTYPES)}, got {dtype!r}")
    out_dir = Path(out_dir) if out_dir else registry.checkpoint_dir()
    weights = out_dir / f"{entry_name}.safetensors"
    manifest_path = out_dir / f"{entry_name}.json"
    held = [path for path in (manifest_path, weights) if path.exists()]
    if held and not overwrite:
        raise CheckpointError(
            f"refusing to replace {held[0]}: {out_dir} already holds weights of {entry_name!r}. Pass --out_dir "
            f"<folder> to write yours there (and ZOO_CHECKPOINT_DIR=<folder> to load them), or --overwrite to "
            f"replace these.")
    trained, datamodule, checkpoint = load_checkpoint(entry_name, ckpt_path, data_root)
    dm_hparams = plain_hparams(checkpoint.get("datamodule_hyper_parameters", {}))
    out_dir.mkdir(parents=True, exist_ok=True)
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
        hashes = backbone_file_hashes(model)
        manifest = Manifest(  # written in zoo.manifest.KEY_ORDER; empty optional keys left out
            entry=entry_name,
            model_class=class_path(model),
            hparams=plain_hparams(model.hparams),
            datamodule_class=class_path(datamodule),
            datamodule=dm_hparams,
            data=datamodule.describe() if callable(getattr(datamodule, "describe", None)) else {},
            metrics=metrics,
            trained={"epochs": checkpoint.get("epoch", -1) + 1, "global_step": checkpoint.get("global_step"),
                     "device": trained_on},
            weights=weights.name,
            weights_hold_only=list(shipped_modules) if shipped_modules else None,
            sha256=sha256(partial_weights),
            **describe_weights(model, datamodule, partial_weights, dtype, set(state)),
            backbones_in_weights=backbones_inside(model) or None,
            backbone_files=hashes,
            backbone_sources={name: BACKBONE_SOURCES[digest] for name, digest in hashes.items()
                              if digest in BACKBONE_SOURCES},
            command=fit_command,
            export_command="zoo export " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if sys.argv[1:2] == ["export"] else "",
            versions={"torch": torch.__version__, "lightning": L.__version__},
            created=_dt.date.today().isoformat(),
            notes=notes,
        )
        partial_manifest.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        os.replace(partial_weights, weights)
        os.replace(partial_manifest, manifest_path)
    finally:
        for leftover in (partial_weights, partial_manifest):
            leftover.unlink(missing_ok=True)
    return manifest
