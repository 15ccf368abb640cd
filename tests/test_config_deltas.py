"""Entry YAMLs stay deltas: each sets only what its recipe changes from the CLI's shared defaults
(``zoo.lightning_cli``: SEED_EVERYTHING, TRAINER_DEFAULTS, TEST_AFTER_FIT) and from its classes' ``__init__``
defaults, and every entry tests its best checkpoint after ``fit`` unless its YAML says why not.

Cheap: one ``--print_config`` per entry, of a config naming the entry's model and datamodule classes alone (what
the entry would resolve to without its YAML's values); ``tests/test_registry.py`` round-trips the full configs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from zoo import registry
from zoo.lightning_cli import SEED_EVERYTHING, TEST_AFTER_FIT, TRAINER_DEFAULTS, cli_main

ENTRIES = list(registry.entries())


def printed_config(path: Path) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "-c", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def set_values(config: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(key path, value)`` of every setting a YAML makes: top-level values, ``model``/``data`` init arguments,
    ``trainer`` and ``checkpoint`` options."""
    for key, value in config.items():
        if key in ("model", "data") and isinstance(value, dict):
            for name, argument in (value.get("init_args") or {}).items():
                yield (key, "init_args", name), argument
        elif key in ("trainer", "checkpoint") and isinstance(value, dict):
            for name, option in value.items():
                yield (key, name), option
        elif key not in ("model", "data"):
            yield (key,), value


def lookup(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        config = config[key]
    return config


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_yaml_sets_nothing_the_defaults_already_give(entry, tmp_path):
    config = registry.get(entry).config
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({section: {"class_path": config[section]["class_path"]}
                                    for section in ("model", "data")}))
    defaults = printed_config(bare)
    assert defaults["seed_everything"] == SEED_EVERYTHING and defaults["test_after_fit"] is TEST_AFTER_FIT
    assert all(defaults["trainer"][name] == value for name, value in TRAINER_DEFAULTS.items())
    redundant = [".".join(path) + f": {value!r}" for path, value in set_values(config)
                 if value == lookup(defaults, path)]
    assert not redundant, (
        f"zoo/configs/{entry}.yaml sets what the defaults already give (the CLI's shared defaults in "
        f"zoo/lightning_cli.py, or the class's __init__): drop {redundant}")


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_tests_after_fit_unless_its_yaml_says_why(entry):
    assert TEST_AFTER_FIT is True
    text = registry.get(entry).config_path.read_text()
    lines = [line for line in text.splitlines() if line.startswith("test_after_fit:")]
    if lines:
        value, _, reason = lines[0].partition("#")
        assert yaml.safe_load(value)["test_after_fit"] is False and reason.strip(), (
            f"zoo/configs/{entry}.yaml: turn test_after_fit off with a comment saying why, or leave the line out")
