"""The ``zoo`` subcommands that run torch (:mod:`zoo.cli` parses the command line and imports this module when one
of them runs): LightningCLI's ``fit|validate|test|predict``, ``evaluate``, ``export``, ``predict ENTRY PATH`` and
``sample``."""

from __future__ import annotations

import argparse
import logging
import sys

from zoo import evaluation, hub, predict
from zoo.cli import format_metric
from zoo.export import export as export_entry
from zoo.lightning_cli import cli_main

#: Lightning's rank-zero messages that advertise its cloud services ("💡 Tip: ... try installing litlogger") say
#: nothing about the run; the `zoo` command leaves them out (a script using the zoo as a library still gets them).
LIGHTNING_ADVERT_PREFIX = "💡 Tip:"


def is_not_lightning_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(LIGHTNING_ADVERT_PREFIX)


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(is_not_lightning_advert)


def lightning(argv: list[str]) -> None:
    """A LightningCLI subcommand (``argv`` with ``-c <entry>`` already resolved to the entry's config file)."""
    cli_main(argv)


def predict_files(ns: argparse.Namespace) -> int:
    return predict.predict_files(ns.entry, ns.paths, topk=ns.topk, as_json=ns.json, batch_size=ns.batch_size,
                                 steps=ns.steps, out=ns.out)


def sample(ns: argparse.Namespace) -> int:
    run = hub.load_run(ns.entry) if ns.entry.endswith(".ckpt") else None
    if ns.prompt is not None or predict.continues_text(ns.entry, run):
        text, unknown = predict.continue_prompt(ns.entry, ns.prompt, ns.n, temperature=ns.temperature, seed=ns.seed,
                                                run=run)
        for word in unknown:
            print(f"note: {word!r} is not in the vocabulary of {ns.entry}; it is read as <unk>", file=sys.stderr)
        print(text)
        return 0
    path = predict.sample_grid(ns.entry, ns.n, ns.out, labels=ns.labels, seed=ns.seed, run=run)
    print(f"wrote {ns.n} samples of {ns.entry} to {path}")
    return 0


def evaluate(ns: argparse.Namespace) -> int:
    measured, recorded = evaluation.evaluate(ns.entry, ns.ckpt_path, ns.data_root)
    weights = f"the checkpoint {ns.ckpt_path}" if ns.ckpt_path else "the shipped weights"
    print(f"{ns.entry}: metrics of {weights} on the test set, measured now beside the manifest's")
    print(f"{'metric':<30}{'measured':>12}{'manifest':>12}")
    differing = []
    for key in sorted(set(measured) | set(recorded)):
        mark = ""
        if not ns.ckpt_path and key in measured and key in recorded:
            if not evaluation.agrees(measured[key], recorded[key], ns.tolerance):
                differing.append(key)
                mark = "  differs"
        print(f"{key:<30}{format_metric(measured.get(key, '-')):>12}{format_metric(recorded.get(key, '-')):>12}{mark}")
    if differing:
        print(f"zoo evaluate: {len(differing)} metric(s) differ from the manifest by more than {ns.tolerance:.2%}: "
              f"{', '.join(differing)}", file=sys.stderr)
        return 1
    return 0


def export(ns: argparse.Namespace) -> int:
    manifest = export_entry(ns.entry, ns.ckpt_path, fit_command=ns.command, notes=ns.notes, dtype=ns.dtype,
                            trained_on=ns.trained_on, data_root=ns.data_root, out_dir=ns.out_dir,
                            overwrite=ns.overwrite)
    print(f"wrote {manifest.weights} (sha256 {manifest.sha256[:12]}...) with metrics {manifest.metrics}")
    return 0
