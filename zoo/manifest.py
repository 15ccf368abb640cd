"""The manifest of a shipped entry (``checkpoints/<entry>.json``): read, validated and typed in one place.

A manifest records how the weights were made and how to use them. The zoo reads it only through
:func:`read_manifest` (or ``registry.get(name).manifest()``), which returns a frozen :class:`Manifest`:

- ``entry``, ``model_class``, ``hparams``: the model, rebuilt as ``model_class(**hparams)``;
- ``datamodule_class``, ``datamodule``, ``data``: the data it was trained and measured on;
- ``metrics`` and ``measured_on``: the figures and the split, size and device they were measured on;
- ``preprocessing`` and ``classes`` (image and label entries): what an input must become and what the outputs
  mean (:mod:`zoo.preprocessing`); ``vocabularies`` (text entries): the symbols of the input ids, in id order;
- ``weights`` (a file name in the same folder), ``sha256``, ``file_size``, ``parameters``, ``stored_dtype``;
- ``weights_hold_only`` (a GAN's generator), ``backbones_in_weights``, ``backbone_files`` and
  ``backbone_sources`` (a transfer model's backbones);
- ``command``, ``export_command``, ``trained``, ``versions``, ``created``, ``notes``: provenance;
- ``schema``: the manifest's version, :data:`SCHEMA_VERSION` for what ``zoo export`` writes; a manifest without the
  key is schema 1 (written before the schema-2 keys of :data:`DESCRIBED_KEYS`).

:func:`read_manifest` reads at most :data:`MAX_MANIFEST_BYTES`, checks the required keys and the types of every
known key, and refuses a ``weights`` that is not a plain file name, non-finite metrics and a schema newer than
this zoo's; every problem is one :class:`ManifestError` naming the file. Keys the zoo does not know are kept in
:attr:`Manifest.extra`, and :meth:`Manifest.to_dict` gives back the JSON object in the order it was written, so
``json.dumps(m.to_dict(), indent=2) + "\\n"`` reproduces a file ``zoo export`` wrote byte for byte. ``zoo export``
builds a :class:`Manifest` and writes :meth:`Manifest.to_dict`.

This module imports neither torch nor Lightning: ``zoo models`` lists the entries from their manifests alone.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

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
#: the other keys the zoo reads or ``zoo export`` writes (their types are checked where present).
OPTIONAL_KEYS: dict[str, type | tuple[type, ...]] = {
    "data": dict,
    "trained": dict,
    "weights_hold_only": list,
    "preprocessing": dict,
    "classes": list,
    "vocabularies": dict,
    "backbones_in_weights": list,
    "backbone_files": dict,
    "backbone_sources": dict,
    "export_command": str,
    "versions": dict,
    "created": str,
    "notes": str,
}
#: the keys ``zoo export`` writes, in its order; those of :data:`WRITTEN_WHEN_SET` only when not empty.
KEY_ORDER: tuple[str, ...] = (
    "entry", "model_class", "hparams", "datamodule_class", "datamodule", "data", "metrics", "trained", "weights",
    "weights_hold_only", "sha256", "schema", "preprocessing", "classes", "vocabularies", "parameters", "file_size",
    "stored_dtype", "measured_on", "backbones_in_weights", "backbone_files", "backbone_sources", "command",
    "export_command", "versions", "created", "notes",
)
WRITTEN_WHEN_SET = frozenset({"weights_hold_only", "preprocessing", "classes", "vocabularies",
                              "backbones_in_weights", "backbone_files", "backbone_sources"})


class ManifestError(ZooError, ValueError):
    """A manifest that cannot be read or does not hold what the zoo needs (the message names the file)."""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (:func:`read_manifest`); every key of the JSON object is an attribute.

    The required keys (:data:`REQUIRED_KEYS`) have no default. A key a manifest lacks reads as ``None`` (values that
    are absent rather than empty: ``classes``, ``preprocessing``, ``weights_hold_only``, ``parameters``, ...), as
    an empty dict or string (``data``, ``trained``, ``measured_on``, ``backbone_files``, ``notes``, ...), or for
    ``schema`` as 1. The dataclass is frozen; its dicts and lists are the parsed JSON, to be read, not changed
    (build a changed manifest with :func:`dataclasses.replace`).
    """

    entry: str
    model_class: str
    hparams: dict[str, Any]
    datamodule_class: str
    datamodule: dict[str, Any]
    metrics: dict[str, float]
    weights: str
    sha256: str
    command: str
    data: dict[str, Any] = field(default_factory=dict)
    trained: dict[str, Any] = field(default_factory=dict)
    weights_hold_only: Optional[list[str]] = None
    schema: int = SCHEMA_VERSION
    preprocessing: Optional[dict[str, Any]] = None
    classes: Optional[list[str]] = None
    vocabularies: Optional[dict[str, list[str]]] = None
    parameters: Optional[int] = None
    file_size: Optional[int] = None
    stored_dtype: Optional[str] = None
    measured_on: dict[str, Any] = field(default_factory=dict)
    backbones_in_weights: Optional[list[bool]] = None
    backbone_files: dict[str, str] = field(default_factory=dict)
    backbone_sources: dict[str, str] = field(default_factory=dict)
    export_command: Optional[str] = None
    versions: dict[str, str] = field(default_factory=dict)
    created: Optional[str] = None
    notes: str = ""
    #: keys this zoo does not know, with their values (kept so that :meth:`to_dict` loses nothing).
    extra: dict[str, Any] = field(default_factory=dict)
    #: the keys in the order the file wrote them (empty for a manifest built in code: :data:`KEY_ORDER`).
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        known = set(self.extra) & set(KEY_ORDER)
        if known:
            raise ValueError(f"Manifest.extra holds keys that are fields: {sorted(known)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Union[str, Path] = "<dict>") -> Manifest:
        """The manifest of a JSON object (copied), validated as :func:`read_manifest` validates a file (the
        messages name ``source``)."""
        return _build(copy.deepcopy(data), source)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (a deep copy): the keys as read, in their order (a key set to ``None`` left out), then
        keys set since (:func:`dataclasses.replace`) and unknown ones. A manifest built in code writes
        :data:`KEY_ORDER`, the keys of :data:`WRITTEN_WHEN_SET` only when not empty and ``None`` ones not at all."""
        out: dict[str, Any] = {}
        for key in self.key_order:
            if key in self.extra:
                out[key] = self.extra[key]
            elif key in _FIELDS and getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in KEY_ORDER:
            if key not in out and key not in self.key_order and self._written(key):
                out[key] = getattr(self, key)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return copy.deepcopy(out)

    def _written(self, key: str) -> bool:
        """Whether a field the file did not hold (or a manifest built in code) writes ``key``."""
        value = getattr(self, key)
        if value is None:
            return False
        if self.key_order:  # read from a file: only what was set since, unlike what the missing key reads as
            return value != _ABSENT[key]
        return key not in WRITTEN_WHEN_SET or bool(value)


_FIELDS = frozenset(f.name for f in fields(Manifest)) - {"extra", "key_order"}
#: what each optional field reads as when its key is missing (a missing ``schema`` is schema 1).
_ABSENT: dict[str, Any] = {
    f.name: f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
    for f in fields(Manifest) if f.name in _FIELDS
}
_ABSENT["schema"] = 1
assert _FIELDS == set(KEY_ORDER) == set(REQUIRED_KEYS) | set(DESCRIBED_KEYS) | set(OPTIONAL_KEYS)

_FIX = "restore it (git checkout, or reinstall the zoo) or re-export the entry with `zoo export`"


def read_manifest(path: Path) -> Manifest:
    """The validated manifest at ``path``.

    Raises:
        ManifestError: the file is larger than :data:`MAX_MANIFEST_BYTES`, not JSON, lacks a required key, has a
            key of the wrong type, names a ``weights`` outside its folder, holds non-finite metrics, or has a
            schema newer than :data:`SCHEMA_VERSION`.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as err:
        raise ManifestError(f"cannot read the manifest {path}: {err.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest {path} is larger than {MAX_MANIFEST_BYTES:,} bytes; {_FIX}")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"the manifest {path} is not valid JSON ({err}); {_FIX}") from None
    return _build(manifest, path)


def _build(manifest: Any, path: Union[str, Path]) -> Manifest:
    """Validate a parsed manifest and build its :class:`Manifest` (which holds ``manifest``'s values)."""
    fix = _FIX
    if not isinstance(manifest, dict):
        raise ManifestError(f"the manifest {path} must hold a JSON object, not {type(manifest).__name__}; {fix}")
    check_keys(manifest, REQUIRED_KEYS, path, fix)
    for optional in (DESCRIBED_KEYS, OPTIONAL_KEYS):
        check_keys({k: v for k, v in manifest.items() if k in optional}, optional, path, fix, required=False)
    weights = manifest["weights"]
    if Path(weights).name != weights or weights in ("", ".", ".."):
        raise ManifestError(f"the manifest {path} names weights {weights!r}: it must be a plain file name in "
                            f"{Path(path).parent}; {fix}")
    bad = [k for k, v in manifest["metrics"].items()
           if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
    if bad:
        raise ManifestError(f"the manifest {path} has non-numeric or non-finite metrics {bad}; {fix}")
    schema = manifest.get("schema", 1)
    if not 1 <= schema <= SCHEMA_VERSION:
        raise ManifestError(f"the manifest {path} has schema {schema}, but this zoo reads schemas 1 to "
                            f"{SCHEMA_VERSION}; update the zoo, or re-export the entry with this zoo's `zoo export`")
    known = {k: v for k, v in manifest.items() if k in _FIELDS}
    extra = {k: v for k, v in manifest.items() if k not in _FIELDS}
    return Manifest(**{"schema": 1, **known}, extra=extra, key_order=tuple(manifest))


def check_keys(manifest: dict[str, Any], expected: dict[str, Any], path: Union[str, Path], fix: str,
               required: bool = True) -> None:
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


def weights_file(manifest_path: Path, manifest: Manifest) -> Path:
    """The weights file a validated manifest names: a regular file in the manifest's folder, not larger than
    :data:`MAX_WEIGHTS_BYTES` (a link to a device or outside the folder is refused, so nothing hashes forever)."""
    folder = manifest_path.parent.resolve()
    path = folder / manifest.weights
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


def headline(manifest: Manifest) -> str:
    """The entry's main figure as ``name=value``: accuracy, NLL, perplexity, RMSE, Fréchet distance, ..."""
    metrics = manifest.metrics
    for key in ("test/perplexity", "test/nll", "test/rmse", "test/ce_per_seq", "test/acc", "test/label_acc", "test/loss",
                "test/fd_lenet", "test/fd_lenet_fashion"):
        if key in metrics:
            value = metrics[key]
            return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
    return "-"
