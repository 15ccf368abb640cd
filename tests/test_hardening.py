"""Nothing a file or a user types can run code, lose a run, or end in a traceback (issue 33).

Fixtures are written here in the real on-disk formats (CIFAR-10 pickles, IDX, CSV, CoNLL-U, Lightning
checkpoints) with one fault each; ``scripts/reproductions/fault_cases.py`` plants the same faults for a real ``zoo``
command.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from datamodules import (
    AirlinePassengersDataModule,
    CIFAR10DataModule,
    CorruptDatasetError,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    MNISTDataModule,
    MovingMNISTDataModule,
    PolynomialDataModule,
    ShakespeareTrigramDataModule,
    UDPosDataModule,
)
from datamodules._paths import LabelOutOfRangeError
from datamodules._safe_pickle import UnsafePickleError
from datamodules._safe_pickle import load as safe_load
from datamodules.airline import read_series_csv
from scripts.reproductions import fault_cases
from scripts.reproductions import kill_resume_trials as trials
from tests.helpers import REPO, ok, run_zoo, write_cifar10, write_mnist_family
from zoo import cli, errors, resume
from zoo.callbacks import StopOnNonFiniteLoss, TrainingDivergedError
from zoo.checkpoint_trust import read_checkpoint
from zoo.models import LeNet

SYSTEM = f"{os.system.__module__}.system"  # how a pickle names os.system


# ------------------------------------------------------------------------------------------------ no code from data
@pytest.mark.parametrize("name", ["data_batch_3", "test_batch", "batches.meta"])
def test_a_planted_cifar_pickle_is_refused_before_its_code_runs(tmp_path, name):
    root = write_cifar10(tmp_path / "data", per_batch=4)
    path = root / "cifar-10-batches-py" / name
    path.write_bytes(fault_cases.planted_pickle(tmp_path))
    with pytest.raises(UnsafePickleError, match=f"{re.escape(str(path))} is not a CIFAR-10 batch file from the "
                                                f"official archive: it names the global {SYSTEM}") as caught:
        CIFAR10DataModule(root=str(root), val_size=4).setup()
    assert not (tmp_path / fault_cases.MARKER).exists()
    assert "download=True" in str(caught.value) and errors.is_deliberate(caught.value)


def test_the_restricted_unpickler_reads_numpy_arrays_and_refuses_any_other_global(tmp_path):
    path = tmp_path / "batch"
    entry = {"data": np.arange(12, dtype=np.uint8).reshape(2, 6), "labels": [3, 4], "batch_label": "b"}
    path.write_bytes(pickle.dumps(entry, protocol=2))  # as Python 3 writes the format: _codecs.encode for bytes
    loaded = safe_load(path, "a batch", "Replace it.")
    assert np.array_equal(loaded["data"], entry["data"]) and loaded["labels"] == [3, 4]
    path.write_bytes(pickle.dumps({"labels": [1], "how": eval}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"it names the global (__builtin__|builtins)\.eval.*Replace it\."):
        safe_load(path, "a batch", "Replace it.")


# ------------------------------------------------------------------------------------------------ failed downloads
OFFLINE = [  # (datamodule, what it downloads with, the name its message gives the dataset)
    (lambda root: MNISTDataModule(root=root, download=True), "torchvision.datasets.MNIST.download", "MNIST"),
    (lambda root: CIFAR10DataModule(root=root, download=True), "datamodules.cifar10.LocalCIFAR10.download",
     "CIFAR-10"),
    (lambda root: UDPosDataModule(root=root, download=True), "datamodules.ud_pos.download_url", "Universal Dep"),
    (lambda root: MovingMNISTDataModule(root=root, source="torchvision", download=True),
     "torchvision.datasets.MovingMNIST.download", "MovingMNIST"),
]


@pytest.mark.parametrize("make, downloader, name", OFFLINE, ids=[case[2] for case in OFFLINE])
def test_a_failed_download_says_why_before_the_other_fixes(tmp_path, monkeypatch, make, downloader, name):
    def offline(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(downloader, offline)
    with pytest.raises(DatasetNotFoundError, match=rf"(?s)the download failed \(OSError: \[Errno 101\] Network is "
                                                   rf"unreachable\); check the internet connection.*\n{name}.* not "
                                                   rf"found in .*How to fix: "):
        make(str(tmp_path)).prepare_data()


# ------------------------------------------------------------------------------------------------ labels, empty files
@pytest.fixture
def mnist_raw(tmp_path) -> Path:
    return write_mnist_family(tmp_path / "data", "MNIST", n_train=40, n_test=20) / "MNIST" / "raw"


def test_an_mnist_label_outside_the_classes_is_named_with_the_fix(mnist_raw):
    fault_cases.idx_label(12)(mnist_raw)
    path = mnist_raw / "train-labels-idx1-ubyte"
    with pytest.raises(LabelOutOfRangeError, match=f"{re.escape(str(path))} holds the label 12 .*classes 0-9") as err:
        MNISTDataModule(root=str(mnist_raw.parent.parent)).setup("fit")
    assert isinstance(err.value, ValueError) and "download=True" in str(err.value)


def test_an_mnist_file_without_items_is_named(mnist_raw):
    fault_cases.no_images(mnist_raw)
    with pytest.raises(CorruptDatasetError, match="train-images-idx3-ubyte is damaged: it holds no items"):
        MNISTDataModule(root=str(mnist_raw.parent.parent)).setup("fit")


@pytest.mark.parametrize("label", [10, -1])
def test_a_cifar_label_outside_0_to_9_is_named_with_the_fix(tmp_path, label):
    root = fault_cases.cifar(tmp_path, "data_batch_2", fault_cases.cifar_batch([1, label, 3]))
    with pytest.raises(LabelOutOfRangeError, match=f"data_batch_2 holds the label {label} \\(image 1; 1 labels") as err:
        CIFAR10DataModule(root=str(root), val_size=4).setup("fit")
    assert isinstance(err.value, ValueError) and "cifar-10-python.tar.gz" in str(err.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "n/a", ""])
def test_an_airline_value_that_is_not_a_finite_number_is_named_with_its_row(tmp_path, value):
    path = tmp_path / "series.csv"
    path.write_bytes(fault_cases.airline_rows(value))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, row 6: expected a finite number .*{value!r}"):
        AirlinePassengersDataModule(csv_path=str(path))


def test_an_airline_csv_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "series.csv"
    path.write_bytes(b"Month,Passengers\n1949-01,\xff112\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is not UTF-8 text .*csv_path=None"):
        AirlinePassengersDataModule(csv_path=str(path))
    assert read_series_csv("Month,Passengers\n1949-01,112\n1949-02,118\n")[1].tolist() == [112.0, 118.0]


# ------------------------------------------------------------------------------------------------ bad option values
@pytest.mark.parametrize("make", [
    lambda: MNISTDataModule(batch_size=0),
    lambda: MNISTDataModule(first_epoch_batch_size=0),
    lambda: FashionMNISTDataModule(batch_size=-3),
    lambda: CIFAR10DataModule(batch_size=0),
    lambda: AirlinePassengersDataModule(batch_size=0),
    lambda: MovingMNISTDataModule(batch_size=0),
    lambda: ShakespeareTrigramDataModule(batch_size=0),
    lambda: UDPosDataModule(batch_size=0),
    lambda: PolynomialDataModule(batch_size=0),
], ids=["mnist", "mnist-first-epoch", "fashion", "cifar10", "airline", "moving-mnist", "shakespeare", "ud", "poly"])
def test_every_datamodule_refuses_a_batch_size_below_1(make):
    with pytest.raises(ValueError, match=r"^(first_epoch_)?batch_size must be a whole number of at least 1 .* "
                                         r"e\.g\. (first_epoch_)?batch_size=32$"):
        make()


@pytest.mark.parametrize("name, value", [("lr", -1.0), ("momentum", -0.5), ("weight_decay", -1e-4), ("lr", math.nan)])
def test_negative_optimizer_values_are_refused(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be 0 or more, got {value}"):
        LeNet(**{name: value})
    LeNet(lr=0.0, momentum=0.0, weight_decay=0.0)


def test_lightning_refusals_and_zoo_errors_wrapped_by_jsonargparse_are_deliberate():
    assert errors.is_deliberate(MisconfigurationException("`max_epochs` must be a non-negative integer"))

    def check() -> None:
        raise ValueError("a check outside the zoo's packages")  # as torch or any library raises it

    with pytest.raises(ValueError) as caught:
        LeNet(lr=-1)
    zoo_error = caught.value
    try:
        raise ValueError("Does not validate against any of the Union subtypes") from zoo_error
    except ValueError as wrapper:
        assert not errors.is_deliberate(wrapper) and errors.deliberate_cause(wrapper) is zoo_error
    try:
        check()
    except ValueError as bug:
        assert errors.deliberate_cause(bug) is None


BAD_VALUES = [case for case in fault_cases.CASES if case.max_stderr_lines and case.fast] + [
    case for case in fault_cases.CASES if case.name == "devices-0"]


@pytest.mark.parametrize("case", BAD_VALUES, ids=[case.name for case in BAD_VALUES])
def test_a_bad_value_on_the_command_line_ends_in_one_message_with_status_2(tmp_path, case):
    outcome = fault_cases.run_case(case, tmp_path)
    assert outcome.status == 2 and "Traceback" not in outcome.stderr, outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) <= 3 and outcome.ok, outcome.stderr


def test_zoo_debug_keeps_the_traceback_of_a_refused_value(tmp_path):
    proc = run_zoo("fit", "-c", "lenet_mnist_mini", *fault_cases.FAST_RUN, "--data.init_args.batch_size", "0",
                   cwd=tmp_path, env={"ZOO_DEBUG": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "batch_size must be a whole number" in proc.stderr


# ------------------------------------------------------------------------------------------------ no run lost or mixed
def fit_section(root: Path, **trainer: object) -> Namespace:
    return Namespace(trainer=Namespace(default_root_dir=str(root), logger=None, **trainer), ckpt_path=None)


def test_a_fresh_run_claims_the_next_free_version_directory(tmp_path):
    (tmp_path / "lightning_logs" / "version_4").mkdir(parents=True)  # a run already there
    first, second = fit_section(tmp_path), fit_section(tmp_path)
    assert resume.claim_run_directory(first) == tmp_path / "lightning_logs" / "version_5"
    assert resume.claim_run_directory(second) == tmp_path / "lightning_logs" / "version_6"
    assert (first.trainer.logger.init_args.version, second.trainer.logger.init_args.version) == (5, 6)
    assert resume.claim_run_directory(fit_section(tmp_path, fast_dev_run=True)) is None  # it logs nothing
    resume.release_run_directory(tmp_path / "lightning_logs" / "version_6")
    (tmp_path / "lightning_logs" / "version_5" / "config.yaml").write_text("")
    resume.release_run_directory(tmp_path / "lightning_logs" / "version_5")  # not empty: kept
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_4", "version_5"]
    alone = resume.claim_run_directory(fit_section(tmp_path / "new"))
    resume.release_run_directory(alone)  # a failed first run leaves no empty folders behind
    assert not (tmp_path / "new" / "lightning_logs").exists()


@pytest.mark.slow
def test_two_runs_started_together_in_one_root_get_their_own_run_directories(tmp_path):
    command = [sys.executable, "-m", "zoo", "fit", "-c", "lenet_mnist_mini", *fault_cases.SHORT_RUN,
               "--trainer.default_root_dir", str(tmp_path)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    for run in runs:
        output = run.communicate(timeout=300)[0]
        assert run.returncode == 0, output[-3000:]
    versions = sorted((tmp_path / "lightning_logs").iterdir())
    assert [v.name for v in versions] == ["version_0", "version_1"]
    for version in versions:
        assert not (version / "results.json.partial").exists()
        results = json.loads((version / "results.json").read_text())
        assert results["last_checkpoint"] == str(version / "checkpoints" / "last.ckpt")
        # the saved config keeps the logger as configured: run again, it claims a new directory
        assert yaml.safe_load((version / "config.yaml").read_text())["trainer"]["logger"] is None


def saved_checkpoint(path: Path, model: dict, data: dict) -> Path:
    torch.save({"hyper_parameters": model, "datamodule_hyper_parameters": data, "state_dict": {}}, path)
    return path


LENET = {"_class_path": "zoo.models.LeNet", "lr": 0.01, "betas": (0.9, 0.999), "_instantiator": "x"}
MINI = {"_class_path": "datamodules.EmbeddedMNISTDataModule", "batch_size": 32, "num_workers": 0}


def section(model_class: str, data_class: str, lr: float = 0.01, num_workers: int = 0) -> dict:
    return {"model": {"class_path": model_class, "init_args": {"lr": lr, "betas": [0.9, 0.999]}},
            "data": {"class_path": data_class, "init_args": {"batch_size": 32, "num_workers": num_workers}}}


def test_a_checkpoint_of_another_model_or_entry_is_refused_with_the_fix(tmp_path):
    path = str(saved_checkpoint(tmp_path / "last.ckpt", LENET, MINI))
    checkpoint = read_checkpoint(path, "")
    with pytest.raises(resume.ResumeMismatchError, match=f"--ckpt_path last found {re.escape(path)}: a run of "
                       "zoo.models.LeNet on datamodules.EmbeddedMNISTDataModule, but this command trains "
                       "zoo.models.BookCNN on datamodules.MNISTDataModule.*--trainer.default_root_dir"):
        resume.refuse_other_run(path, checkpoint, section("zoo.models.BookCNN", "datamodules.MNISTDataModule"), True)
    with pytest.raises(resume.ResumeMismatchError, match="leave out --ckpt_path"):
        resume.refuse_other_run(path, checkpoint, section("zoo.models.LeNet", "datamodules.MNISTDataModule"), False)
    # the same classes under another import path, and what may change on resume (num_workers) pass
    resume.refuse_other_run(path, checkpoint, section("zoo.models.small_classifiers.LeNet",
                                                      "datamodules.EmbeddedMNISTDataModule", num_workers=2), True)


def test_validate_test_predict_refuse_the_run_of_another_entry_and_take_other_data_or_a_subclass(tmp_path):
    """``zoo test -c <entry> --ckpt_path`` of a run whose model and datamodule both differ (another entry's run) is
    refused; a run of the entry's model tested on other data, or of another model on the entry's data (a subclass),
    is the user's choice."""
    path = str(saved_checkpoint(tmp_path / "run.ckpt", LENET, MINI))
    checkpoint = read_checkpoint(path, "")
    with pytest.raises(resume.ResumeMismatchError, match=f"--ckpt_path {re.escape(path)}: a run of zoo.models.LeNet "
                       "on datamodules.EmbeddedMNISTDataModule, but this command's config has zoo.models.LSTMTagger "
                       "on datamodules.UDPosDataModule: the checkpoint belongs to another zoo entry. Pass the config "
                       "of the run .`zoo test -c <run folder>/config.yaml"):
        resume.refuse_run_of_another_entry(path, checkpoint, section("zoo.models.LSTMTagger",
                                                                     "datamodules.UDPosDataModule"), "test")
    resume.refuse_run_of_another_entry(path, checkpoint, section("zoo.models.LeNet", "datamodules.MNISTDataModule"),
                                       "test")
    resume.refuse_run_of_another_entry(path, checkpoint, section("my_models.MyLeNet",
                                                                 "datamodules.EmbeddedMNISTDataModule"), "predict")


@pytest.mark.slow
def test_ckpt_path_last_and_best_of_validate_test_predict_are_the_newest_runs_checkpoints(tmp_path):
    """Lightning resolves ``last``/``best`` from a fit in the same process; in ``zoo test`` alone it found none and
    tested the untrained model. The zoo resolves them like ``zoo fit --ckpt_path last``: the newest run's file."""
    ok(run_zoo("fit", "-c", "lenet_mnist_mini", *fault_cases.SHORT_RUN, cwd=tmp_path))
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    for subcommand, name in (("test", "last"), ("validate", "best")):
        proc = ok(run_zoo(subcommand, "-c", "lenet_mnist_mini", "--ckpt_path", name, "--trainer.limit_val_batches",
                          "1", "--trainer.limit_test_batches", "1", cwd=tmp_path))
        newest = max(checkpoints.glob(f"{name}*.ckpt"), key=lambda p: p.stat().st_mtime)
        assert f"--ckpt_path {name}: zoo {subcommand} of {newest}" in proc.stdout + proc.stderr
        assert "no last checkpoint available" not in proc.stdout + proc.stderr


def test_a_resume_that_changes_a_hyperparameter_is_refused_naming_the_key_and_both_values(tmp_path):
    path = saved_checkpoint(tmp_path / "last.ckpt", LENET, MINI)
    with pytest.raises(resume.ResumeMismatchError, match=r"--model.init_args.lr is 0.5 here, 0.01 in the checkpoint"
                                                         r".*another --trainer.default_root_dir"):
        resume.refuse_other_run(str(path), read_checkpoint(str(path), ""),
                                section("zoo.models.LeNet", "datamodules.EmbeddedMNISTDataModule", lr=0.5), True)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(errors.ZooError, match="cannot read the checkpoint .*last.ckpt .*Pass another --ckpt_path"):
        read_checkpoint(str(path), "Pass another --ckpt_path")


@pytest.mark.slow
def test_ckpt_path_last_refuses_another_entry_and_changed_values_before_writing_anything(tmp_path):
    ok(run_zoo("fit", "-c", "lenet_mnist_mini", *fault_cases.SHORT_RUN, cwd=tmp_path))
    before = fault_cases.hashes(tmp_path)
    for options, says in ((["-c", "cnn_mnist"], "a run of zoo.models.LeNet on datamodules.EmbeddedMNISTDataModule"),
                          (["-c", "lenet_mnist_mini", "--model.init_args.lr", "0.5"], "lr is 0.5 here, 0.01 in")):
        proc = run_zoo("fit", *options, *fault_cases.SHORT_RUN, "--ckpt_path", "last", cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and says in proc.stderr, proc.stderr
        assert fault_cases.hashes(tmp_path) == before
    # trainer options are not the checkpoint's: a longer run resumes the same run directory
    ok(run_zoo("fit", "-c", "lenet_mnist_mini", *fault_cases.SHORT_RUN, "--trainer.max_epochs", "2", "--ckpt_path",
               "last", cwd=tmp_path))
    results = json.loads((tmp_path / "lightning_logs" / "version_0" / "results.json").read_text())
    assert results["epochs"] == 2 and results["resumed_from"].endswith("version_0/checkpoints/last.ckpt")


def test_a_diverged_run_stops_with_one_message_and_no_best_checkpoint(tmp_path):
    proc = run_zoo("fit", "-c", "lenet_mnist_mini", *fault_cases.SHORT_RUN, "--trainer.limit_train_batches", "5",
                   "--model.init_args.lr", "1e30", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"zoo fit: error: the training loss became nan or infinite at step \d+ .*Lower the learning "
                     r"rate \(--model.init_args.lr, 1e\+30 now\)", proc.stderr), proc.stderr
    assert not list(tmp_path.rglob("best*.ckpt")) and not list(tmp_path.rglob("results.json"))


def test_the_divergence_check_read_every_n_steps_names_the_first_non_finite_step():
    callback = StopOnNonFiniteLoss(check_every_n_steps=4, read_every_step=False)
    trainer = SimpleNamespace(global_step=0, current_epoch=3, strategy=SimpleNamespace(reduce=lambda t, reduce_op: t))
    model = SimpleNamespace(hparams={"lr": 0.5})
    for batch_idx, loss in enumerate([1.0, 2.0, math.inf, 1.0]):
        trainer.global_step += 1
        if batch_idx < 3:  # not read yet
            callback.on_train_batch_end(trainer, model, {"loss": torch.tensor(loss)}, None, batch_idx)
            continue
        with pytest.raises(TrainingDivergedError, match=r"at step 3 \(epoch 3, batch 2\).*lr, 0.5 now"):
            callback.on_train_batch_end(trainer, model, {"loss": torch.tensor(loss)}, None, batch_idx)
    callback.on_train_batch_end(trainer, model, None, None, 4)  # manual optimization: no loss to check
    callback.on_validation_start(trainer, model)  # nothing left unread


# ------------------------------------------------------------------------------------------------ exact tagger resume
LEXICON = [("the", "DET"), ("a", "DET"), ("dog", "NOUN"), ("cats", "NOUN"), ("Paris", "PROPN"), ("runs", "VERB"),
           ("saw", "VERB"), ("quickly", "ADV"), ("big", "ADJ"), ("in", "ADP"), ("and", "CCONJ"), ("she", "PRON"),
           (".", "PUNCT")]


def write_treebank(root: Path, train_sentences: int = 40, seed: int = 0) -> Path:
    """``en_ewt-ud-{train,dev,test}.conllu`` of random sentences (3-8 words) over a small tagged vocabulary."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train_sentences), ("dev", 8), ("test", 8)):
        lines = []
        for number in range(count):
            words = [rng.choice(LEXICON) for _ in range(rng.randint(3, 8))]
            lines += [f"# sent_id = {split}-{number}"]
            lines += [f"{i}\t{word}\t{word.lower()}\t{tag}\t_\t_\t0\tdep\t_\t_"
                      for i, (word, tag) in enumerate(words, 1)]
            lines += [""]
        (root / f"en_ewt-ud-{split}.conllu").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tagger_runs(tmp_path_factory) -> tuple[list[str], Path]:
    """A small tagger (character BiLSTM, 2-layer word BiLSTM, dropout, word dropout, step LR) on a 40-sentence
    treebank, 2 epochs of 10 steps, and its uninterrupted run."""
    base = tmp_path_factory.mktemp("tagger")
    treebank = write_treebank(base / "ud")
    datamodule = UDPosDataModule(root=str(treebank), min_word_count=1)
    datamodule.setup()
    num_words, num_chars = datamodule.vocab_sizes
    run = ["-c", "pos_tagger_ud_ewt", "--data.init_args.root", str(treebank), "--data.init_args.min_word_count", "1",
           "--data.init_args.batch_size", "4", "--model.init_args.num_words", str(num_words),
           "--model.init_args.num_chars", str(num_chars), "--model.init_args.word_dim", "8",
           "--model.init_args.char_dim", "6", "--model.init_args.char_hidden", "6",
           "--model.init_args.hidden_size", "8"]
    trials.run_to_end(trials.fit_command(run, base / "reference", 2, 3), base / "reference.log")
    return run, base / "reference"


@pytest.mark.slow
@pytest.mark.parametrize("count, saved", [(5, 3), (14, 12)])  # killed in epoch 0 and in epoch 1, mid-epoch
def test_a_tagger_killed_mid_epoch_resumes_to_the_uninterrupted_run_bit_for_bit(tagger_runs, tmp_path, count, saved):
    run, reference = tagger_runs
    command = trials.fit_command(run, tmp_path / "run", 2, 3)
    killed = subprocess.run(command + [f"--trainer.callbacks+={trials.KILL_AT}", "--trainer.callbacks.moment",
                                       "train_step", "--trainer.callbacks.count", str(count)],
                            env=trials.environment(), cwd=REPO, capture_output=True)
    assert killed.returncode == -9
    last = torch.load(trials.last_checkpoint(tmp_path / "run"), map_location="cpu", weights_only=True)
    assert last["global_step"] == saved  # every 3 steps: a checkpoint mid-epoch
    trials.run_to_end(command + ["--ckpt_path", "last"], tmp_path / "resumed.log")
    assert trials.compare(reference, tmp_path / "run") == (0.0, [])


# ------------------------------------------------------------------------------------------------ the fault script
FAST_CASES = [case for case in fault_cases.CASES if case.fast and case not in BAD_VALUES]


@pytest.mark.parametrize("case", FAST_CASES, ids=[case.name for case in FAST_CASES])
def test_fault_case(tmp_path, case):
    outcome = fault_cases.run_case(case, tmp_path)
    assert outcome.ok, f"{outcome.line()}\n{outcome.stderr[-3000:]}"


def test_the_fault_script_reports_a_case_that_does_not_refuse(tmp_path, capsys):
    listing = fault_cases.Case("lists-the-models", lambda folder: ["models"], "error")  # exits 0: not a refusal
    outcome = fault_cases.run_case(listing, tmp_path)
    assert not outcome.ok and outcome.status == 0 and outcome.line().startswith("FAIL")
    assert fault_cases.main(["--only", "unknown-entry"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary == ("1 cases: 1 as expected, 0 without one message (tracebacks: 0), 0 ran planted code, "
                       "0 changed files")


def test_errors_name_options_as_the_user_passes_them():
    """The ``zoo`` command's messages name its flags; a Python caller's name the constructor keywords."""
    try:
        assert errors.option("data", "download", True) == "download=True"
        assert errors.option("model", "lr") == "lr"
        assert errors.option("trainer", "max_epochs", 3) == "Trainer(max_epochs=3)"
        assert errors.option("model", "image_size", 32, "LeNet") == "LeNet(image_size=32)"
        with pytest.raises(ValueError, match=r"^batch_size must .* e\.g\. batch_size=32$"):
            MNISTDataModule(batch_size=0)
        assert errors.name_command_line_options() is False
        assert errors.option("data", "download", True) == "--data.init_args.download true"
        assert errors.option("data", "split_by", "paragraphs") == "--data.init_args.split_by paragraphs"
        assert errors.option("model", "lr") == "--model.init_args.lr"
        assert errors.option("trainer", "max_epochs", 3) == "--trainer.max_epochs 3"
        assert errors.option("model", "image_size", 32, "LeNet") == "--model.init_args.image_size 32"
        with pytest.raises(ValueError, match=r"^--data.init_args.batch_size must .* "
                                             r"e\.g\. --data.init_args.batch_size 32$"):
            MNISTDataModule(batch_size=0)
    finally:
        errors.name_command_line_options(False)
    assert cli.main(["models"]) == 0 and errors.option("model", "lr") == "lr"  # the command restores the naming


def test_the_zoo_command_names_its_flags_in_an_error(tmp_path):
    proc = run_zoo("fit", "-c", "lenet_mnist_mini", *fault_cases.FAST_RUN, "--data.init_args.batch_size", "0",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "--data.init_args.batch_size must be a whole number of at least 1" in proc.stderr
