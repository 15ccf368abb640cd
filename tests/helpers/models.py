"""Entries' models and datamodules as their configs describe them (imports torch, unlike :mod:`tests.helpers`)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
from typing import Any

import lightning as L
import pytest
import yaml

from zoo import registry
from zoo.lightning_cli import cli_main

#: datamodule arguments that a smoke test shrinks, where the datamodule has them: batches of 2, a few generated
#: sequences per split, 10 held-out CIFAR images (of the 100 that :func:`tests.helpers.write_data_dir` writes)
SMALL_DATA = {"batch_size": 2, "first_epoch_batch_size": None, "num_train": 4, "num_val": 2, "num_test": 2,
              "val_size": 10, "eval_size": 8}


def import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def printed_config(*fit_args: str) -> dict:
    """The config ``zoo fit <fit_args> --print_config`` prints (in this process), as a dict."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *fit_args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def build(section: dict[str, Any], **overrides: Any) -> Any:
    """The object a config section (``class_path`` and ``init_args``) describes, ``overrides`` on its arguments."""
    return import_class(section["class_path"])(**{**section.get("init_args", {}), **overrides})


def untrained_model_of(entry: str, **overrides: Any) -> L.LightningModule:
    """The model an entry's config describes, built untrained."""
    return build(registry.get(entry).config["model"], **overrides)


def without_data_files(section: dict[str, Any]) -> dict[str, Any]:
    """``None`` for each argument of ``section`` that names a file under ``$ZOO_DATA_DIR`` (a backbone's weights),
    ``[None, ...]`` for a list of them: the network is then built with random weights, the same shapes."""
    out: dict[str, Any] = {}
    for name, value in section.get("init_args", {}).items():
        if isinstance(value, str) and value.startswith("$ZOO_DATA_DIR"):
            out[name] = None
        elif isinstance(value, list) and any(isinstance(v, str) and v.startswith("$ZOO_DATA_DIR") for v in value):
            out[name] = [None] * len(value)
    return out


def constructor_parameters(class_path: str) -> dict[str, inspect.Parameter]:
    """The named ``__init__`` arguments of the class at ``class_path`` and of the base classes its ``**kwargs``
    reach, each from the nearest class that names it."""
    parameters: dict[str, inspect.Parameter] = {}
    for cls in import_class(class_path).__mro__:
        if "__init__" in vars(cls):
            for name, parameter in inspect.signature(cls.__init__).parameters.items():
                if parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                    parameters.setdefault(name, parameter)
    return parameters


def constructor_default(class_path: str, name: str) -> Any:
    """The default of argument ``name`` of the class at ``class_path`` (see :func:`constructor_parameters`);
    ``inspect.Parameter.empty`` when it has none."""
    parameter = constructor_parameters(class_path).get(name)
    return inspect.Parameter.empty if parameter is None else parameter.default


def small_data(section: dict[str, Any]) -> dict[str, Any]:
    """The :data:`SMALL_DATA` arguments that the datamodule of ``section`` takes."""
    parameters = constructor_parameters(section["class_path"])  # also what ``**kwargs`` passes on
    return {name: value for name, value in SMALL_DATA.items() if name in parameters}
