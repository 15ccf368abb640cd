"""What an exact resume needs beyond Lightning's own checkpoint: random states, atomic files, the run directory.

- :func:`collect_rng_states` / :func:`restore_rng_states`: the global torch, CUDA, numpy and Python generators
  (Lightning's ``_collect_rng_states``), stored in a form ``torch.load(weights_only=True)`` accepts.
- :func:`atomic_replace`: a finished temporary file takes the checkpoint's name by ``os.replace`` in the same
  directory, so a kill during a write leaves the previous checkpoint whole.
- :func:`resume_in_run_directory` (with :func:`newest_last_checkpoint`, :func:`logger_version_of`): ``--ckpt_path last`` picks the newest
  ``last.ckpt`` of the run's root, and a resumed run keeps writing into that checkpoint's logger version.
- :func:`epoch_accumulators`, :func:`restore_metric_states`, :func:`merge_logged_sums`: what the epoch-level
  metrics gathered before a mid-epoch checkpoint, so the resumed epoch logs the same epoch means.

The data pipeline's own randomness needs no state: shuffling is a function of (seed, epoch) and batch-wise
augmentation of (seed, epoch, step) (``datamodules._batched``); the position inside an epoch is the
``StatefulDataLoader`` state that Lightning checkpoints.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import Metric

RNG_KEY = "zoo_rng_states"


def collect_rng_states() -> dict[str, Any]:
    """The global random states (torch, CUDA when present, numpy, Python), safe for ``weights_only`` loading."""
    states = _collect_rng_states(include_cuda=torch.cuda.is_available())
    kind, keys, position, has_gauss, cached = states["numpy"]
    states["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global random states saved by :func:`collect_rng_states`."""
    states = dict(states)
    numpy_state = states.pop("numpy")
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy_state["kind"], keys, numpy_state["position"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    if not torch.cuda.is_available():
        states.pop("torch.cuda", None)
    _set_rng_states(states)


def atomic_replace(partial: str, target: str) -> None:
    """Flush ``partial`` to disk and give it the name ``target`` in one step (``os.replace``, same directory)."""
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)


def newest_last_checkpoint(folders: list[Path]) -> Optional[Path]:
    """The most recently written ``last*.ckpt`` in ``folders`` and their ``*/checkpoints`` subfolders."""
    found: list[Path] = []
    for folder in folders:
        found += list(folder.glob("last*.ckpt")) + list(folder.glob("*/checkpoints/last*.ckpt"))
        found += list(folder.glob("checkpoints/last*.ckpt"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def logger_version_of(checkpoint: Path, save_dir: Path, name: str) -> Optional[str]:
    """The logger version whose directory holds ``checkpoint`` (``<save_dir>/<name>/<version>/checkpoints/``).

    ``None`` when the checkpoint belongs to another root: the resumed run then starts a new version there.
    """
    run_dir = checkpoint.resolve().parent.parent
    if checkpoint.resolve().parent.name != "checkpoints" or run_dir.parent != (save_dir / name).resolve():
        return None
    return run_dir.name


def count_csv_rows(path: Path) -> int:
    """Data rows (lines after the header) of a CSV file; 0 when it does not exist."""
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return max(sum(1 for _ in csv.reader(f)) - 1, 0)


def epoch_accumulators(trainer: Any, pl_module: torch.nn.Module) -> dict[str, Any]:
    """What the epoch-level metrics have gathered so far in the current epoch, for a mid-epoch checkpoint.

    ``metrics``: the states of the model's torchmetrics (not in its ``state_dict``: torchmetrics states are not
    persistent); ``results``: the sums and counts of values logged with ``on_epoch=True`` (Lightning's
    ``_ResultCollection``, not checkpointed by Lightning 2.6). Without them, a run resumed mid-epoch would log
    epoch means of the batches after the resume only.
    """
    metrics = {
        name: {"states": {state: getattr(module, state) for state in module._defaults},
               "update_count": module._update_count}
        for name, module in pl_module.named_modules() if isinstance(module, Metric)
    }
    results = {
        key: {"value": result.value, "cumulated_batch_size": getattr(result, "cumulated_batch_size", None)}
        for key, result in trainer.fit_loop.epoch_loop._results.items() if result.is_tensor and result.meta.on_epoch
    }
    return {"metrics": metrics, "results": results}


def restore_metric_states(pl_module: torch.nn.Module, saved: dict[str, Any]) -> None:
    """Put back the torchmetrics states of :func:`epoch_accumulators` (before the first resumed batch)."""
    modules = dict(pl_module.named_modules())
    for name, entry in saved.items():
        module = modules.get(name)
        if not isinstance(module, Metric):
            continue
        for state, value in entry["states"].items():
            device = module.device
            setattr(module, state, [v.to(device) for v in value] if isinstance(value, list) else value.to(device))
        module._update_count = entry["update_count"]
        module._computed = None


def merge_logged_sums(results: Any, saved: dict[str, Any]) -> None:
    """Add the sums logged before a mid-epoch checkpoint to those of the first resumed batch.

    Called once, after that batch logged: ``saved + first`` is the same float addition the uninterrupted run
    made (``sum_before + first``), so the epoch means come out bit for bit the same.
    """
    for key, entry in saved.items():
        result = results.get(key)
        if result is None or not result.is_tensor:
            continue
        before = entry["value"].to(result.value.device)
        if result.meta.is_max_reduction or result.meta.is_min_reduction:
            result.value = result.meta.reduce_fx(before, result.value)
        else:
            result.value = before + result.value
        if entry["cumulated_batch_size"] is not None:
            result.cumulated_batch_size = entry["cumulated_batch_size"].to(result.value.device) + result.cumulated_batch_size
        result._computed = None


DEFAULT_LOGGERS = {"lightning.pytorch.loggers.TensorBoardLogger", "lightning.pytorch.loggers.CSVLogger",
                   "lightning.pytorch.loggers.tensorboard.TensorBoardLogger", "lightning.pytorch.loggers.csv_logs.CSVLogger"}


def resume_in_run_directory(config: Any) -> None:
    """Resolve ``ckpt_path: last`` and point the logger at the checkpoint's version (``config``: the fit section).

    ``last`` becomes the newest ``last.ckpt`` under ``checkpoint.dirpath`` or the trainer's root (``None`` when
    there is none yet). When that checkpoint lies in ``<root>/<name>/<version>/checkpoints`` of the configured
    TensorBoard or CSV logger (the default logger included), the logger's ``version`` is set to it, so the resumed
    run continues that run directory: one log history, its ``config.yaml`` and ``results.json``.
    """
    from jsonargparse import Namespace

    root = Path(config.trainer.get("default_root_dir") or os.getcwd())
    if config.get("ckpt_path") == "last":
        dirpath = config.get("checkpoint", {}).get("dirpath")
        found = newest_last_checkpoint([Path(dirpath)] if dirpath else [root / "lightning_logs", root])
        config.ckpt_path = str(found) if found else None
        rank_zero_info(f"--ckpt_path last: {'resuming ' + str(found) if found else 'no last.ckpt yet, starting'}")
    if not config.get("ckpt_path"):
        return
    logger = config.trainer.get("logger")
    if logger is None or logger is True:
        from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE, _TENSORBOARDX_AVAILABLE

        name = "TensorBoardLogger" if _TENSORBOARD_AVAILABLE or _TENSORBOARDX_AVAILABLE else "CSVLogger"
        logger = Namespace(class_path=f"lightning.pytorch.loggers.{name}", init_args=Namespace(save_dir=str(root)))
    if not isinstance(logger, Namespace) or logger.get("class_path") not in DEFAULT_LOGGERS:
        return
    args = logger.get("init_args") or Namespace()
    save_dir = Path(args.get("save_dir") or root)
    version = logger_version_of(Path(config.ckpt_path), save_dir, args.get("name") or "lightning_logs")
    if version is not None and args.get("version") is None:
        args.version = version
        logger.init_args = args
        config.trainer.logger = logger
