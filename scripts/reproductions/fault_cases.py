"""Plant bad inputs, run the ``zoo`` command on them, and check that each ends in one message (issue 33).

Each case writes its inputs into a fresh folder: dataset files in their real formats with one fault (a pickle
that would create a marker file if it ran, a label outside the classes, a truncated or empty file, a NaN in a
CSV), a checkpoint, or a bad option value; some first train a short run to resume. Then it runs a ``zoo``
command there and checks

- the exit status (2: the zoo refused),
- one message: stderr has no traceback and exactly one ``zoo <subcommand>: error:`` line naming the problem
  (for a bad option value, nothing else: at most 3 lines in all),
- that no planted code ran (the marker file does not exist),
- that no file present before the command changed (sha256 before and after), and that no "best" checkpoint
  comes from a diverged run.

    OMP_NUM_THREADS=1 python -m scripts.reproductions.fault_cases            # every case, a few minutes on one CPU
    OMP_NUM_THREADS=1 python -m scripts.reproductions.fault_cases --fast     # those without a training run first
    OMP_NUM_THREADS=1 python -m scripts.reproductions.fault_cases --only cifar-planted-meta lr-negative

prints one line per case and a summary, and exits with status 1 if any case does not meet its expectation.
``tests/test_hardening.py`` runs the fast cases.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import re
import zlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from tests.helpers import write_cifar10, write_idx_labels, write_mnist_family  # the tests' format writers

MARKER = "planted-code-ran"
ERROR_LINE = re.compile(r"^zoo (fit|validate|test|predict|models|evaluate|export): error: ", re.MULTILINE)
FAST_RUN = ["--trainer.fast_dev_run", "true"]
SHORT_RUN = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--trainer.enable_progress_bar", "false", "--test_after_fit", "false"]


class Planted:
    """Pickles as a call of ``os.system`` that creates the marker file: code that runs if the pickle is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@dataclass(frozen=True)
class Case:
    """One planted fault: ``plant(folder)`` writes the inputs and returns the ``zoo`` arguments; the error
    message must contain ``says``."""

    name: str
    plant: Callable[[Path], list[str]]
    says: str
    fast: bool = True
    max_stderr_lines: Optional[int] = None  # bad option values: the message and nothing else
    absent: tuple[str, ...] = ()  # globs (under the folder) that must match nothing afterwards
    env: Callable[[Path], dict[str, str]] = lambda folder: {}  # variables the command runs with


@dataclass
class Outcome:
    case: Case
    status: int
    one_message: bool
    says: bool
    code_ran: bool
    changed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return (self.status == 2 and self.one_message and self.says and not self.code_ran and not self.changed
                and not self.present)

    def line(self) -> str:
        notes = [f"changed: {', '.join(self.changed)}"] if self.changed else []
        notes += [f"must not exist: {', '.join(self.present)}"] if self.present else []
        notes += ["the message lacks the expected text"] if self.one_message and not self.says else []
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.case.name:<26} exit {self.status:<3} "
                f"{'one message' if self.one_message else 'NOT ONE MESSAGE'}  "
                f"{'CODE RAN' if self.code_ran else 'no code ran'}  "
                f"{'FILES CHANGED' if self.changed else 'files kept'}  {self.seconds:4.1f}s"
                + (f"  ({'; '.join(notes)})" if notes else ""))


# ------------------------------------------------------------------------------------------------ planting helpers
def planted_pickle(folder: Path) -> bytes:
    return pickle.dumps(Planted(folder / MARKER), protocol=2)


def cifar(folder: Path, name: Optional[str] = None, content: Optional[bytes] = None) -> Path:
    """A tiny CIFAR-10 under ``folder/data`` with ``content`` written over the file ``name``."""
    root = write_cifar10(folder / "data", per_batch=4)
    if name is not None:
        (root / "cifar-10-batches-py" / name).write_bytes(content)
    return root


def cifar_batch(labels: list[int]) -> bytes:
    data = np.zeros((len(labels), 3072), dtype=np.uint8)
    return pickle.dumps({"batch_label": "planted", "labels": labels, "data": data}, protocol=2)


def cifar_fit(folder: Path, name: Optional[str], content: Optional[bytes], subcommand: str = "fit") -> list[str]:
    root = cifar(folder, name, content)
    return [subcommand, "-c", "airbench_cifar10", "--data.init_args.root", str(root), "--data.init_args.val_size",
            "4", "--data.init_args.batch_size", "4", "--data.init_args.drop_last", "false", *FAST_RUN]


def mnist_fit(folder: Path, damage: Callable[[Path], None]) -> list[str]:
    """``zoo fit`` of LeNet on a tiny MNIST whose ``raw`` folder ``damage`` changes."""
    root = write_mnist_family(folder / "data", "MNIST", n_train=40, n_test=20)
    damage(root / "MNIST" / "raw")
    return ["fit", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root", str(root), *FAST_RUN]


def airline_fit(folder: Path, content: bytes) -> list[str]:
    path = folder / "series.csv"
    path.write_bytes(content)
    return ["fit", "-c", "lstm_airline", "--data.init_args.csv_path", str(path), *FAST_RUN]


def airline_rows(value: str) -> bytes:
    """A Month,Passengers CSV of 48 months whose 5th month (row 6, after the header) holds ``value``."""
    values = [str(100 + 10 * math.sin(i)) for i in range(48)]
    values[4] = value
    return ("Month,Passengers\n" + "".join(f"19{49 + i // 12}-{i % 12 + 1:02d},{v}\n" for i, v in
                                            enumerate(values))).encode()


def treebank_fit(folder: Path, train: bytes) -> list[str]:
    sentence = "1\tDogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_\t_\n2\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_\n\n"
    for split in ("train", "dev", "test"):
        (folder / f"en_ewt-ud-{split}.conllu").write_text(sentence * 4, encoding="utf-8")
    (folder / "en_ewt-ud-train.conllu").write_bytes(train)
    return ["fit", "-c", "pos_tagger_ud_ewt", "--data.init_args.root", str(folder), *FAST_RUN]


def text_fit(folder: Path, content: bytes) -> list[str]:
    path = folder / "sonnets.txt"
    path.write_bytes(content)
    return ["fit", "-c", "ngram_sonnets", "--data.init_args.text_path", str(path), *FAST_RUN]


def lenet(*options: str) -> Callable[[Path], list[str]]:
    """The quick-start entry with ``options`` (a bad value among them), for one fast_dev_run step."""
    return lambda folder: ["fit", "-c", "lenet_mnist_mini", *FAST_RUN, *options]


def checkpoint_fit(folder: Path, content: Optional[bytes] = None, subcommand: str = "fit") -> list[str]:
    """``zoo fit --ckpt_path`` (or another subcommand) of a checkpoint that would run code when unpickled (or of
    ``content``)."""
    import torch

    path = folder / "given.ckpt"
    if content is None:
        torch.save({"state_dict": {}, "epoch": 0, "global_step": 0, "planted": Planted(folder / MARKER)}, path)
    else:
        path.write_bytes(content)
    return [subcommand, "-c", "lenet_mnist_mini", "--ckpt_path", str(path), *FAST_RUN]


def checkpoint_of(kind: str, subcommand: str = "test") -> Callable[[Path], list[str]]:
    """``zoo <subcommand> -c lenet_mnist_mini --ckpt_path`` of a file that is no checkpoint of that entry: ``kind``
    is ``another-entry`` (the forecaster's run), ``state-dict``, ``tensor`` (``torch.save`` files that are not
    Lightning checkpoints), ``safetensors`` or ``folder``."""

    def plant(folder: Path) -> list[str]:
        import torch
        from safetensors.torch import save_file

        path = folder / ("runs" if kind == "folder" else "given.safetensors" if kind == "safetensors" else
                         "given.ckpt")
        if kind == "another-entry":
            torch.save({"hyper_parameters": {"_class_path": "zoo.models.LSTMForecaster"}, "state_dict": {},
                        "datamodule_hyper_parameters": {"_class_path": "datamodules.AirlinePassengersDataModule"}},
                       path)
        elif kind in ("state-dict", "safetensors"):
            weights = {"network.0.weight": torch.zeros(6, 1, 5, 5)}
            torch.save(weights, path) if kind == "state-dict" else save_file(weights, str(path))
        elif kind == "tensor":
            torch.save(torch.zeros(3), path)
        else:
            (path / "lightning_logs" / "version_0" / "checkpoints").mkdir(parents=True)
        return [subcommand, "-c", "lenet_mnist_mini", "--ckpt_path", str(path), *FAST_RUN]

    return plant


def resume_after_a_run(entry: str, *options: str) -> Callable[[Path], list[str]]:
    """Train a short quick-start run in ``folder``, then ``--ckpt_path last`` with ``entry`` and ``options``."""

    def plant(folder: Path) -> list[str]:
        run_zoo(["fit", "-c", "lenet_mnist_mini", *SHORT_RUN], folder, check=True)
        return ["fit", "-c", entry, *SHORT_RUN, "--ckpt_path", "last", *options]

    return plant


def huge_png(folder: Path) -> list[str]:
    """A 67-byte PNG whose header declares 60,000 x 60,000 pixels (a decompression bomb)."""
    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR"
    data = (60000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    (folder / "huge.png").write_bytes(header + data + zlib.crc32(b"IHDR" + data).to_bytes(4, "big"))
    return ["predict", "lenet_mnist", str(folder / "huge.png")]


def shipped_lenet(folder: Path, weights: Optional[str] = None, manifest: Optional[bytes] = None,
                  link_weights_to: Optional[str] = None) -> list[str]:
    """A checkpoint folder (``ZOO_CHECKPOINT_DIR``) holding lenet_mnist with one fault; ``zoo evaluate`` of it."""
    from zoo import registry

    shipped = folder / "shipped"
    shipped.mkdir()
    original = json.loads((registry.shipped_dir() / "lenet_mnist.json").read_text())
    (shipped / "lenet_mnist.json").write_bytes(
        manifest if manifest is not None else json.dumps({**original, **({"weights": weights} if weights else {})})
        .encode())
    if link_weights_to:
        (shipped / "lenet_mnist.safetensors").symlink_to(link_weights_to)
    return ["evaluate", "lenet_mnist"]


def in_shipped(folder: Path) -> dict[str, str]:
    return {"ZOO_CHECKPOINT_DIR": str(folder / "shipped")}


def idx_label(value: int) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        path = raw / "train-labels-idx1-ubyte"
        labels = np.frombuffer(path.read_bytes()[8:], dtype=np.uint8).copy()
        labels[7] = value
        write_idx_labels(path, labels)

    return damage


def empty_idx(raw: Path) -> None:
    (raw / "train-labels-idx1-ubyte").write_bytes(b"")


def no_images(raw: Path) -> None:
    (raw / "train-images-idx3-ubyte").write_bytes((2051).to_bytes(4, "big") + bytes(4) + (28).to_bytes(4, "big") * 2)
    write_idx_labels(raw / "train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))


def truncated_images(raw: Path) -> None:
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])


SYSTEM = f"{os.system.__module__}.system"
BAD_VALUE = 3  # stderr lines of a refused option: "Seed set to 0", the message, the ZOO_DEBUG hint

CASES = [
    # no code from data or checkpoints
    Case("cifar-planted-train-batch", lambda f: cifar_fit(f, "data_batch_1", planted_pickle(f)), SYSTEM),
    Case("cifar-planted-test-batch", lambda f: cifar_fit(f, "test_batch", planted_pickle(f), "test"), SYSTEM,
         fast=False),
    Case("cifar-planted-meta", lambda f: cifar_fit(f, "batches.meta", planted_pickle(f)), SYSTEM, fast=False),
    Case("checkpoint-planted", checkpoint_fit, f"refusing to load the checkpoint .*{SYSTEM}"),
    Case("checkpoint-truncated", lambda f: checkpoint_fit(f, b"PK\x03\x04 cut short"), "cannot read the checkpoint",
         fast=False),
    Case("checkpoint-truncated-test", lambda f: checkpoint_fit(f, b"PK\x03\x04 cut short", "test"),
         "cannot read the checkpoint", fast=False),
    Case("checkpoint-missing", lambda f: ["fit", "-c", "lenet_mnist_mini", "--ckpt_path", str(f / "gone.ckpt")],
         "gone.ckpt: no such file", fast=False, max_stderr_lines=BAD_VALUE),
    Case("test-checkpoint-of-another-entry", checkpoint_of("another-entry"),
         "a run of zoo.models.LSTMForecaster on datamodules.AirlinePassengersDataModule, but this command's config "
         "has zoo.models.LeNet"),
    Case("test-state-dict-as-checkpoint", checkpoint_of("state-dict"), "not a Lightning checkpoint .*--weights"),
    Case("predict-tensor-as-checkpoint", checkpoint_of("tensor", "predict"), r"not a Lightning checkpoint \(it holds "
         "a Tensor"),
    Case("validate-safetensors-as-checkpoint", checkpoint_of("safetensors", "validate"),
         "a safetensors weights file .*--weights"),
    Case("test-folder-as-checkpoint", checkpoint_of("folder"), "is a folder, not a checkpoint file"),
    Case("test-last-without-a-run", lambda f: ["test", "-c", "lenet_mnist_mini", "--ckpt_path", "last"],
         "--ckpt_path last: no last.*ckpt under"),
    Case("validate-best-without-a-run", lambda f: ["validate", "-c", "lenet_mnist_mini", "--ckpt_path", "best"],
         "--ckpt_path best: no best.*ckpt under"),
    # damaged, empty and out-of-range data
    Case("cifar-label-10", lambda f: cifar_fit(f, "data_batch_2", cifar_batch([1, 10, 3, 4])), "the label 10"),
    Case("cifar-empty-file", lambda f: cifar_fit(f, "data_batch_4", b""), "not a readable CIFAR-10 batch",
         fast=False),
    Case("mnist-label-12", lambda f: mnist_fit(f, idx_label(12)), "holds the label 12"),
    Case("mnist-empty-labels-file", lambda f: mnist_fit(f, empty_idx), "does not start like an IDX file",
         fast=False),
    Case("mnist-no-images", lambda f: mnist_fit(f, no_images), "holds no items", fast=False),
    Case("mnist-truncated-images", lambda f: mnist_fit(f, truncated_images), "is damaged: it is cut short",
         fast=False),
    Case("airline-nan", lambda f: airline_fit(f, airline_rows("nan")), r"series.csv, row 6: .*'nan'",
         max_stderr_lines=BAD_VALUE),
    Case("airline-inf", lambda f: airline_fit(f, airline_rows("inf")), r"row 6: .*'inf'", fast=False),
    Case("airline-not-a-number", lambda f: airline_fit(f, airline_rows("n/a")), r"row 6: .*'n/a'", fast=False),
    Case("airline-empty", lambda f: airline_fit(f, b""), "expected a header line", fast=False),
    Case("airline-not-utf8", lambda f: airline_fit(f, b"Month,Passengers\n1949-01,\xff\xfe\n"), "is not UTF-8",
         fast=False),
    Case("treebank-not-utf8", lambda f: treebank_fit(f, b"1\tDogs\xff\tdog\tNOUN\t_\t_\t0\troot\t_\t_\n"),
         "is not UTF-8", fast=False),
    Case("treebank-empty", lambda f: treebank_fit(f, b""), "holds no sentence", fast=False),
    Case("sonnets-not-utf8", lambda f: text_fit(f, b"I\n\nFrom fairest creatures \xff we desire increase\n"),
         "is not UTF-8", fast=False, max_stderr_lines=BAD_VALUE),
    # option values the zoo or Lightning refuses
    Case("batch-size-0", lenet("--data.init_args.batch_size", "0"), "batch_size must be", max_stderr_lines=BAD_VALUE),
    Case("cifar-batch-size-0", lambda f: [*cifar_fit(f, None, None), "--data.init_args.batch_size", "0"],
         "batch_size must be", fast=False, max_stderr_lines=BAD_VALUE),
    Case("lr-negative", lenet("--model.init_args.lr", "-1"), "lr must be 0 or more", max_stderr_lines=BAD_VALUE),
    Case("momentum-negative", lenet("--model.init_args.momentum", "-0.5"), "momentum must be", fast=False,
         max_stderr_lines=BAD_VALUE),
    Case("weight-decay-negative", lenet("--model.init_args.weight_decay", "-1"), "weight_decay must be", fast=False,
         max_stderr_lines=BAD_VALUE),
    Case("val-fraction-2", lenet("--data.init_args.val_fraction", "2"), "val_fraction must be in",
         max_stderr_lines=BAD_VALUE),
    Case("max-epochs-negative", lenet("--trainer.max_epochs", "-5"), "max_epochs", max_stderr_lines=BAD_VALUE),
    Case("devices-0", lenet("--trainer.devices", "0"), "devices", fast=False, max_stderr_lines=BAD_VALUE),
    Case("unknown-option", lenet("--trainer.max_epochz", "3"), "max_epochz", fast=False, max_stderr_lines=BAD_VALUE),
    Case("model-option-misspelled", lenet("--model.init_args.lrr", "3"),
         "--model.init_args.lrr: zoo.models.LeNet takes no argument 'lrr'; did you mean 'lr'?",
         max_stderr_lines=BAD_VALUE),
    Case("config-file-key-misspelled", lambda f: (f / "my.yaml").write_text("data:\n  init_args:\n    batch_sise: 8\n")
         and ["fit", "-c", "lenet_mnist_mini", "-c", str(f / "my.yaml"), *FAST_RUN],
         "--data.init_args.batch_sise: datamodules.EmbeddedMNISTDataModule takes no argument 'batch_sise'; did you "
         "mean 'batch_size'?", max_stderr_lines=BAD_VALUE),
    Case("data-option-wrong-type", lenet("--data.init_args.batch_size", "many"),
         "--data.init_args.batch_size: Expected a <class 'int'>. Got value: many", max_stderr_lines=BAD_VALUE),
    Case("unknown-entry", lambda f: ["fit", "-c", "no_such_entry"], "no_such_entry", fast=False,
         max_stderr_lines=BAD_VALUE),
    # runs that must not be lost or mixed
    Case("fit-without-data-leaves-no-run-folder", lambda f: ["fit", "-c", "lenet_mnist_mini", "--data",
                                                           "MNISTDataModule", "--data.root", str(f / "nowhere"),
                                                           "--trainer.max_epochs", "1"],
         "MNIST not found", absent=("lightning_logs/*",)),
    Case("fit-refused-after-sanity-check-leaves-no-run-folder", lambda f: [
        "fit", "-c", "lenet_mnist_mini", "--data.init_args.first_epoch_batch_size", "4", "--trainer.max_epochs", "1"],
         "--trainer.reload_dataloaders_every_n_epochs 1", absent=("lightning_logs/*",)),
    Case("diverged-lr-1e30", lambda f: ["fit", "-c", "lenet_mnist_mini", *SHORT_RUN, "--trainer.limit_train_batches",
                                        "5", "--model.init_args.lr", "1e30"], "loss became nan or infinite at step",
         fast=False, absent=("**/best*.ckpt", "**/results.json")),
    Case("predict-declared-60000x60000", huge_png, "none of the 1 image", max_stderr_lines=4),
    Case("predict-not-an-image", lambda f: (f / "note.png").write_text("not a picture") and
         ["predict", "lenet_mnist", str(f / "note.png")], "none of the 1 image", max_stderr_lines=4),
    Case("manifest-not-json", lambda f: shipped_lenet(f, manifest=b"{oops"), "is not valid JSON", env=in_shipped),
    Case("manifest-weights-dev-zero", lambda f: shipped_lenet(f, weights="/dev/zero"), "plain file name",
         env=in_shipped),
    Case("manifest-weights-outside", lambda f: shipped_lenet(f, weights="../../etc/passwd"), "plain file name",
         env=in_shipped),
    Case("weights-link-to-dev-zero", lambda f: shipped_lenet(f, link_weights_to="/dev/zero"), "not a regular file",
         env=in_shipped),
    Case("weights-flag-missing-file", lenet("--weights", "missing.safetensors"), "no such file"),
    Case("weights-flag-not-safetensors", lambda f: (f / "w.safetensors").write_text("text") and
         ["fit", "-c", "lenet_mnist_mini", *FAST_RUN, "--weights", str(f / "w.safetensors")],
         "not a readable safetensors file"),
    Case("resume-another-entry", resume_after_a_run("cnn_mnist"), "a run of zoo.models.LeNet", fast=False),
    Case("resume-changed-lr", resume_after_a_run("lenet_mnist_mini", "--model.init_args.lr", "0.5"),
         r"--model.init_args.lr is 0.5 here, 0.01 in the checkpoint", fast=False),
]


# ------------------------------------------------------------------------------------------------ running
def run_zoo(args: list[str], folder: Path, check: bool = False, extra_env: Optional[dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           **(extra_env or {})}
    env.pop("ZOO_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise SystemExit(f"preparing run `zoo {' '.join(args)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_case(case: Case, folder: Path) -> Outcome:
    """Plant ``case`` in the empty ``folder``, run its command there and check what came of it."""
    args = case.plant(folder)
    before = hashes(folder)
    started = time.perf_counter()
    proc = run_zoo(args, folder, extra_env=case.env(folder))
    seconds = time.perf_counter() - started
    after = hashes(folder)
    lines = proc.stderr.strip().splitlines()
    one = ("Traceback" not in proc.stderr and len(ERROR_LINE.findall(proc.stderr)) == 1
           and (case.max_stderr_lines is None or len(lines) <= case.max_stderr_lines))
    message = next((line for line in lines if ERROR_LINE.match(line)), "")
    return Outcome(
        case, proc.returncode, one, bool(re.search(case.says, message)), (folder / MARKER).exists(),
        changed=[name for name, digest in before.items() if after.get(name) != digest],
        present=[str(p.relative_to(folder)) for pattern in case.absent for p in folder.glob(pattern)],
        seconds=seconds, stderr=proc.stderr,
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="only the cases without a training run first")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these cases")
    parser.add_argument("--keep", type=Path, help="plant the cases in folders under this one and keep them")
    args = parser.parse_args(argv)
    names = {case.name for case in CASES}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"no case named {', '.join(unknown)}; the cases are {', '.join(sorted(names))}")
    cases = [c for c in CASES if (not args.fast or c.fast) and (not args.only or c.name in args.only)]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="zoo-faults-") as scratch:
        base = args.keep or Path(scratch)
        for case in cases:
            folder = base / case.name
            folder.mkdir(parents=True)
            outcome = run_case(case, folder)
            outcomes.append(outcome)
            print(outcome.line(), flush=True)
            if not outcome.ok:
                print("    " + "\n    ".join(outcome.stderr.strip().splitlines()[-6:]), flush=True)
    failed = [o.case.name for o in outcomes if not o.ok]
    print(f"{len(outcomes)} cases: {len(outcomes) - len(failed)} as expected, "
          f"{sum(not o.one_message for o in outcomes)} without one message (tracebacks: "
          f"{sum('Traceback' in o.stderr for o in outcomes)}), {sum(o.code_ran for o in outcomes)} ran planted code, "
          f"{sum(bool(o.changed) for o in outcomes)} changed files"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
