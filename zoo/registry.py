"""The zoo's entries: a name joining a model class, a datamodule class and default settings.

Every entry is one LightningCLI config file ``zoo/configs/<name>.yaml`` (so ``zoo fit -c <name>`` and
``zoo fit -c zoo/configs/<name>.yaml`` are the same run). An entry whose weights are shipped also has
``checkpoints/<name>.json`` (its manifest) and ``checkpoints/<name>.safetensors``; weights of your own in
``$ZOO_CHECKPOINT_DIR`` take their place, entry by entry (:func:`checkpoint_dirs`).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from zoo.errors import ZooError
from zoo.manifest import Manifest, read_manifest

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5x faster
CONFIG_DIR = Path(str(resources.files("zoo") / "configs"))
CHECKPOINT_DIR_ENV = "ZOO_CHECKPOINT_DIR"


_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir() -> Path:
    """The weights the zoo ships: ``zoo/checkpoints/`` inside the installed package (a wheel or ``pip install .``
    carries every shipped entry there), else ``checkpoints/`` at the top of the repository (a clone, or an editable
    install)."""
    installed = _PACKAGE_DIR / "checkpoints"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "checkpoints"


def checkpoint_dir() -> Path:
    """Where ``zoo export`` writes: ``$ZOO_CHECKPOINT_DIR`` when set (your own exports, or a copy of the weights
    elsewhere), else :func:`shipped_dir`."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(env) if env else shipped_dir()


def checkpoint_dirs() -> list[Path]:
    """Where an entry's weights are looked for, in order: ``$ZOO_CHECKPOINT_DIR`` when set, then
    :func:`shipped_dir`. The first folder holding the entry's manifest wins, so weights of your own shadow the
    shipped ones of the same entry and every other entry keeps its shipped weights."""
    return list(dict.fromkeys([checkpoint_dir(), shipped_dir()]))


class UnknownEntryError(ZooError, KeyError):
    """No zoo entry has this name (the message suggests the closest names)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    """One zoo entry."""

    name: str
    config_path: Path

    @cached_property
    def config(self) -> dict[str, Any]:
        """The parsed YAML, read once per entry."""
        with open(self.config_path) as f:
            return yaml.load(f, Loader=_YAML_LOADER) or {}

    @property
    def model_class(self) -> str:
        return _class_path(self.config.get("model"))

    @property
    def datamodule_class(self) -> str:
        return _class_path(self.config.get("data"))

    @property
    def description(self) -> str:
        """The config's first comment line."""
        with open(self.config_path) as f:
            first = f.readline().strip()
        return first.lstrip("# ").strip() if first.startswith("#") else ""

    @property
    def manifest_path(self) -> Path:
        """``<name>.json`` in the first of :func:`checkpoint_dirs` that holds it (in the first folder when none
        does)."""
        candidates = [folder / f"{self.name}.json" for folder in checkpoint_dirs()]
        return next((path for path in candidates if path.exists()), candidates[0])

    @property
    def weights_path(self) -> Path:
        """``<name>.safetensors`` beside :attr:`manifest_path`."""
        return self.manifest_path.with_name(f"{self.name}.safetensors")

    def manifest(self) -> Optional[Manifest]:
        """The shipped manifest (read and validated by :func:`zoo.manifest.read_manifest`), or ``None`` if this
        entry ships no weights."""
        if not self.manifest_path.exists():
            return None
        return read_manifest(self.manifest_path)

    @property
    def shipped(self) -> bool:
        return self.manifest_path.exists()


def _class_path(section: Any) -> str:
    if isinstance(section, dict):
        return str(section.get("class_path", ""))
    return str(section or "")


def entries() -> dict[str, Entry]:
    """All entries by name, sorted."""
    return {p.stem: Entry(p.stem, p) for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def list_models(pattern: str = "*", shipped: Optional[bool] = None) -> list[str]:
    """Entry names matching the shell-style ``pattern`` (``"*mnist*"``); ``shipped=True`` keeps the entries that
    ship weights, ``False`` those that do not."""
    return [name for name, entry in entries().items()
            if fnmatch.fnmatchcase(name, pattern) and (shipped is None or entry.shipped == shipped)]


def get(name: str) -> Entry:
    """The entry called ``name``; the error suggests the closest names."""
    found = entries()
    if name not in found:
        close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.6)
        if close:
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? `zoo models` lists all {len(found)}."
        else:
            hint = f"known entries: {', '.join(found) or '(none)'}."
        raise UnknownEntryError(f"no zoo entry named {name!r}; {hint}")
    return found[name]


def resolve_config_args(argv: list[str]) -> list[str]:
    """Replace ``-c <entry>`` / ``--config <entry>`` by the entry's YAML path when no such file exists."""
    out = list(argv)
    found = entries()  # one listing of the config folder for all the arguments
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            name = arg.split("=", 1)[1]
            if not Path(name).exists() and name in found:
                out[i] = "--config=" + str(found[name].config_path)
        elif arg in ("-c", "--config") and i + 1 < len(out):
            name = out[i + 1]
            if not Path(name).exists():
                if name in found:
                    out[i + 1] = str(found[name].config_path)
                elif not name.endswith((".yaml", ".yml", ".json")):
                    get(name)  # raises, suggesting the nearest names
    return out
