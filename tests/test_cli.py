"""`zoo` command round trips through subprocesses: fit, test, print_config, entries, DDP, bf16, resume."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import REPO, ok, run_zoo
from zoo.cli import main
from zoo.models import LeNet


def fit_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "fit", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root", str(root),
        "--data.init_args.batch_size", "32", "--trainer.default_root_dir", str(out),
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false", *extra,
    ]


def test_fit_fast_dev_run(mnist_root, tmp_path):
    ok(run_zoo(*fit_args(mnist_root, tmp_path, "--trainer.fast_dev_run", "1")))


def test_print_config_resolves_entry_names():
    proc = ok(run_zoo("fit", "-c", "lenet_mnist_mini", "--print_config"))
    config = yaml.safe_load(proc.stdout)
    assert config["model"]["class_path"] == "zoo.models.LeNet"
    assert config["data"]["class_path"] == "datamodules.EmbeddedMNISTDataModule"
    assert config["checkpoint"]["save_last"] is True


def test_entry_yaml_path_and_name_are_the_same_run():
    by_name = ok(run_zoo("fit", "-c", "cnn_mnist5k", "--print_config")).stdout
    by_path = ok(run_zoo("fit", "-c", str(REPO / "zoo/configs/cnn_mnist5k.yaml"), "--print_config")).stdout
    assert by_name == by_path


def test_unknown_entry_lists_known_ones():
    proc = run_zoo("fit", "-c", "no_such_model")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no zoo entry named 'no_such_model'" in proc.stderr and "lenet_mnist_mini" in proc.stderr


def test_misspelt_entry_suggests_the_nearest_names_in_one_message():
    proc = run_zoo("fit", "-c", "lenet_mnst")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("zoo fit: error: no zoo entry named 'lenet_mnst'; did you mean 'lenet_mnist'")
    debug = run_zoo("fit", "-c", "lenet_mnst", env={"ZOO_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UnknownEntryError" in debug.stderr


def test_missing_dataset_is_one_message_with_status_2(tmp_path):
    proc = run_zoo("fit", "-c", "lenet_mnist", "--trainer.logger", "false",
                   "--trainer.default_root_dir", str(tmp_path), env={"ZOO_DATA_DIR": str(tmp_path / "none")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"MNIST not found in {tmp_path / 'none' / 'MNIST' / 'raw'}" in proc.stderr
    assert "How to fix" in proc.stderr and "ZOO_DEBUG=1" in proc.stderr


def test_bad_config_key_is_named():
    proc = run_zoo("fit", "-c", "lenet_mnist_mini", "--model.init_args.hiden", "3", "--print_config")
    assert proc.returncode == 2 and "hiden" in proc.stderr
    assert "zoo fit: error:" in proc.stderr and "zoo fit --help" in proc.stderr
    assert len(proc.stderr.splitlines()) < 20  # the message, not LightningCLI's 60 lines of usage


def test_wrong_input_shape_is_a_deliberate_error_and_a_library_failure_is_not():
    from zoo import errors
    from zoo.models import LeNet

    with pytest.raises(ValueError) as shape_error:
        LeNet()(torch.zeros(2, 3, 28, 28))
    assert errors.is_deliberate(shape_error.value) and "expects input of shape (N, 1, 28, 28)" in str(shape_error.value)
    with pytest.raises(RuntimeError) as library_error:
        torch.zeros(2).view(3)
    assert not errors.is_deliberate(library_error.value)


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["evaluate", "--help"], ["export", "--help"]])
def test_light_subcommands_start_without_torch_or_lightning(argv):
    code = (
        "import sys\nfrom zoo.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules)\n"
        "print('heavy modules:', heavy)\n" % (argv,)
    )
    proc = ok(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60))
    assert "heavy modules: []" in proc.stdout


def test_zoo_help_and_zoo_predict_help_name_predicting_on_your_own_files(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "zoo predict ENTRY|RUN.ckpt PATH ..." in capsys.readouterr().out
    lightning_help = " ".join(ok(run_zoo("predict", "--help")).stdout.split())  # LightningCLI's (-c, --ckpt_path)
    assert "--ckpt_path" in lightning_help and "zoo predict ENTRY|RUN.ckpt PATH ..." in lightning_help
    assert "usage: zoo predict [-h]" in ok(run_zoo("predict", "lenet_mnist", "--help")).stdout  # the mode named


def test_models_lists_entries():
    proc = ok(run_zoo("models"))
    assert "lenet_mnist_mini" in proc.stdout and "EmbeddedMNISTDataModule" in proc.stdout


def test_subclass_through_the_cli(mnist_root, tmp_path):
    args = fit_args(mnist_root, tmp_path, "--trainer.fast_dev_run", "1")
    args[2] = "tests.helpers.custom_models.WideLeNet"  # importable: `zoo fit` runs from the repository root
    ok(run_zoo(*args, "--model.init_args.width", "32"))


def test_checkpoints_best_last_test_and_resume(mnist_root, tmp_path):
    ok(run_zoo(*fit_args(mnist_root, tmp_path, "--trainer.max_epochs", "2")))
    ckpts = sorted(p.name for p in tmp_path.rglob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts), ckpts
    last = next(tmp_path.rglob("last.ckpt"))

    # a Lightning checkpoint loads with torch's safe unpickler, and rebuilds the same model
    state = torch.load(last, map_location="cpu", weights_only=True)
    # last.ckpt is the state once training completed: 2 epochs done (180 images / 32 per batch -> 6 steps each)
    assert state["epoch"] == 2 and state["global_step"] == 2 * 6
    model = LeNet.load_from_checkpoint(last, weights_only=True).eval()
    x = torch.randn(4, 1, 28, 28)
    hparams = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
    reference = LeNet(**hparams).eval()
    reference.load_state_dict(state["state_dict"])
    assert torch.equal(model(x), reference(x))

    proc = ok(run_zoo("test", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root",
                      str(mnist_root), "--trainer.logger", "false", "--ckpt_path", str(last),
                      "--trainer.default_root_dir", str(tmp_path / "t")))
    assert "test/acc" in proc.stdout

    resumed = tmp_path / "resumed"
    ok(run_zoo(*fit_args(mnist_root, resumed, "--trainer.max_epochs", "3", "--ckpt_path", str(last))))
    new_last = torch.load(next(resumed.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert new_last["epoch"] == 3 and new_last["global_step"] == 3 * 6


def test_ddp_two_cpu_processes(mnist_root, tmp_path):
    proc = ok(run_zoo(*fit_args(mnist_root, tmp_path, "--trainer.max_epochs", "1", "--trainer.devices", "2",
                                "--trainer.strategy", "ddp",
                                "--trainer.callbacks+=tests.helpers.ddp_exit_check.ReportProcessGroupAtExit"),
                      timeout=600))
    state = torch.load(next(tmp_path.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert state["global_step"] == 3  # 180 images split over 2 ranks, 32 per batch -> 3 steps each
    assert "GLOBAL_RANK: 1" in proc.stdout + proc.stderr
    # a gloo group left to interpreter shutdown can abort a finished run (exit status -6): both ranks destroy it
    assert proc.stdout.count("process group alive at exit: False") == 2, proc.stdout[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())  # written once, by rank 0
    assert results["global_step"] == 3 and (proc.stdout + proc.stderr).count("results: ") == 1


def test_fit_writes_results_json_with_best_checkpoint_and_test_metrics(mnist_root, tmp_path):
    proc = ok(run_zoo(*fit_args(mnist_root, tmp_path, "--trainer.max_epochs", "2", "--seed_everything", "3",
                                "--test_after_fit", "true")))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seed"] == 3 and results["monitor"] == "val/acc"
    assert (results["epochs"], results["global_step"]) == (2, 2 * 6)
    assert Path(results["best_checkpoint"]).name.startswith("best-") and Path(results["best_checkpoint"]).exists()
    assert Path(results["last_checkpoint"]).name == "last.ckpt" and Path(results["last_checkpoint"]).exists()
    best = torch.load(results["best_checkpoint"], map_location="cpu", weights_only=True)
    assert results["best_score"] == pytest.approx(
        float(next(v for k, v in best["callbacks"].items() if k.startswith("ZooCheckpoint"))["best_model_score"])
    )
    printed_accuracy = float(proc.stdout.split("test/acc")[1].split()[0])
    assert results["test"]["test/acc"] == pytest.approx(printed_accuracy, abs=1e-6)
    assert results["fit_seconds"] > 0


def test_bf16_mixed_on_cpu(mnist_root, tmp_path):
    ok(run_zoo(*fit_args(mnist_root, tmp_path, "--trainer.fast_dev_run", "2", "--trainer.precision", "bf16-mixed")))


@pytest.mark.parametrize("has_units", [False, True])
def test_bf16_on_a_cpu_without_bfloat16_units_warns_and_names_the_fix(monkeypatch, has_units):
    import lightning as L

    from zoo import lightning_cli

    monkeypatch.setattr(lightning_cli, "cpu_has_bfloat16_units", lambda: has_units)
    for precision in ("bf16-mixed", "32-true"):
        trainer = L.Trainer(accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lightning_cli.warn_if_cpu_bfloat16_is_emulated(trainer)
        messages = [str(w.message) for w in caught]
        if precision == "bf16-mixed" and not has_units:
            assert any("without bfloat16 units" in m and "--trainer.precision 32-true" in m for m in messages)
        else:
            assert not any("bfloat16" in m for m in messages)


@pytest.mark.slow
def test_quick_start_job_trains_and_prints_test_accuracy(tmp_path):
    proc = ok(run_zoo("fit", "-c", "lenet_mnist_mini", "--trainer.max_epochs", "3",
                      "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"))
    assert "best checkpoint:" in proc.stdout + proc.stderr
    assert "test/acc" in proc.stdout


def test_predict_writes_class_probabilities(mnist_root, tmp_path):
    ok(run_zoo(*fit_args(mnist_root, tmp_path, "--trainer.max_steps", "2")))
    last = next(tmp_path.rglob("last.ckpt"))
    out = tmp_path / "preds"
    ok(run_zoo("predict", "--model", "LeNet", "--data", "MNISTDataModule", "--data.init_args.root", str(mnist_root),
               "--ckpt_path", str(last), "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
               "--trainer.callbacks+=zoo.writers.PredictionWriter", "--trainer.callbacks.output_dir", str(out)))
    probabilities = torch.load(out / "predictions.pt", weights_only=True)
    assert probabilities.shape == (100, 10)
    assert torch.allclose(probabilities.sum(1), torch.ones(100), atol=1e-5)


def test_test_after_fit_works_with_fast_dev_run(tmp_path):
    proc = ok(run_zoo("fit", "-c", "lenet_mnist_mini", "--trainer.fast_dev_run", "1",
                      "--trainer.default_root_dir", str(tmp_path)))
    assert "test/acc" in proc.stdout


def test_zoo_commands_leave_out_lightning_adverts(caplog, tmp_path):
    """Lightning's "💡 Tip: ... litlogger" lines are left out of the `zoo` command's output; its other lines stay."""
    import logging

    import lightning as L

    import zoo.commands  # noqa: F401 (the `zoo` command's torch half installs the filter)

    with caplog.at_level(logging.INFO):
        L.Trainer(default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False)
    assert "GPU available" in caplog.text
    assert "litlogger" not in caplog.text and "💡" not in caplog.text
