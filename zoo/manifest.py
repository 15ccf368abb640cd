"""The manifest of a shipped entry (``checkpoints/<entry>.json``): read, validated and described in one place.

A manifest records how the weights were made and how to use them:

- ``entry``, ``model_class``, ``hparams``: the model, rebuilt as ``model_class(**hparams)``;
- ``datamodule_class``, ``datamodule``, ``data``: the data it was trained and measured on;
- ``metrics`` and ``measured_on``: the figures and the split, size and device they were measured on;
- ``preprocessing`` and ``classes`` (image and label entries): what an input must become and what the outputs
  mean (:mod:`zoo.preprocessing`);
- ``weights`` (a file name in the same folder), ``sha256``, ``file_size``, ``parameters``, ``stored_dtype``;
- ``command``, ``export_command``, ``trained``, ``versions``, ``created``, ``notes``: provenance.

:func:`read_manifest` reads at most :data:`MAX_MANIFEST_BYTES`, checks the required keys and their types, and
refuses a ``weights`` that is not a plain file name; every problem is one :class:`ManifestError` naming the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

SCHEMA_VERSION = 2
MAX_MANIFEST_BYTES = 1 << 20
#: the largest weights file the zoo hashes or loads (bytes).
MAX_WEIGHTS_BYTES = 2 << 30

REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "entry": str,
    "model_class": str,
    "hparams": dict,
    "datamodule_class": str,
    "datamodule": dict,
    "metrics": dict,
    "weights": str,
    "sha256": str,
    "command": str,
}
#: keys every manifest written by ``zoo export`` (schema 2) has besides the required ones.
DESCRIBED_KEYS: dict[str, type | tuple[type, ...]] = {
    "schema": int,
    "parameters": int,
    "file_size": int,
    "measured_on": dict,
    "stored_dtype": str,
}


class ManifestError(ZooError, ValueError):
    """A manifest that cannot be read or does not hold what the zoo needs (the message names the file)."""


def read_manifest(path: Path) -> dict[str, Any]:
    """The validated manifest at ``path``.

    Raises:
        ManifestError: the file is larger than :data:`MAX_MANIFEST_BYTES`, not JSON, lacks a required key, has a
            key of the wrong type, names a ``weights`` outside its folder, or holds non-finite metrics.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as err:
        raise ManifestError(f"cannot read the manifest {path}: {err.strerror}") from None
    fix = "restore it (git checkout, or reinstall the zoo) or re-export the entry with `zoo export`"
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest {path} is larger than {MAX_MANIFEST_BYTES:,} bytes; {fix}")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"the manifest {path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"the manifest {path} must hold a JSON object, not {type(manifest).__name__}; {fix}")
    check_keys(manifest, REQUIRED_KEYS, path, fix)
    check_keys({k: v for k, v in manifest.items() if k in DESCRIBED_KEYS}, DESCRIBED_KEYS, path, fix, required=False)
    weights = manifest["weights"]
    if Path(weights).name != weights or weights in ("", ".", ".."):
        raise ManifestError(f"the manifest {path} names weights {weights!r}: it must be a plain file name in "
                            f"{path.parent}; {fix}")
    bad = [k for k, v in manifest["metrics"].items()
           if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
    if bad:
        raise ManifestError(f"the manifest {path} has non-numeric or non-finite metrics {bad}; {fix}")
    return manifest


def check_keys(manifest: dict[str, Any], expected: dict[str, Any], path: Path, fix: str, required: bool = True) -> None:
    for key, kind in expected.items():
        if key not in manifest:
            if required:
                raise ManifestError(f"the manifest {path} lacks the key {key!r}; {fix}")
            continue
        value = manifest[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ManifestError(f"the manifest {path} has {key!r} of type {type(value).__name__}, expected {name}; "
                                f"{fix}")


def weights_file(manifest_path: Path, manifest: dict[str, Any]) -> Path:
    """The weights file a validated manifest names: a regular file in the manifest's folder, not larger than
    :data:`MAX_WEIGHTS_BYTES` (a link to a device or outside the folder is refused, so nothing hashes forever)."""
    folder = manifest_path.parent.resolve()
    path = folder / manifest["weights"]
    if not path.exists():
        raise ManifestError(f"weights file {path} named by {manifest_path} is missing; reinstall the zoo or set "
                            f"ZOO_CHECKPOINT_DIR to a folder holding it")
    resolved = path.resolve()
    if resolved.parent != folder or not resolved.is_file():
        raise ManifestError(f"weights file {path} named by {manifest_path} is not a regular file in {folder} (it "
                            f"resolves to {resolved}); restore the file")
    size = resolved.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise ManifestError(f"weights file {path} is {size:,} bytes, more than the {MAX_WEIGHTS_BYTES:,} the zoo "
                            f"reads; restore the file")
    return resolved


def headline(manifest: dict[str, Any]) -> str:
    """The entry's main figure as ``name=value``: accuracy, NLL, perplexity, RMSE, Fréchet distance, ..."""
    metrics = manifest.get("metrics", {})
    for key in ("test/perplexity", "test/nll", "test/rmse", "test/ce_per_seq", "test/acc", "test/label_acc", "test/loss",
                "test/fd_lenet", "test/fd_lenet_fashion"):
        if key in metrics:
            value = metrics[key]
            return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
    return "-"
