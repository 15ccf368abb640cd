"""Deep complex networks' models (zoo.models.complex_net): ComplexNet / RealNet gradients, budgets, options,
training (also in bf16-mixed) and checkpoints."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from datamodules import MNISTDataModule
from tests.helpers import run_zoo
from zoo import registry
from zoo.layers import ComplexConv2d, ComplexDropout, ComplexLinear, ComplexMagnitude, LearnedImaginaryInput
from zoo.models import ComplexNet, RealNet


def real_count(module: nn.Module) -> int:
    """Real numbers in the parameters (a complex entry counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


COMPLEX_ENTRIES = [f"{net}_{data}" for net in ("complex_net", "real_net") for data in ("fashion_mnist", "mnist", "mnist5k")]


@pytest.mark.parametrize("activation", ["crelu", "modrelu", "zrelu"])
def test_every_complexnet_parameter_gets_a_gradient(activation):
    torch.manual_seed(0)
    model = ComplexNet(activation=activation)
    log_probs = model(torch.randn(8, 1, 28, 28))
    assert log_probs.shape == (8, 10) and log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(8))
    F.nll_loss(log_probs, torch.arange(8)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert isinstance(model.network[0], LearnedImaginaryInput)
    assert isinstance(model.network[-1][0], ComplexMagnitude)


def test_complexnet_rejects_a_wrong_image_shape():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\)"):
        ComplexNet()(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="activation"):
        ComplexNet(activation="tanh")


def test_realnet_has_about_as_many_real_parameters_as_complexnet():
    complex_numbers, real_numbers = real_count(ComplexNet()), real_count(RealNet())
    assert complex_numbers == 862_272
    assert abs(real_numbers - complex_numbers) / complex_numbers < 0.01
    assert RealNet()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_dropout_option_adds_one_dropout_layer_of_each_nets_kind_before_the_last_layer():
    plain_names = [name for name, _ in ComplexNet().named_parameters()]
    for net, kind in ((ComplexNet, ComplexDropout), (RealNet, nn.Dropout)):
        assert not any(isinstance(m, (ComplexDropout, nn.Dropout)) for m in net().modules())
        model = net(dropout=0.25)
        dropouts = [m for m in model.modules() if isinstance(m, (ComplexDropout, nn.Dropout))]
        assert len(dropouts) == 1 and type(dropouts[0]) is kind and dropouts[0].p == 0.25
        assert model.network[-3] is dropouts[0]  # hidden act -> dropout -> last linear -> output
        model.eval()
        x = torch.randn(3, 1, 28, 28)
        torch.testing.assert_close(model(x), model(x))  # no dropout in eval mode
        with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
            net(dropout=1.0)
    # Without dropout the paper's net keeps its parameter names (the shipped weights load).
    assert [name for name, _ in ComplexNet(dropout=0.0).named_parameters()] == plain_names


def test_complexnet_init_option_reaches_every_complex_layer():
    layers = [m for m in ComplexNet(init="glorot").modules() if isinstance(m, (ComplexConv2d, ComplexLinear))]
    assert len(layers) == 4 and all(layer.init == "glorot" for layer in layers)
    assert all(m.init == "he" for m in ComplexNet().modules() if isinstance(m, (ComplexConv2d, ComplexLinear)))
    with pytest.raises(ValueError, match="init must be one of"):
        ComplexNet(init="xavier")


@pytest.mark.parametrize("init", ["he", "glorot"])
def test_realnet_init_matches_the_second_moment_of_the_complex_initialiser(init):
    """RealNet's ``init`` gives its weights the E|w|^2 that ComplexNet's initialiser of the same name gives."""
    torch.manual_seed(0)
    real = RealNet(init=init).network[7]  # Linear(1136, 707)
    complex_ = ComplexNet(init=init).network[7]  # ComplexLinear(800, 500)
    for layer in (real, complex_):
        fan_out, fan_in = layer.weight.shape
        expected = 2 / fan_in if init == "he" else 2 / (fan_in + fan_out)
        assert layer.weight.abs().square().mean().item() == pytest.approx(expected, rel=0.02)
        assert torch.all(layer.bias == 0)
    torch.manual_seed(0)
    default = RealNet().network[7].weight
    assert default.square().mean().item() == pytest.approx(1 / (3 * 1136), rel=0.02)  # PyTorch's own init
    with pytest.raises(ValueError, match="init must be None or one of"):
        RealNet(init="xavier")


class GaussConvComplexNet(ComplexNet):
    """A subclass that changes one factory: its convolutions use the three-multiplication product."""

    def conv(self, in_channels, out_channels):
        return ComplexConv2d(in_channels, out_channels, self.hparams.kernel_size, stride=self.hparams.stride,
                             method="gauss")


def test_a_subclass_overrides_one_factory():
    torch.manual_seed(0)
    base = ComplexNet()
    torch.manual_seed(0)
    subclass = GaussConvComplexNet()
    assert [m.method for m in subclass.modules() if isinstance(m, ComplexConv2d)] == ["gauss", "gauss"]
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(subclass.eval()(x), base.eval()(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_complexnet_trains_and_round_trips_through_checkpoints(mnist_root, tmp_path, precision):

    L.seed_everything(0)
    model = ComplexNet()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=3, limit_val_batches=1, precision=precision,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    before = model.network[1].weight.detach().clone()
    trainer.fit(model, datamodule=MNISTDataModule(root=str(mnist_root), batch_size=16))
    after = model.network[1].weight
    assert after.dtype == torch.complex64 and not torch.equal(before, after)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])

    model.eval()
    x = torch.randn(3, 1, 28, 28)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    reloaded = ComplexNet.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True).eval()
    torch.testing.assert_close(reloaded(x), model(x), rtol=0, atol=0)
    save_model(model, str(tmp_path / "model.safetensors"))
    fresh = ComplexNet()
    load_model(fresh, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(fresh.eval()(x), model(x), rtol=0, atol=0)


def test_zoo_fit_bf16_mixed_fast_dev_run(mnist_root, tmp_path):
    proc = run_zoo(
        "fit", "-c", "complex_net_mnist5k", "--data.init_args.root", str(mnist_root),
        "--trainer.fast_dev_run", "2", "--trainer.precision", "bf16-mixed", "--test_after_fit", "false",
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using bfloat16 Automatic Mixed Precision" in proc.stderr + proc.stdout


@pytest.mark.parametrize("entry", COMPLEX_ENTRIES)
def test_complex_and_real_twins_share_budget_data_and_recipe(entry):
    config = registry.get(entry).config
    twin = entry.replace("complex_net", "real_net") if entry.startswith("complex") else entry.replace(
        "real_net", "complex_net")
    assert registry.get(twin).config["trainer"] == config["trainer"]  # the same budget for both nets
    assert registry.get(twin).config["data"] == config["data"]
    # the same training recipe (optimizer, lr, momentum, weight decay, schedule) for both nets; only the net's own
    # choices (initialiser, dropout), each picked on validation accuracy from the same sweep, may differ
    recipe = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "lr_step_gamma")
    twin_args, args = registry.get(twin).config["model"]["init_args"], config["model"]["init_args"]
    assert set(args) - set(recipe) <= {"init", "dropout"} and set(twin_args) - set(recipe) <= {"init", "dropout"}
    assert {key: twin_args.get(key) for key in recipe} == {key: args.get(key) for key in recipe}
