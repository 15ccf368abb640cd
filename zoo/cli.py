"""The ``zoo`` command.

``zoo fit|validate|test|predict`` are LightningCLI subcommands (``-c/--config``, ``--print_config``, ``--model``,
``--data``, ``--trainer.*``, ``--ckpt_path``, ``--seed_everything``); ``-c`` also takes a zoo entry name.
``zoo models`` lists the entries, ``zoo evaluate <entry> [--ckpt_path <ckpt>]`` re-measures shipped weights (or a
trained checkpoint), and ``zoo export <entry> --ckpt_path <ckpt>`` turns a trained checkpoint into shipped weights
and a manifest.
Every ``zoo fit`` also writes ``results.json`` (best score and checkpoint, test metrics, ...) beside its config.

Errors the zoo raises on purpose (a missing dataset, an unknown entry, a wrong shape, an untrusted checkpoint)
are printed as one message with exit status 2; ``ZOO_DEBUG=1`` shows their traceback.
"""

# This module starts every `zoo` command: it imports neither torch nor Lightning at the top, so `zoo --help`,
# `zoo models` and the `--help` of evaluate/export answer at once; the subcommands import what they run.

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from zoo import errors, registry

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


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
    """Print the entries from their YAML files and manifests alone (no model is imported)."""
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

    measured, recorded = hub.evaluate(ns.entry, ns.ckpt_path)
    weights = f"the checkpoint {ns.ckpt_path}" if ns.ckpt_path else "the shipped weights"
    print(f"{ns.entry}: metrics of {weights} on the test set, measured now beside the manifest's")
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
    sub = parser.add_subparsers(dest="subcommand", metavar="{fit,validate,test,predict,models,evaluate,export}")
    for name in LIGHTNING_SUBCOMMANDS:
        sub.add_parser(name, help=f"LightningCLI `{name}` (zoo {name} --help for its options)")
    sub.add_parser("models", help="list the zoo's entries").set_defaults(func=cmd_models)
    p = sub.add_parser("evaluate", help="re-measure an entry's shipped weights (or a checkpoint) on its real test set")
    p.add_argument("entry", help="a zoo entry (`zoo models` lists them)")
    p.add_argument("--ckpt_path", default=None,
                   help="measure this Lightning checkpoint of a `zoo fit` run instead of the shipped weights")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("export", help="write shipped weights + manifest from a Lightning checkpoint")
    p.add_argument("entry", help="the zoo entry the checkpoint was trained for")
    p.add_argument("--ckpt_path", required=True, help="the Lightning checkpoint to ship (usually best-....ckpt)")
    p.add_argument("--command", required=True, help="the exact `zoo fit ...` command that trained it")
    p.add_argument("--notes", default="", help="how the run was picked and compared, kept in the manifest")
    p.set_defaults(func=cmd_export)
    return parser


def run_lightning(argv: list[str]) -> int:
    """A LightningCLI subcommand; ``-c <entry>`` is resolved (or refused) before Lightning is imported."""
    argv = registry.resolve_config_args(argv)
    from zoo.lightning_cli import cli_main  # noqa: PLC0415 (imports torch + Lightning)

    cli_main(argv)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lightning_run = bool(argv) and (argv[0] in LIGHTNING_SUBCOMMANDS or (argv[0].startswith("-")
                                                                        and argv[0] not in ("-h", "--help")))
    command = argv[0] if lightning_run and argv[0] in LIGHTNING_SUBCOMMANDS else None
    try:
        if lightning_run:
            return run_lightning(argv)
        ns = zoo_parser().parse_args(argv)
        if not getattr(ns, "func", None):
            zoo_parser().print_help()
            return 0
        command = ns.subcommand
        return ns.func(ns)
    except Exception as err:  # noqa: BLE001 (deliberate errors become one message; others keep their traceback)
        if not errors.is_deliberate(err) or errors.debug_enabled():
            raise
        print(f"zoo{' ' + command if command else ''}: error: {err}", file=sys.stderr)
        print("(set ZOO_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
