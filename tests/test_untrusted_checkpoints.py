"""A pickled checkpoint that would run code stays refused by default, with the zoo's own message naming
``--weights_only false`` as the explicit, risky choice (issue 21 item 6; zoo/checkpoint_trust.py)."""

from __future__ import annotations

import builtins
import os
import pickle
import re

import lightning as L
import pytest
import torch

from datamodules import MNISTDataModule
from tests.helpers import ok, run_zoo
from zoo import evaluation, export
from zoo.checkpoint_trust import UntrustedCheckpointError, check_subcommand_checkpoint, untrusted_globals
from zoo.errors import ZooError
from zoo.models import LeNet

MARKER = "untrusted code ran"


class Payload:
    """Unpickles by calling ``print(MARKER)``: any function could stand there, e.g. ``os.system``."""

    def __reduce__(self):
        return (builtins.print, (MARKER,))


@pytest.fixture(scope="module")
def checkpoints(mnist_root, tmp_path_factory):
    """A real LeNet checkpoint of one training step, and the same file with a payload added to its pickle."""
    folder = tmp_path_factory.mktemp("ckpts")
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(LeNet(), datamodule=MNISTDataModule(root=str(mnist_root), batch_size=16))
    good = folder / "good.ckpt"
    trainer.save_checkpoint(good)
    state = torch.load(good, map_location="cpu", weights_only=True)
    state["extra"] = Payload()
    bad = folder / "bad.ckpt"
    torch.save(state, bad)
    return good, bad


def test_the_check_reads_the_pickle_without_running_it(checkpoints, capsys):
    good, bad = checkpoints
    assert untrusted_globals(good) == []
    assert untrusted_globals(bad) == ["builtins.print"]
    assert MARKER not in capsys.readouterr().out
    not_zip = good.parent / "legacy.ckpt"
    torch.save({"w": torch.zeros(1)}, not_zip, _use_new_zipfile_serialization=False)
    assert untrusted_globals(not_zip) is None  # left to torch.load(weights_only=True)


def test_the_subcommand_check_refuses_unless_weights_only_is_false(checkpoints):
    good, bad = checkpoints
    for weights_only in (None, True):
        with pytest.raises(UntrustedCheckpointError, match=rf"refusing to load the checkpoint {bad}: .*builtins\.print"
                                                           r".*pass --weights_only false .*risky"):
            check_subcommand_checkpoint({"ckpt_path": str(bad), "weights_only": weights_only})
    check_subcommand_checkpoint({"ckpt_path": str(bad), "weights_only": False})  # the user's explicit choice
    check_subcommand_checkpoint({"ckpt_path": str(good), "weights_only": None})
    check_subcommand_checkpoint({"ckpt_path": "last", "weights_only": None})  # Lightning resolves it in the run
    remote = {"ckpt_path": "https://example.org/model.ckpt", "weights_only": None}
    check_subcommand_checkpoint(remote)
    assert remote["weights_only"] is True  # Lightning would load a remote checkpoint with weights_only=False
    assert issubclass(UntrustedCheckpointError, ZooError) and issubclass(UntrustedCheckpointError,
                                                                         pickle.UnpicklingError)


def test_zoo_test_refuses_the_pickle_and_runs_it_only_when_told(checkpoints, mnist_root, tmp_path):
    from lightning.pytorch.cli import LightningCLI

    from zoo.checkpoint_trust import RefuseUntrustedCkptPath

    # the check runs in the hook before the LightningCLI method that first loads --ckpt_path: it must still exist
    assert callable(getattr(LightningCLI, "_parse_ckpt_path", None)) and "before_reading_ckpt_path" in vars(
        RefuseUntrustedCkptPath)
    _, bad = checkpoints
    args = ("test", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root", str(mnist_root),
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", str(bad))
    refused = run_zoo(*args)
    assert refused.returncode != 0
    assert f"refusing to load the checkpoint {bad}" in refused.stderr and "--weights_only false" in refused.stderr
    assert MARKER not in refused.stdout + refused.stderr
    accepted = ok(run_zoo(*args, "--weights_only", "false"))
    assert MARKER in accepted.stdout and "test/acc" in accepted.stdout


def test_zoo_export_and_evaluate_refuse_the_pickle(checkpoints, tmp_path, capsys):
    _, bad = checkpoints
    accept = "zoo export and zoo evaluate read weights-only checkpoints alone"
    with pytest.raises(UntrustedCheckpointError, match=accept):
        export.export("lenet_mnist5k", str(bad), fit_command="", out_dir=tmp_path)
    with pytest.raises(UntrustedCheckpointError, match=accept):
        evaluation.evaluate("lenet_mnist5k", str(bad))
    assert MARKER not in capsys.readouterr().out and not os.listdir(tmp_path)


def damaged_copies(good, folder):
    """Two files no reader can use: ``good`` cut in half, and bytes that were never a checkpoint."""
    truncated, garbage = folder / "truncated.ckpt", folder / "garbage.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage.write_bytes(b"not a checkpoint\n" * 10)
    return truncated, garbage


def test_every_reader_names_a_damaged_checkpoint_and_the_fix_and_leaves_it_as_it_is(checkpoints, tmp_path):
    from zoo import hub

    good, _ = checkpoints
    out = tmp_path / "out"
    out.mkdir()
    for damaged in damaged_copies(good, tmp_path):
        before = damaged.read_bytes()
        readers = {  # the reader, then the fix its message must give
            "zoo export": (lambda: export.export("lenet_mnist5k", str(damaged), fit_command="", out_dir=out),
                           "Pass the .ckpt a `zoo fit -c lenet_mnist5k` run wrote"),
            "zoo evaluate": (lambda: evaluation.evaluate("lenet_mnist5k", str(damaged)),
                             "Pass the .ckpt a `zoo fit -c lenet_mnist5k` run wrote"),
            "zoo predict <ckpt>": (lambda: hub.load_run(str(damaged)), "Pass a .ckpt that `zoo fit` wrote"),
        }
        for name, (read, fix) in readers.items():
            with pytest.raises(ZooError, match=rf"cannot read the checkpoint {damaged}.*(damaged|truncated).*"
                                               rf"{re.escape(fix)}"):
                read()
        assert damaged.read_bytes() == before and not os.listdir(out)


def test_zoo_validate_and_predict_name_a_damaged_checkpoint_in_one_message(checkpoints, mnist_root, tmp_path):
    good, _ = checkpoints
    truncated, garbage = damaged_copies(good, tmp_path)
    validate = run_zoo("validate", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root",
                       str(mnist_root), "--trainer.logger", "false", "--ckpt_path", str(truncated))
    assert validate.returncode == 2 and "Traceback" not in validate.stderr
    assert f"cannot read the checkpoint {truncated}" in validate.stderr
    assert "Pass another --ckpt_path (`zoo fit` writes them" in validate.stderr
    predict = run_zoo("predict", str(garbage), str(tmp_path))
    assert predict.returncode == 2 and "Traceback" not in predict.stderr
    assert f"cannot read the checkpoint {garbage} (not a zip archive" in predict.stderr
