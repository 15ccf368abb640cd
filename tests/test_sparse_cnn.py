"""The sparse CNN of "How Can We Be So Dense?" (zoo.models.sparse_cnn): the Lightning hooks (re-zeroing, boost decay,
DDP duty cycles) on tiny synthetic data; checkpoint and safetensors round trips; the configs' first-epoch batch rule;
the noise script's maths (every config builds and runs a batch: tests/test_registry.py).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from datamodules import MNISTDataModule
from scripts.reproductions import noise_robustness
from tests.helpers import run_zoo
from zoo import registry
from zoo.layers import KWinners, KWinners2d, SparseWeights, SparseWeights2d, rezero_weights
from zoo.models import DenseCNN, SparseCNN

SPARSE_ENTRIES = sorted(name for name in registry.entries() if name.startswith(("sparse_cnn", "dense_cnn",
                                                                                 "sparse_blog", "dense_blog")))


def tiny_sparse_cnn(**overrides) -> SparseCNN:
    """A small Sparse CNN (conv 4 -> k=20 of 4*12*12; hidden 16 with k=4, weight density 0.3) for fast tests."""
    args = dict(channels=[4], conv_k=[20], hidden=[16], hidden_k=[4], hidden_weight_density=0.3,
                conv_weight_density=0.5, lr=0.1, momentum=0.9)
    return SparseCNN(**{**args, **overrides})


def synthetic_loader(n: int = 32, batch_size: int = 8, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)),
                      batch_size=batch_size)


def quiet_trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=tmp_path, **kwargs)


def masked_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.module.weight[m.zero_mask] for m in model.modules() if isinstance(m, SparseWeights)]


# ------------------------------------------------------------------------------------------------ weights
def test_sparse_weights_zero_a_fixed_fraction_of_each_units_inputs():
    layer = SparseWeights(nn.Linear(10, 6), density=0.3)
    assert layer.zero_mask.sum(dim=1).tolist() == [7] * 6
    assert torch.all(layer.module.weight[layer.zero_mask] == 0)
    conv = SparseWeights2d(nn.Conv2d(2, 3, 3), density=0.5)
    assert conv.zero_mask.flatten(1).sum(dim=1).tolist() == [9] * 3  # round(0.5 * 18)


def test_optimizer_step_breaks_the_zeros_and_rezero_restores_them():
    layer = SparseWeights(nn.Linear(10, 6), density=0.3)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(torch.randn(4, 10)).sum().backward()
    opt.step()
    assert torch.any(layer.module.weight[layer.zero_mask] != 0)  # the failure the hook prevents
    rezero_weights(layer)
    assert torch.all(layer.module.weight[layer.zero_mask] == 0)


def test_training_hooks_keep_masks_zero_and_decay_boost(tmp_path):
    torch.manual_seed(0)
    model = tiny_sparse_cnn()
    quiet_trainer(tmp_path, max_epochs=2, enable_checkpointing=False).fit(model, synthetic_loader())
    assert all(torch.all(w == 0) for w in masked_weights(model))
    kwinners = [m for m in model.modules() if isinstance(m, (KWinners, KWinners2d))]
    assert [float(m.boost_strength) for m in kwinners] == pytest.approx([1.5 * 0.85**2] * 2)
    assert all(int(m.samples_seen) == 64 for m in kwinners)
    assert all(m.duty_cycles.sum() > 0 for m in kwinners)


def test_checkpoint_round_trip_keeps_layer_state(tmp_path):
    torch.manual_seed(0)
    model = tiny_sparse_cnn()
    trainer = quiet_trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    trainer.fit(model, synthetic_loader())
    path = tmp_path / "sparse.ckpt"
    trainer.save_checkpoint(path)
    torch.manual_seed(123)  # a fresh model would draw other masks
    loaded = SparseCNN.load_from_checkpoint(path, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    assert all(torch.all(w == 0) for w in masked_weights(loaded))


def test_safetensors_round_trip_keeps_masks_and_duty_cycles(tmp_path):
    torch.manual_seed(0)
    model = tiny_sparse_cnn()
    model.train()(torch.randn(8, 1, 28, 28))  # duty cycles move
    save_model(model, str(tmp_path / "m.safetensors"))
    torch.manual_seed(99)
    fresh = tiny_sparse_cnn()
    assert not all(torch.equal(a, b) for a, b in zip(model.buffers(), fresh.buffers()))
    missing, unexpected = load_model(fresh, str(tmp_path / "m.safetensors"))
    assert not missing and not unexpected
    for (name, a), b in zip(model.named_buffers(), fresh.buffers()):
        assert torch.equal(a, b), name


def test_ddp_keeps_duty_cycles_equal_on_every_rank(mnist_root, tmp_path):
    """Two CPU processes (`ddp`), each its own model; tests/helpers/sparse_ddp_check.py asserts inside the ranks."""
    proc = run_zoo(
        "fit", "-c", "sparse_cnn2_mnist5k", "--data.init_args.root", str(mnist_root),
        "--model.init_args.channels", "[4]", "--model.init_args.conv_k", "[20]", "--model.init_args.hidden", "[16]",
        "--model.init_args.hidden_k", "[4]", "--data.init_args.first_epoch_batch_size", "null",
        "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
        "--trainer.callbacks+=tests.helpers.sparse_ddp_check.DutyCyclesEqualAcrossRanks", "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
        "--trainer.default_root_dir", str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("duty cycles equal across ranks") == 2


# ------------------------------------------------------------------------------------------------ models
def test_dense_and_sparse_cnn2_shapes_and_layers():
    x = torch.randn(2, 1, 28, 28)
    dense, sparse = DenseCNN(), SparseCNN()
    assert dense(x).shape == sparse(x).shape == (2, 10)
    assert sum(isinstance(m, KWinners2d) for m in sparse.modules()) == 2
    assert sum(isinstance(m, nn.ReLU) for m in dense.modules()) == 3
    hidden = next(m for m in sparse.modules() if isinstance(m, SparseWeights))
    assert hidden.module.in_features == 64 * 4 * 4 and hidden.zero_mask.float().mean() == pytest.approx(0.7, abs=1e-3)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\)"):
        sparse(torch.randn(2, 28, 28))


class LocalSparseCNN(SparseCNN):
    """A subclass changing one factory: per-location winners after every convolution."""

    def conv_activation(self, index: int, channels: int, size: int) -> nn.Module:
        return KWinners2d(channels, k=1, local=True, boost_strength=0.0)


def test_a_subclass_overrides_one_factory():
    model = LocalSparseCNN(channels=[4], conv_k=[20], hidden=[16], hidden_k=[4])
    out = model.network[:3](torch.randn(2, 1, 28, 28))
    assert torch.equal((out != 0).sum(dim=1), torch.ones(2, 12, 12, dtype=torch.long))


@pytest.mark.parametrize("entry", SPARSE_ENTRIES)
def test_a_small_first_epoch_batch_reloads_the_dataloaders(entry):
    config = registry.get(entry).config
    if config["data"]["init_args"].get("first_epoch_batch_size"):
        assert config["trainer"]["reload_dataloaders_every_n_epochs"] == 1


def test_the_paper_k_values_fit_the_cnn2_maps():
    sizes = [(m.channels, m.k) for m in SparseCNN().modules() if isinstance(m, KWinners2d)]
    assert sizes == [(32, 400), (64, 300)]  # of 32*12*12 = 4608 and 64*4*4 = 1024 units


def test_zoo_fit_round_trip_with_first_epoch_batch_of_4(mnist_root, tmp_path):
    proc = run_zoo(
        "fit", "-c", "sparse_cnn2_mnist5k", "--data.init_args.root", str(mnist_root), "--trainer.max_epochs", "2",
        "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
        "--trainer.default_root_dir", str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = next(tmp_path.glob("**/last.ckpt"))
    model = SparseCNN.load_from_checkpoint(ckpt, weights_only=True)
    assert all(torch.all(w == 0) for w in masked_weights(model))
    kwinners = [m for m in model.modules() if isinstance(m, (KWinners, KWinners2d))]
    assert float(kwinners[0].boost_strength) == pytest.approx(1.5 * 0.85**2)
    # epoch 0: 3 batches of 4; epoch 1: 3 batches of 64 cover all 180 training images (200 minus 10 % val)
    assert int(kwinners[0].samples_seen) == 3 * 4 + 180


# ------------------------------------------------------------------------------------------------ noise script
def test_noise_curves_score_and_tables(mnist_root):

    torch.manual_seed(0)
    subject = noise_robustness.Subject("tiny", tiny_sparse_cnn().eval(), MNISTDataModule, {"root": str(mnist_root)})
    rows = noise_robustness.noise_curves([subject])
    assert [r["eta"] for r in rows if r["protocol"] == "paper"] == noise_robustness.PAPER_LEVELS
    assert max(r["eta"] for r in rows if r["protocol"] == "blog") == 0.8
    assert all(r["total"] == 100 for r in rows)
    assert noise_robustness.noise_score(rows, "tiny") == sum(r["correct"] for r in rows[:11])
    table = noise_robustness.format_table(rows, "paper")
    assert "noise score" in table and f"{noise_robustness.noise_score(rows, 'tiny'):,}" in table
    clean, _ = noise_robustness.correct_on_noisy_test_set(subject, 0.0, "paper")
    assert clean == rows[0]["correct"]


@pytest.mark.realdata
@pytest.mark.parametrize("entry", ["sparse_cnn2_mnist", "dense_cnn2_mnist", "sparse_cnn1_mnist", "dense_cnn1_mnist",
                                   "sparse_cnn2_fashion_mnist", "dense_cnn2_fashion_mnist"])
def test_shipped_noise_at_half_matches_manifest(real_data, entry):
    manifest = registry.get(entry).manifest()
    if manifest is None:
        pytest.skip(f"{entry} ships no weights")
    correct, total = noise_robustness.correct_on_noisy_test_set(noise_robustness.from_shipped(entry), 0.5, "paper")
    assert correct / total == pytest.approx(manifest.metrics["acc_eta_0.5"], abs=1e-6)
