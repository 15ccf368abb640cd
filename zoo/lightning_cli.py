"""The Lightning half of the ``zoo`` command: ``zoo fit|validate|test|predict`` as a LightningCLI.

Imported only when one of these subcommands runs (``zoo models``, ``zoo evaluate --help`` and the like start
without torch or Lightning; see :mod:`zoo.cli`). ``-c`` also takes a zoo entry name. Every ``zoo fit`` writes
``results.json`` (best score and checkpoint, test metrics, ...) beside its saved config. The callbacks it adds
live in :mod:`zoo.callbacks` (best/last checkpoints, exact resume, SIGTERM; divergence stop, progress bar); the
Lightning internals they need in :mod:`zoo.lightning_compat`.

**Shared defaults.** What every entry shares is given once, here, as the CLI's defaults: :data:`SEED_EVERYTHING`,
:data:`TRAINER_DEFAULTS` and :data:`TEST_AFTER_FIT`. An entry's YAML (``zoo/configs/<entry>.yaml``) holds only what
its recipe changes from these and from its classes' ``__init__`` defaults (``tests/test_config_deltas.py`` keeps it
so); ``--print_config`` and the ``config.yaml`` of a run show everything resolved. They are defaults in code
(LightningCLI's ``seed_everything_default`` and ``trainer_defaults``, the argument's default) rather than a
``default_config_files`` YAML because they are three values that one setting each applies to all four subcommands
(a default config file is given per subcommand), every ``zoo/configs/*.yaml`` is an entry (a defaults file would
need a folder and package data of its own), and ``zoo fit --help`` shows them as the options' defaults. They hold
for runs without an entry too (``zoo fit --model ... --data ...``).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Optional

import lightning as L
import torch
import yaml
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import datamodules  # noqa: F401  (registers the datamodules for --data <Name>)
import zoo.models  # noqa: F401  (registers the models for --model <Name>)
from zoo import errors, hub, lightning_compat, registry, resume
from zoo.cli import FILE_PREDICTION_HELP
from zoo.checkpoint_trust import RefuseUntrustedCkptPath, check_subcommand_checkpoint, read_checkpoint
from zoo.callbacks import StopOnNonFiniteLoss, ZooCheckpoint, ZooProgressBar

__all__ = ["ZooCLI", "cli_main"]

#: ``seed_everything`` of every run unless its config or command line sets another (``true``: a random seed).
SEED_EVERYTHING = 0
#: Trainer options every run starts from: one device (``--trainer.devices 2`` and the like for DDP).
TRAINER_DEFAULTS: dict[str, Any] = {"devices": 1}
#: ``test_after_fit`` of every run: the best checkpoint is tested at the end of ``fit``.
TEST_AFTER_FIT = True


class ZooArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors are the message and a pointer to ``--help`` (not 60 lines of usage)."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:
        if not self.exit_on_error or errors.debug_enabled():
            super().error(message, ex)
        prog = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "")
        message = condensed_class_error(message)
        sys.stderr.write(f"{prog}: error: {message.rstrip()}\n(`{prog} --help` lists the accepted options)\n")
        sys.exit(2)


#: jsonargparse's report of a ``model``/``data`` value that its class refused, around the class's own error.
_CLASS_ERROR = re.compile(r'Parser key "(?P<key>[^"]+)":\s*Does not validate against any of the Union subtypes.*?'
                          r"- Problem with given class_path '(?P<cls>[^']+)':\s*(?P<inner>.*?)\n\s*- Expected a "
                          r"<class 'NoneType'>", re.DOTALL)


def condensed_class_error(message: str) -> str:
    """jsonargparse's ten lines for a bad ``--model``/``--data`` argument (a misspelled key, a wrong type, in a
    config file or on the command line), as the class's own error on one line, with the closest accepted names for
    an unknown one; any other message unchanged."""
    found = _CLASS_ERROR.search(message)
    if found is None:
        return message
    inner = " ".join(line.strip() for line in found["inner"].splitlines())
    inner = re.sub(r'^Parser key "([^"]+)": ', rf"--{found['key']}.init_args.\1: ", inner)
    unknown = re.search(r"Option '([^']+)' is not accepted", inner)
    if unknown:
        inner = f"--{found['key']}.init_args.{unknown[1]}: {found['cls']} takes no argument {unknown[1]!r}"
        module, _, name = found["cls"].rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        close = difflib.get_close_matches(unknown[1], init_arguments(cls), n=3, cutoff=0.6) if cls else []
        inner += f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return inner if inner.startswith("--") else f"--{found['key']} ({found['cls']}): {inner}"


def init_arguments(cls: type) -> list[str]:
    """The named ``__init__`` arguments of ``cls`` and its bases (a zoo class forwards ``**kwargs`` to its base)."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names += [name for name, parameter in inspect.signature(init).parameters.items() if name != "self"
                      and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]
    return list(dict.fromkeys(names))


def cpu_has_bfloat16_units() -> bool:
    """Whether oneDNN runs bfloat16 convolutions and matrix products natively on this CPU (AVX-512 BF16, AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def warn_if_cpu_bfloat16_is_emulated(trainer: L.Trainer) -> None:
    """Warns when a CPU run asks for bfloat16 that this CPU lacks: autocast then emulates it, far slower than float32
    (the airbench net: a training step 17x slower on an AVX2-only EPYC, 3x faster on an AMX Xeon;
    ``scripts/benchmarks/benchmark_precision.py`` measures it)."""
    if (str(trainer.precision).startswith("bf16") and isinstance(trainer.accelerator, CPUAccelerator)
            and not cpu_has_bfloat16_units()):
        rank_zero_warn(
            f"--trainer.precision {trainer.precision} on a CPU without bfloat16 units (no AVX-512 BF16 or AMX): "
            "bfloat16 is emulated and usually much slower than float32 here. Use --trainer.precision 32-true "
            "(python -m scripts.benchmarks.benchmark_precision measures both on this machine).")


class ReleaseRunDirectoryOnFailure(L.Callback):
    """Remove the run directory ``zoo fit`` claimed (:func:`zoo.resume.claim_run_directory`) when the fit fails
    before its first training step (a datamodule that finds no data, a batch of the wrong shape, a training loader
    refused after the sanity check), so the next run takes that version instead of leaving a folder with no run in
    it: it may hold only what the fit writes before training, the TensorBoard event file and the ``config.yaml`` and
    ``hparams.yaml`` of the run that did not start. A run that trained a step keeps everything."""

    def __init__(self, run_directory: Path) -> None:
        self.run_directory = run_directory

    def written_before_training(self, path: Path) -> bool:
        return path.name.startswith("events.out.tfevents.") or (
            path.parent == self.run_directory and path.name in ("config.yaml", "hparams.yaml"))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero:  # one process removes it (under DDP every rank sees the exception)
            return
        paths = list(self.run_directory.rglob("*"))
        files = [path for path in paths if not path.is_dir()]
        if trainer.global_step > 0 or not all(self.written_before_training(path) for path in files):
            return
        for path in files:
            path.unlink(missing_ok=True)
        for folder in sorted((path for path in paths if path.is_dir()), reverse=True):  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        resume.release_run_directory(self.run_directory)


class ZooCLI(RefuseUntrustedCkptPath, lightning_compat.CLIHooks):
    """LightningCLI with the zoo's checkpoint callback always on (``--checkpoint.*`` configures it).

    ``zoo fit ... --ckpt_path last`` resumes from the newest ``last.ckpt`` under the run's root (a fresh start
    when there is none, so a preempted job can be requeued with one command), and a run resumed in its own root
    keeps writing into the logger version (run directory) of its checkpoint. A checkpoint of another model,
    datamodule or hyperparameters is refused before anything is written (``resume.refuse_other_run``). A fresh
    run claims its own version directory first (``resume.claim_run_directory``), and :class:`StopOnNonFiniteLoss`
    stops a diverged run.

    A value check in a model's, datamodule's or callback's ``__init__`` fails inside jsonargparse, which wraps it in
    a ``ValueError`` of its own; the zoo's error is raised instead, so the ``zoo`` command prints its one message.
    """

    _claimed_run_directory: Optional[Path] = None
    _logger_as_configured: Any = None

    def __init__(self, *args: Any, seed_everything_default: Any = SEED_EVERYTHING,
                 trainer_defaults: Optional[dict[str, Any]] = None, **kwargs: Any) -> None:
        # the shared defaults (SEED_EVERYTHING, TRAINER_DEFAULTS) hold for every ZooCLI, not only cli_main's
        super().__init__(*args, seed_everything_default=seed_everything_default,
                         trainer_defaults={**TRAINER_DEFAULTS, **(trainer_defaults or {})}, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(ZooCheckpoint, "checkpoint")
        parser.add_argument(
            "--weights", type=Optional[str], default=None,
            help="start from these weights: zoo:<entry> (its shipped weights) or a .safetensors file; tensors whose "
                 "name and shape fit are loaded, the others (a new head) keep their initialization",
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=TEST_AFTER_FIT,
            help="after `fit`, test the best checkpoint on the test set and print its metrics",
        )

    def start_weights(self) -> None:
        """Load the model's starting weights (``--weights``) before any subcommand runs; warn when ``validate``,
        ``test`` or ``predict`` would run an untrained model of an entry that ships weights."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        weights = config.get("weights")
        if weights:
            vocabularies = hub.start_vocabularies(self.datamodule, weights)
            if vocabularies:
                rank_zero_info(f"--weights {weights}: {vocabularies}")
            kept, unused = hub.start_from(self.model, weights)
            rank_zero_info(f"--weights {weights}: loaded {len(self.model.state_dict()) - len(kept)} tensors"
                           + (f"; kept the initialization of {', '.join(kept)}" if kept else "")
                           + (f"; not used from the file: {', '.join(unused)}" if unused else ""))
        elif self.subcommand in ("validate", "test", "predict") and not config.get("ckpt_path"):
            entry = entry_of_config(config.get("config") or [])
            if entry and registry.get(entry).shipped:
                rank_zero_info(f"warning: zoo {self.subcommand}: the model is untrained (random weights); add "
                               f"--weights zoo:{entry} for the shipped weights or --ckpt_path <ckpt> for a run of yours")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The configured Trainer, with :class:`StopOnNonFiniteLoss`, and :class:`ZooProgressBar` as its bar unless
        the config names one or none."""
        config = self.config_init.get(str(self.subcommand), self.config_init).get("trainer", {})
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        added: list[L.Callback] = [] if any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks) else [
            StopOnNonFiniteLoss()]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            added.append(ZooProgressBar())
        if self._claimed_run_directory is not None:
            added.append(ReleaseRunDirectoryOnFailure(self._claimed_run_directory))
        kwargs.setdefault("callbacks", [*callbacks, *added])
        if self._claimed_run_directory is not None:  # config.yaml keeps the logger as configured (see below)
            self.config["fit"].trainer.logger = self._logger_as_configured
        trainer = super().instantiate_trainer(**kwargs)
        warn_if_cpu_bfloat16_is_emulated(trainer)
        return trainer

    def before_reading_ckpt_path(self) -> bool:
        # before LightningCLI reads the checkpoint's hyperparameters into the config, which would hide a changed value
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else {}
        found_by_last = subcommand == "fit" and resume.resolve_last_checkpoint(config)
        if subcommand in ("validate", "test", "predict"):
            resume.resolve_named_checkpoint(config, subcommand)
        path = config.get("ckpt_path")
        # --weights_only false: the user accepts a file outside the allowlist; the command line configures the run
        if path and Path(path).is_file() and config.get("weights_only") is not False:
            check_subcommand_checkpoint(config, subcommand)  # an untrusted file is refused before anything reads it
            checkpoint = read_checkpoint(path, "Pass another --ckpt_path" + (
                ", or leave it out to start afresh." if subcommand == "fit" else
                " (`zoo fit` writes them to <root>/lightning_logs/version_N/checkpoints)."))
            dump = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False, skip_none=False))
            if subcommand == "fit":
                resume.refuse_other_run(path, checkpoint, dump["fit"], found_by_last)
            else:
                resume.refuse_run_of_another_entry(path, checkpoint, dump[subcommand], subcommand)
        return super().before_reading_ckpt_path()

    def before_instantiate_classes(self) -> None:
        if self.subcommand == "fit":
            config = self.config["fit"]
            resume.resume_in_run_directory(config)
            # the claimed version is where this run writes, not part of its config: a config.yaml run again
            # must claim a new directory, not write into this one
            self._logger_as_configured = copy.deepcopy(config.trainer.get("logger"))
            self._claimed_run_directory = resume.claim_run_directory(config)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:
            resume.release_run_directory(self._claimed_run_directory)  # nothing was written into it
            if errors.debug_enabled():
                raise
            cause = errors.deliberate_cause(err)
            if cause is not None and errors.is_lightning_misconfiguration(cause):
                raise errors.ZooError(f"Lightning refuses the trainer's options: {cause} Change that --trainer "
                                      f"option (`zoo fit --help` lists them).") from cause
            if cause is None or cause is err:
                raise
            raise cause from cause.__cause__  # the zoo's message, not jsonargparse's wrapper around it

    def before_validate(self) -> None:
        self.start_weights()

    def before_test(self) -> None:
        self.start_weights()

    def before_predict(self) -> None:
        self.start_weights()

    def before_fit(self) -> None:
        self.start_weights()
        self._fit_started = time.perf_counter()
        if isinstance(self.trainer.checkpoint_callback, ZooCheckpoint) and self.trainer.is_global_zero:
            self.trainer.checkpoint_callback.remember_csv_history(self.trainer)

    def after_fit(self) -> None:
        fit_seconds = getattr(self.trainer.checkpoint_callback, "fit_seconds", time.perf_counter() - self._fit_started)
        # taken before testing: loading the best checkpoint for the test can reset the callback's last_model_path
        results = fit_results(self.trainer, fit_seconds, self.config[self.subcommand].get("seed_everything"))
        results["resumed_from"] = self.config[self.subcommand].get("ckpt_path")
        if self.config_init[self.subcommand].get("test_after_fit"):
            # fast_dev_run and runs without validation keep no best checkpoint: test the weights in memory
            metrics = self.trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path="best" if results["best_checkpoint"] else None
            )
            results["test"] = {key: float(value) for key, value in (metrics[0] if metrics else {}).items()}
        if self.trainer.fast_dev_run:  # a smoke test: like Lightning's logs and checkpoints, nothing is written
            return
        log_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # a collective under DDP: all ranks ask
        if self.trainer.is_global_zero:  # written whole or not at all: a temporary file moved into place
            log_dir.mkdir(parents=True, exist_ok=True)
            partial = log_dir / "results.json.partial"
            partial.write_text(json.dumps(results, indent=2) + "\n")
            resume.atomic_replace(str(partial), str(log_dir / "results.json"))
            rank_zero_info(f"results: {log_dir / 'results.json'}")


def entry_of_config(configs: Any) -> Optional[str]:
    """The zoo entry whose shipped YAML is among the run's config files, if any."""
    for path in configs if isinstance(configs, (list, tuple)) else [configs]:
        path = Path(str(getattr(path, "absolute", path) or path))
        if path.parent.resolve() == registry.CONFIG_DIR.resolve() and path.suffix == ".yaml":
            return path.stem
    return None


def fit_results(trainer: L.Trainer, fit_seconds: float, seed: Optional[int]) -> dict[str, Any]:
    """What a finished ``fit`` writes to ``results.json`` beside its saved ``config.yaml`` (the trainer's log_dir).

    Scripts read it instead of parsing printed tables: the seed, the monitored metric with the best score and
    checkpoint, the last checkpoint, epochs and steps trained, the fit's wall time, and ``test``: the test metrics
    of the best checkpoint when ``test_after_fit`` is on (else empty).
    """
    callback = trainer.checkpoint_callback  # None when checkpointing is off: those fields are null
    score = getattr(callback, "best_model_score", None)
    return {
        "seed": seed,
        "monitor": getattr(callback, "monitor", None),
        "best_score": float(score) if score is not None else None,
        "best_checkpoint": getattr(callback, "best_model_path", "") or None,
        "last_checkpoint": getattr(callback, "last_model_path", "") or None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(fit_seconds, 3),
        "test": {},
    }


def cli_main(args: Optional[list[str]] = None) -> ZooCLI:
    """Run a LightningCLI subcommand (``args`` without the program name)."""
    # LightningCLI reads sys.argv, and DDP relaunches the script with it: put the resolved arguments there.
    sys.argv[1:] = registry.resolve_config_args(sys.argv[1:] if args is None else args)
    unsupported = lightning_compat.unsupported_lightning()
    if unsupported:
        rank_zero_warn(unsupported)
    try:
        return ZooCLI(
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=ZooArgumentParser,
            parser_kwargs={"prog": "zoo", "description": "lightning-zoo: train and evaluate zoo models",
                           "predict": {"description": "LightningCLI's predict: the model's predictions on the "
                                                      f"datamodule's predict split. Also: {FILE_PREDICTION_HELP}."}},
            save_config_kwargs={"overwrite": True},
        )
    finally:
        # Lightning destroys only NCCL process groups at exit. A gloo group (DDP on CPUs) left to interpreter shutdown
        # can abort a finished run ("terminate called without an active exception", exit status -6).
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
