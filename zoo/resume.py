"""What an exact resume needs beyond Lightning's own checkpoint: random states, atomic files, the run directory.

- :func:`collect_rng_states` / :func:`restore_rng_states`: the global torch, CUDA, numpy and Python generators
  (as Lightning collects them), stored in a form ``torch.load(weights_only=True)`` accepts.
- :func:`atomic_replace`: a finished temporary file takes the checkpoint's name by ``os.replace`` in the same
  directory, so a kill during a write leaves the previous checkpoint whole.
- :func:`resume_in_run_directory` (with :func:`newest_last_checkpoint`, :func:`logger_version_of`): ``--ckpt_path last`` picks the newest
  ``last.ckpt`` of the run's root, and a resumed run keeps writing into that checkpoint's logger version;
  :func:`refuse_other_run` refuses a checkpoint of another model, datamodule or hyperparameters.
- :func:`claim_run_directory`: a fresh run takes its logger version directory with ``os.mkdir`` before anything is
  written, so runs started together in one root never share one.
- :func:`epoch_accumulators`, :func:`restore_metric_states` (and
  :func:`zoo.lightning_compat.add_epoch_logged_sums`): what the epoch-level metrics gathered before a mid-epoch
  checkpoint, so the resumed epoch logs the same epoch means.

The data pipeline's own randomness needs no state: shuffling is a function of (seed, epoch) and batch-wise
augmentation of (seed, epoch, step) (``datamodules._batched``); the position inside an epoch is the
``StatefulDataLoader`` state that Lightning checkpoints.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from jsonargparse import Namespace
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torchmetrics import Metric

from zoo import lightning_compat
from zoo.errors import ZooError

RNG_KEY = "zoo_rng_states"


def collect_rng_states() -> dict[str, Any]:
    """The global random states (torch, CUDA when present, numpy, Python), safe for ``weights_only`` loading."""
    states = lightning_compat.global_rng_states(include_cuda=torch.cuda.is_available())
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
    lightning_compat.set_global_rng_states(states)


def atomic_replace(partial: str, target: str) -> None:
    """Flush ``partial`` to disk and give it the name ``target`` in one step (``os.replace``, same directory)."""
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)


def newest_last_checkpoint(folders: list[Path], prefix: str = "last") -> Optional[Path]:
    """The most recently written ``<prefix>*.ckpt`` (``last`` or ``best``) in ``folders`` and their
    ``checkpoints`` and ``*/checkpoints`` subfolders."""
    found: list[Path] = []
    for folder in folders:
        for pattern in (f"{prefix}*.ckpt", f"*/checkpoints/{prefix}*.ckpt", f"checkpoints/{prefix}*.ckpt"):
            found += folder.glob(pattern)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def checkpoint_folders(config: Any) -> list[Path]:
    """Where a subcommand's section ``config`` looks for ``--ckpt_path last|best``: ``checkpoint.dirpath`` when set,
    else ``<root>/lightning_logs`` and ``<root>`` (``--trainer.default_root_dir``, else the working directory)."""
    root = Path(config.trainer.get("default_root_dir") or os.getcwd())
    dirpath = config.get("checkpoint", {}).get("dirpath")
    return [Path(dirpath)] if dirpath else [root / "lightning_logs", root]


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
    persistent); ``results``: the sums and counts of values logged with ``on_epoch=True``
    (:func:`zoo.lightning_compat.epoch_logged_sums`, not checkpointed by Lightning). Without them, a run resumed
    mid-epoch would log epoch means of the batches after the resume only.
    """
    metrics = {
        name: {"states": {state: getattr(module, state) for state in module._defaults},
               "update_count": module._update_count}
        for name, module in pl_module.named_modules() if isinstance(module, Metric)
    }
    return {"metrics": metrics, "results": lightning_compat.epoch_logged_sums(trainer)}


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


DEFAULT_LOGGERS = {"lightning.pytorch.loggers.TensorBoardLogger", "lightning.pytorch.loggers.CSVLogger",
                   "lightning.pytorch.loggers.tensorboard.TensorBoardLogger", "lightning.pytorch.loggers.csv_logs.CSVLogger"}


def resolve_last_checkpoint(config: Any) -> bool:
    """Replace ``ckpt_path: last`` by the newest ``last.ckpt`` under ``checkpoint.dirpath`` or the trainer's root
    (``None`` when there is none yet); ``config`` is the fit section. Returns whether ``last`` was asked for."""
    if config.get("ckpt_path") != "last":
        return False
    found = newest_last_checkpoint(checkpoint_folders(config))
    config.ckpt_path = str(found) if found else None
    rank_zero_info(f"--ckpt_path last: {'resuming ' + str(found) if found else 'no last.ckpt yet, starting'}")
    return True


def resolve_named_checkpoint(config: Any, subcommand: str) -> None:
    """For ``zoo validate|test|predict``: replace ``--ckpt_path last`` or ``best`` by the newest ``last*.ckpt`` or
    ``best*.ckpt`` of the runs under the root (:func:`checkpoint_folders`), and refuse when there is none.

    Lightning resolves these names from the checkpoint callback of a ``fit`` in the same process; in a command of its
    own it finds none and would run the untrained model (``last``) or stop with a traceback (``best``).
    """
    name = config.get("ckpt_path")
    if name not in ("last", "best"):
        return
    folders = checkpoint_folders(config)
    found = newest_last_checkpoint(folders, prefix=name)
    if found is None:
        raise ZooError(f"--ckpt_path {name}: no {name}*.ckpt under {' or '.join(str(f) for f in folders)}. `zoo fit` "
                       f"writes them to <root>/lightning_logs/version_N/checkpoints: pass the same "
                       f"--trainer.default_root_dir as the run, or the checkpoint's path.")
    config.ckpt_path = str(found)
    rank_zero_info(f"--ckpt_path {name}: zoo {subcommand} of {found}")


def run_directory_logger(config: Any) -> Optional[tuple[Any, Any, Path]]:
    """``(logger, init_args, save_dir)`` of the fit section's logger when it writes ``<save_dir>/<name>/<version>``
    (a TensorBoard or CSV logger, the default one included, spelled out); ``None`` for any other logger or none."""
    root = Path(config.trainer.get("default_root_dir") or os.getcwd())
    logger = config.trainer.get("logger")
    if logger is None or logger is True:
        name = lightning_compat.default_logger_name()
        logger = Namespace(class_path=f"lightning.pytorch.loggers.{name}", init_args=Namespace(save_dir=str(root)))
    if not isinstance(logger, Namespace) or logger.get("class_path") not in DEFAULT_LOGGERS:
        return None
    args = logger.get("init_args") or Namespace()
    return logger, args, Path(args.get("save_dir") or root)


def _set_logger_version(config: Any, logger: Any, args: Any, version: Any) -> None:
    args.version = version
    logger.init_args = args
    config.trainer.logger = logger


def resume_in_run_directory(config: Any) -> None:
    """Resolve ``ckpt_path: last`` and point the logger at the checkpoint's version (``config``: the fit section).

    ``last`` becomes the newest ``last.ckpt`` (:func:`resolve_last_checkpoint`). When the checkpoint lies in
    ``<root>/<name>/<version>/checkpoints`` of the configured TensorBoard or CSV logger (the default logger
    included), the logger's ``version`` is set to it, so the resumed run continues that run directory: one log
    history, its ``config.yaml`` and ``results.json``.
    """
    resolve_last_checkpoint(config)
    found = run_directory_logger(config) if config.get("ckpt_path") else None
    if found is None:
        return
    logger, args, save_dir = found
    version = logger_version_of(Path(config.ckpt_path), save_dir, args.get("name") or "lightning_logs")
    if version is not None and args.get("version") is None:
        _set_logger_version(config, logger, args, version)


def claim_run_directory(config: Any) -> Optional[Path]:
    """Create a fresh run's logger version directory now and set the logger's ``version`` to it.

    A logger picks the next free ``version_N`` when it first writes, so two ``zoo fit`` started together in one
    root would both pick the same one and write into one directory. Here a run takes ``version_N`` with
    ``os.mkdir``, which succeeds for one process only; the others try ``N + 1``. Returns the directory, or ``None``
    when there is nothing to claim: a version already set (a resumed run continues its own), a logger other than
    TensorBoard/CSV or none, ``fast_dev_run`` (which logs nothing), a SLURM job, and processes other than rank 0.
    """
    found = run_directory_logger(config)
    if found is None or config.trainer.get("fast_dev_run") or rank_zero_only.rank != 0:
        return None
    if SLURMEnvironment.detect():  # Lightning names a SLURM job's run version_<SLURM_JOB_ID>: unique per job
        return None
    logger, args, save_dir = found
    if args.get("version") is not None or "://" in str(save_dir):
        return None
    parent = save_dir / (args.get("name") or "lightning_logs")
    parent.mkdir(parents=True, exist_ok=True)
    names = [entry.name for entry in parent.iterdir()]
    version = max((int(n[8:]) for n in names if n.startswith("version_") and n[8:].isdigit()), default=-1) + 1
    while True:
        try:
            (parent / f"version_{version}").mkdir()
            break
        except FileExistsError:  # another run took it first
            version += 1
    _set_logger_version(config, logger, args, version)
    return parent / f"version_{version}"


def release_run_directory(path: Optional[Path]) -> None:
    """Remove a directory of :func:`claim_run_directory`, and its ``<name>`` folder, while they are empty (the
    command failed before writing)."""
    for folder in (path, path.parent) if path is not None else ():
        try:
            folder.rmdir()
        except OSError:  # the run wrote into it, or other runs are there
            return


class ResumeMismatchError(ZooError):
    """A checkpoint to resume belongs to another model, datamodule or hyperparameters than the command's; the
    message names the checkpoint, the difference and the fix."""


#: init arguments a resumed run may change: they change how the data is fetched, not what is trained.
MAY_CHANGE_ON_RESUME = {"model": frozenset(), "data": frozenset({"num_workers", "download"})}


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (hyperparameters saved from Python keep tuples, YAML dumps have lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _same_class(saved: str, wanted: str) -> bool:
    """Whether two class paths name one class (``zoo.models.LeNet`` re-exports ``zoo.models.classic_cnns.LeNet``),
    looked up among the modules imported already: nothing a checkpoint names is imported."""
    if saved == wanted:
        return True
    classes = [getattr(sys.modules.get(module), name, None) for module, _, name in
               (saved.rpartition("."), wanted.rpartition("."))]
    return classes[0] is not None and classes[0] is classes[1]


def _run_classes(checkpoint: dict[str, Any], dump: dict[str, Any]
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, Optional[str]], dict[str, Optional[str]]]:
    """The checkpoint's ``model``/``data`` hyperparameters (without their class path), the class paths it saved and
    the class paths of the command's section ``dump``."""
    saved = {key: dict(checkpoint.get(name) or {}) for key, name in
             (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters"))}
    saved_classes = {key: values.pop("_class_path", None) for key, values in saved.items()}
    wanted_classes = {key: (dump.get(key) or {}).get("class_path") for key in saved}
    return saved, saved_classes, wanted_classes


def _differ(saved: Optional[str], wanted: Optional[str]) -> bool:
    return bool(saved and wanted and not _same_class(saved, wanted))


def refuse_run_of_another_entry(path: str, checkpoint: dict[str, Any], dump: dict[str, Any], subcommand: str) -> None:
    """For ``zoo validate|test|predict -c <entry> --ckpt_path <path>``: refuse a checkpoint whose model *and*
    datamodule classes both differ from the config's (the run of another entry: a tagger's checkpoint tested on
    MNIST). One of the two may differ: a run tested on other data, or a subclass of the entry's model."""
    _, saved_classes, wanted_classes = _run_classes(checkpoint, dump)
    if not all(_differ(saved_classes[k], wanted_classes[k]) for k in saved_classes):
        return
    raise ResumeMismatchError(
        f"--ckpt_path {path}: a run of {saved_classes['model']} on {saved_classes['data']}, but this command's "
        f"config has {wanted_classes['model']} on {wanted_classes['data']}: the checkpoint belongs to another zoo "
        f"entry. Pass the config of the run (`zoo {subcommand} -c <run folder>/config.yaml --ckpt_path {path}`) "
        f"or a checkpoint of this entry."
    )


def refuse_other_run(path: str, checkpoint: dict[str, Any], dump: dict[str, Any], found_by_last: bool) -> None:
    """Refuse to resume the checkpoint ``path`` (read by :func:`zoo.checkpoint_trust.read_checkpoint`) into a run it
    does not belong to.

    ``dump`` is the fit section as LightningCLI saves it in checkpoints (``model``/``data``: ``class_path``,
    ``init_args``). The checkpoint's ``hyper_parameters`` and ``datamodule_hyper_parameters`` must name the same
    classes and hold the same values, but for :data:`MAY_CHANGE_ON_RESUME`: a resumed run keeps the checkpoint's
    hyperparameters and optimizer state, so a changed value on the command line would be ignored, or mix two runs.
    Trainer options (``max_epochs``, ...) are not in the checkpoint and may change. ``found_by_last``: the path
    came from ``--ckpt_path last`` (the message then says so, and how to start elsewhere).
    """
    how = f"--ckpt_path last found {path}" if found_by_last else f"--ckpt_path {path}"
    saved, saved_classes, wanted_classes = _run_classes(checkpoint, dump)
    if any(_differ(saved_classes[k], wanted_classes[k]) for k in saved):
        fix = ("Start this run in a folder of its own (another --trainer.default_root_dir), or pass --ckpt_path with "
               "a checkpoint of this run" if found_by_last else "Pass a checkpoint of this model and data, or leave "
               "out --ckpt_path to start afresh")
        raise ResumeMismatchError(
            f"{how}: a run of {saved_classes['model']} on {saved_classes['data']}, but this command trains "
            f"{wanted_classes['model']} on {wanted_classes['data']}; it belongs to another zoo entry or model, and "
            f"resuming it would mix the two runs. {fix}."
        )
    changed = []
    for key, values in saved.items():
        section = dump.get(key) or {}
        wanted = {**(section.get("init_args") or {}), **(section.get("dict_kwargs") or {})}
        for name in sorted((values.keys() & wanted.keys()) - {"_instantiator"} - MAY_CHANGE_ON_RESUME[key]):
            if _plain(values[name]) != _plain(wanted[name]):
                changed.append(f"--{key}.init_args.{name} is {wanted[name]!r} here, {values[name]!r} in the checkpoint")
    if changed:
        raise ResumeMismatchError(
            f"{how}, but this command changes the run's hyperparameters: {'; '.join(changed)}. A resumed run keeps "
            f"its checkpoint's hyperparameters (and optimizer state), so the change would be lost or mix two runs. "
            f"Resume with the checkpoint's values (drop the changed options), or start a fresh run with the new ones "
            f"in a folder of its own (another --trainer.default_root_dir)."
        )
