"""The zoo's entries: a name joining a model class, a datamodule class and default settings.

Every entry is one LightningCLI config file ``zoo/configs/<name>.yaml`` (so ``zoo fit -c <name>`` and
``zoo fit -c zoo/configs/<name>.yaml`` are the same run). An entry whose weights are shipped also has
``checkpoints/<name>.json`` (its manifest) and ``checkpoints/<name>.safetensors``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

CONFIG_DIR = Path(str(resources.files("zoo") / "configs"))
CHECKPOINT_DIR_ENV = "ZOO_CHECKPOINT_DIR"


def checkpoint_dir() -> Path:
    """Where shipped weights live: ``$ZOO_CHECKPOINT_DIR``, else the repository's ``checkpoints/``."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


class UnknownEntryError(KeyError):
    """No zoo entry has this name."""

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
            return yaml.safe_load(f) or {}

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
        return checkpoint_dir() / f"{self.name}.json"

    @property
    def weights_path(self) -> Path:
        return checkpoint_dir() / f"{self.name}.safetensors"

    def manifest(self) -> Optional[dict[str, Any]]:
        """The shipped manifest, or ``None`` if this entry ships no weights."""
        if not self.manifest_path.exists():
            return None
        with open(self.manifest_path) as f:
            return json.load(f)


def _class_path(section: Any) -> str:
    if isinstance(section, dict):
        return str(section.get("class_path", ""))
    return str(section or "")


def entries() -> dict[str, Entry]:
    """All entries by name, sorted."""
    return {p.stem: Entry(p.stem, p) for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def get(name: str) -> Entry:
    """The entry called ``name``; the error lists the known names."""
    found = entries()
    if name not in found:
        known = ", ".join(found) or "(none)"
        raise UnknownEntryError(f"no zoo entry named {name!r}; known entries: {known}. `zoo models` lists them.")
    return found[name]
