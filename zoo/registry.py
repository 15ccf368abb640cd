"""The zoo's entries: a name joining a model class, a datamodule class and default settings.

Every entry is one LightningCLI config file ``zoo/configs/<name>.yaml`` (so ``zoo fit -c <name>`` and
``zoo fit -c zoo/configs/<name>.yaml`` are the same run). An entry whose weights are shipped also has
``checkpoints/<name>.json`` (its manifest) and ``checkpoints/<name>.safetensors``.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from zoo.errors import ZooError

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5x faster
CONFIG_DIR = Path(str(resources.files("zoo") / "configs"))
CHECKPOINT_DIR_ENV = "ZOO_CHECKPOINT_DIR"


def checkpoint_dir() -> Path:
    """Where shipped weights live: ``$ZOO_CHECKPOINT_DIR``, else the repository's ``checkpoints/``."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


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
