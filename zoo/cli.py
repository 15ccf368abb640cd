"""The ``zoo`` command.

``zoo fit|validate|test|predict`` are LightningCLI subcommands (``-c/--config``, ``--print_config``, ``--model``,
``--data``, ``--trainer.*``, ``--ckpt_path``, ``--seed_everything``); ``-c`` also takes a zoo entry name.
``zoo models`` lists the entries, ``zoo evaluate <entry>`` re-measures shipped weights, and
``zoo export <entry> --ckpt_path <ckpt>`` turns a trained checkpoint into shipped weights and a manifest.
Every ``zoo fit`` also writes ``results.json`` (best score and checkpoint, test metrics, ...) beside its config.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info

import datamodules  # noqa: F401  (registers the datamodules for --data <Name>)
import zoo.models  # noqa: F401  (registers the models for --model <Name>)
from zoo import registry
from zoo.checkpoint_trust import RefuseUntrustedCkptPath

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


class ZooCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps the best and the last checkpoint.

    Unless ``monitor`` is given, it watches the model's ``checkpoint_monitor`` (``val/acc`` for classifiers) in
    the model's ``checkpoint_mode``. At the end of ``fit`` it prints the best checkpoint and its score.
    """

    def __init__(
        self,
        dirpath: Optional[str] = None,
        filename: Optional[str] = "best-{epoch}-{step}",
        monitor: Optional[str] = None,
        mode: str = "min",
        save_last: Optional[bool] = True,
        save_top_k: int = 1,
        every_n_epochs: Optional[int] = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_last=save_last,
            save_top_k=save_top_k, every_n_epochs=every_n_epochs, auto_insert_metric_name=False,
        )
        self._monitor_given = monitor is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._monitor_given:
            self.monitor = getattr(pl_module, "checkpoint_monitor", None)
            self.mode = getattr(pl_module, "checkpoint_mode", "min")
            self.kth_value = torch.tensor(math.inf if self.mode == "min" else -math.inf)
        super().setup(trainer, pl_module, stage)

    def _save_last_every_epoch(self, trainer: L.Trainer) -> None:
        # Lightning 2.6 writes last.ckpt only when a top-k file was written in the same step; resuming needs
        # the true last state, so write it whenever this step has not been saved as last yet.
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        if getattr(self, "_last_saved_step", None) != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_saved_step = trainer.global_step

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_model_path:
            score = self.best_model_score
            shown = f"{self.monitor}={float(score):.4f}" if score is not None else ""
            rank_zero_info(f"best checkpoint: {self.best_model_path} {shown}".rstrip())
        if self.last_model_path:
            rank_zero_info(f"last checkpoint: {self.last_model_path}")


class ZooCLI(RefuseUntrustedCkptPath, LightningCLI):
    """LightningCLI with the zoo's checkpoint callback always on (``--checkpoint.*`` configures it)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(ZooCheckpoint, "checkpoint")
        parser.add_argument(
            "--test_after_fit", type=bool, default=False,
            help="after `fit`, test the best checkpoint on the test set and print its metrics",
        )

    def before_fit(self) -> None:
        self._fit_started = time.perf_counter()

    def after_fit(self) -> None:
        fit_seconds = time.perf_counter() - self._fit_started
        # taken before testing: loading the best checkpoint for the test can reset the callback's last_model_path
        results = fit_results(self.trainer, fit_seconds, self.config[self.subcommand].get("seed_everything"))
        if self.config_init[self.subcommand].get("test_after_fit"):
            # fast_dev_run and runs without validation keep no best checkpoint: test the weights in memory
            metrics = self.trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path="best" if results["best_checkpoint"] else None
            )
            results["test"] = {key: float(value) for key, value in (metrics[0] if metrics else {}).items()}
        log_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # a collective under DDP: all ranks ask
        if self.trainer.is_global_zero:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            rank_zero_info(f"results: {log_dir / 'results.json'}")


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


def resolve_entry_configs(argv: list[str]) -> list[str]:
    """Replace ``-c <entry>`` / ``--config <entry>`` by the entry's YAML path when no such file exists."""
    out = list(argv)
    for i, arg in enumerate(out):
        value_index = None
        if arg in ("-c", "--config") and i + 1 < len(out):
            value_index = i + 1
        elif arg.startswith("--config="):
            name = arg.split("=", 1)[1]
            if not Path(name).exists() and name in registry.entries():
                out[i] = "--config=" + str(registry.get(name).config_path)
            continue
        if value_index is not None:
            name = out[value_index]
            if not Path(name).exists():
                if name in registry.entries():
                    out[value_index] = str(registry.get(name).config_path)
                elif not name.endswith((".yaml", ".yml", ".json")):
                    registry.get(name)  # raises with the list of known entries
    return out


def cli_main(args: Optional[list[str]] = None) -> ZooCLI:
    """Run a LightningCLI subcommand (``args`` without the program name)."""
    # LightningCLI reads sys.argv, and DDP relaunches the script with it: put the resolved arguments there.
    sys.argv[1:] = resolve_entry_configs(sys.argv[1:] if args is None else args)
    try:
        return ZooCLI(
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs={"prog": "zoo", "description": "lightning-zoo: train and evaluate zoo models"},
            save_config_kwargs={"overwrite": True},
        )
    finally:
        # Lightning destroys only NCCL process groups at exit. A gloo group (DDP on CPUs) left to interpreter shutdown
        # can abort a finished run ("terminate called without an active exception", exit status -6).
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def format_metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def headline_metric(manifest: Optional[dict[str, Any]]) -> str:
    if not manifest:
        return "-"
    metrics = manifest.get("metrics", {})
    for key in ("test/perplexity", "test/nll", "test/rmse", "test/ce_per_seq", "test/acc", "test/loss"):
        if key in metrics:
            return f"{key}={format_metric(metrics[key])} ({manifest.get('data', {}).get('dataset', '?')})"
    return "-"


def cmd_models(ns: argparse.Namespace) -> int:
    rows = [("entry", "model", "datamodule", "shipped metric")]
    for name, entry in registry.entries().items():
        rows.append((name, entry.model_class.rsplit(".", 1)[-1], entry.datamodule_class.rsplit(".", 1)[-1],
                     headline_metric(entry.manifest())))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_evaluate(ns: argparse.Namespace) -> int:
    from zoo import hub

    measured, recorded = hub.evaluate(ns.entry)
    print(f"{ns.entry}: metrics on the test set, measured now beside the manifest's")
    print(f"{'metric':<30}{'measured':>12}{'manifest':>12}")
    for key in sorted(set(measured) | set(recorded)):
        print(f"{key:<30}{format_metric(measured.get(key, '-')):>12}{format_metric(recorded.get(key, '-')):>12}")
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from zoo import hub

    manifest = hub.export(ns.entry, ns.ckpt_path, fit_command=ns.command, notes=ns.notes)
    print(f"wrote {manifest['weights']} (sha256 {manifest['sha256'][:12]}...) with metrics {manifest['metrics']}")
    return 0


def zoo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{fit,validate,test,predict,models,evaluate,export}")
    for name in LIGHTNING_SUBCOMMANDS:
        sub.add_parser(name, help=f"LightningCLI `{name}` (zoo {name} --help for its options)")
    sub.add_parser("models", help="list the zoo's entries").set_defaults(func=cmd_models)
    p = sub.add_parser("evaluate", help="re-measure an entry's shipped weights on its real test set")
    p.add_argument("entry", help="a zoo entry with shipped weights (`zoo models` lists them)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("export", help="write shipped weights + manifest from a Lightning checkpoint")
    p.add_argument("entry", help="the zoo entry the checkpoint was trained for")
    p.add_argument("--ckpt_path", required=True, help="the Lightning checkpoint to ship (usually best-....ckpt)")
    p.add_argument("--command", required=True, help="the exact `zoo fit ...` command that trained it")
    p.add_argument("--notes", default="", help="how the run was picked and compared, kept in the manifest")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS or (argv and argv[0].startswith("-") and argv[0] != "-h"
                                                     and argv[0] != "--help"):
        cli_main(argv)
        return 0
    ns = zoo_parser().parse_args(argv)
    if not getattr(ns, "func", None):
        zoo_parser().print_help()
        return 0
    try:
        return ns.func(ns)
    except (registry.UnknownEntryError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"zoo {ns.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
