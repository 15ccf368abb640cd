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

# This module starts every `zoo` command and imports neither torch nor Lightning, so `zoo --help`, `zoo models` and
# the `--help` of every subcommand answer at once. The subcommands that need torch live in `zoo.commands`; the
# parsers name them by "module:function" and `handler` imports that module when its subcommand runs.

from __future__ import annotations

import argparse
import os
import sys
import importlib
from collections.abc import Callable
from typing import Any, Optional

from zoo import __version__, errors, registry
from zoo.manifest import ManifestError, headline

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: the other `zoo predict`, named in `zoo --help` and in LightningCLI's `zoo predict --help` (zoo.lightning_cli).
FILE_PREDICTION_HELP = ("`zoo predict ENTRY|RUN.ckpt PATH ...` runs shipped weights or a run's checkpoint on your own "
                        "files (images, text, CSV series, frames; `zoo predict ENTRY --help` lists its options)")


def format_metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def cmd_models(ns: argparse.Namespace) -> int:
    """Print the entries from their YAML files and manifests alone (no model is imported); a manifest that cannot
    be read shows its error in its row and the others are listed."""
    rows = [("entry", "model", "datamodule", "shipped", "headline metric (test split)")]
    found = registry.entries()
    for name in registry.list_models(ns.pattern, shipped=True if ns.shipped else None):
        entry = found[name]
        try:
            manifest = entry.manifest()
            metric, has = (headline(manifest), "yes") if manifest is not None else ("-", "-")
        except ManifestError as err:
            metric, has = f"unreadable manifest: {err}", "error"
        rows.append((name, entry.model_class.rsplit(".", 1)[-1], entry.datamodule_class.rsplit(".", 1)[-1], has,
                     metric))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[4]]).rstrip())
    return 0


def zoo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lightning-zoo {__version__}")
    sub = parser.add_subparsers(dest="subcommand",
                                metavar="{fit,validate,test,predict,models,evaluate,export,sample}")
    for name in LIGHTNING_SUBCOMMANDS:
        sub.add_parser(name, help=f"LightningCLI `{name}` (zoo {name} --help for its options)" +
                       (f"; {FILE_PREDICTION_HELP}" if name == "predict" else ""))
    p = sub.add_parser("models", help="list the zoo's entries (with a pattern: those matching it)")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*mnist*' (default: all)")
    p.add_argument("--shipped", action="store_true", help="only the entries that ship weights")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("evaluate", help="re-measure an entry's shipped weights (or a checkpoint) on its real test set")
    p.add_argument("entry", help="a zoo entry (`zoo models` lists them)")
    p.add_argument("--ckpt_path", default=None,
                   help="measure this Lightning checkpoint of a `zoo fit` run instead of the shipped weights")
    p.add_argument("--data_root", default=None,
                   help="read the test data from this folder (default: the manifest's or the checkpoint's root)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="shipped weights: exit 1 when a metric differs from the manifest by more than this share "
                        "of its value (absolute for values below 1; default 0.01)")
    p.set_defaults(func="zoo.commands:evaluate")
    p = sub.add_parser("export", help="write shipped weights + manifest from a Lightning checkpoint")
    p.add_argument("entry", help="the zoo entry the checkpoint was trained for")
    p.add_argument("--ckpt_path", required=True, help="the Lightning checkpoint to ship (usually best-....ckpt)")
    p.add_argument("--command", required=True, help="the exact `zoo fit ...` command that trained it")
    p.add_argument("--notes", default="", help="how the run was picked and compared, kept in the manifest")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="store floating-point tensors in this type (the metrics are measured from the stored file)")
    p.add_argument("--trained_on", default="cpu", help="the device the run trained on, for the manifest")
    p.add_argument("--data_root", default=None,
                   help="read the test data from this folder (default: the root stored in the checkpoint)")
    p.add_argument("--out_dir", default=None,
                   help="write the weights and manifest here (default: where zoo.load reads, $ZOO_CHECKPOINT_DIR or "
                        "the shipped weights' folder); load them with ZOO_CHECKPOINT_DIR=<out_dir>")
    p.add_argument("--overwrite", action="store_true",
                   help="replace weights of the entry already in that folder (the shipped ones, say)")
    p.set_defaults(func="zoo.commands:export")
    p = sub.add_parser("sample", help="draw samples of a generative entry's shipped weights into a PNG grid, or "
                                      "continue a prompt with an n-gram entry")
    p.add_argument("entry", help="a generative zoo entry that ships weights (gan_mnist, vae_mnist, cgan_mnist, ...), "
                                 "or an n-gram entry (ngram_sonnets) with --prompt; or the .ckpt of a `zoo fit` run "
                                 "of one (e.g. an n-gram model trained on your own text)")
    p.add_argument("-n", type=int, default=64, help="number of samples, or of words to add (default 64)")
    p.add_argument("--prompt", default=None, help="n-gram entries: the words to continue (at least two)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="n-gram entries: 0 takes the most probable word (the book); above 0 samples with --seed")
    p.add_argument("--out", default="samples.png", help="the PNG file to write (default samples.png)")
    p.add_argument("--labels", type=int, nargs="+", default=None,
                   help="class labels of the samples, for class-conditional entries (repeated to fill n)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise or of the word sampling (default 0)")
    p.set_defaults(func="zoo.commands:sample")
    return parser


def handler(target: Any) -> Callable[[argparse.Namespace], int]:
    """A subcommand's function: given as itself, or as ``"module:function"``, imported now (modules importing torch)."""
    if callable(target):
        return target
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def run_lightning(argv: list[str]) -> int:
    """A LightningCLI subcommand; ``-c <entry>`` is resolved (or refused) before Lightning is imported."""
    handler("zoo.commands:lightning")(registry.resolve_config_args(argv))
    return 0


def predict_files_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo predict", description="Classify your own image files with an entry's shipped weights: one line per "
        "file, tab-separated path, class, probability; or tag the sentences of text files (one per line) with the "
        "part-of-speech tagger; or forecast the values that follow CSV series with a series forecaster: one line "
        "per step, path, label, value; or the frames that follow a folder of frames with a frame forecaster, as a "
        "PNG strip. (`zoo predict -c ENTRY ...` is LightningCLI's predict.)")
    parser.add_argument("entry", help="an image classifier, the tagger or the forecaster that ships weights (`zoo "
                                      "models --shipped`), or the .ckpt of a `zoo fit` run (e.g. after fine-tuning on "
                                      "your own folder or training on your own series)")
    parser.add_argument("paths", nargs="+", help="PNG/JPEG files, or folders searched recursively; for the tagger, "
                                                 "UTF-8 text files of one sentence per line; for a series "
                                                 "forecaster, CSV files with a header line, labels first and values "
                                                 "in the last column; for a frame forecaster, the frames (name "
                                                 "order)")
    parser.add_argument("--topk", type=int, default=1, help="print the K most probable classes (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of tab-separated text")
    parser.add_argument("--batch_size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--steps", type=int, default=12, help="for a series forecaster: how many values to forecast "
                                                              "after each series, each fed back as input (default 12)")
    parser.add_argument("--out", default="forecast.png", help="for a frame forecaster (convlstm_*): the PNG strip of "
                                                              "input and forecast frames to write (default "
                                                              "forecast.png)")
    parser.set_defaults(func="zoo.commands:predict_files", subcommand="predict")
    return parser


def is_file_prediction(argv: list[str]) -> bool:
    """``zoo predict ENTRY PATH ...`` (an entry name first) rather than LightningCLI's ``zoo predict -c ...``."""
    return len(argv) >= 2 and argv[0] == "predict" and not argv[1].startswith("-")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    naming_flags_before = errors.name_command_line_options()
    lightning_run = bool(argv) and (argv[0] in LIGHTNING_SUBCOMMANDS or (argv[0].startswith("-")
                                                                        and argv[0] not in ("-h", "--help",
                                                                                            "--version")))
    lightning_run = lightning_run and not is_file_prediction(argv)
    command = argv[0] if lightning_run and argv[0] in LIGHTNING_SUBCOMMANDS else None
    try:
        if lightning_run:
            return run_lightning(argv)
        if is_file_prediction(argv):
            ns = predict_files_parser().parse_args(argv[1:])
        else:
            ns = zoo_parser().parse_args(argv)
        if not getattr(ns, "func", None):
            zoo_parser().print_help()
            return 0
        command = ns.subcommand
        return handler(ns.func)(ns)
    except BrokenPipeError:  # `zoo models | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error flushing the closed pipe at exit
        return 0
    except Exception as err:  # noqa: BLE001 (deliberate errors become one message; others keep their traceback)
        if not errors.is_deliberate(err) or errors.debug_enabled():
            raise
        print(f"zoo{' ' + command if command else ''}: error: {err}", file=sys.stderr)
        print("(set ZOO_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2
    finally:  # a program calling main() keeps its own naming afterwards
        errors.name_command_line_options(naming_flags_before)


if __name__ == "__main__":
    sys.exit(main())
