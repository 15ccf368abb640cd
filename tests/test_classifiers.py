"""The textbook classifiers (chapters 3-4) on the shared ImageClassifier base."""

from __future__ import annotations

import pytest
import torch

from custom_models import WideLeNet
from zoo.models import MLP, BookCNN, LeNet

MODELS = [MLP, BookCNN, LeNet, WideLeNet]


@pytest.mark.parametrize("cls", MODELS)
def test_forward_shape(cls):
    model = cls(num_classes=10).eval()
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("cls", MODELS)
def test_every_parameter_gets_a_gradient(cls):
    model = cls()
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    model.loss(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), f"{name} got no gradient"


@pytest.mark.parametrize("cls", MODELS)
def test_wrong_input_shape_names_expected_and_got(cls):
    model = cls()
    with pytest.raises(ValueError) as info:
        model(torch.randn(2, 3, 32, 32))
    assert "(N, 1, 28, 28)" in str(info.value) and "(2, 3, 32, 32)" in str(info.value)
    with pytest.raises(ValueError, match=r"got \(1, 28, 28\)"):
        model(torch.randn(1, 28, 28))


def test_sizes_follow_the_book():
    cnn = BookCNN()
    assert cnn.network[-5].in_features == 2048  # 128 * 4 * 4 after two poolings of 28x28
    mlp = MLP()
    sizes = [m.out_features for m in mlp.network if isinstance(m, torch.nn.Linear)]
    assert sizes == [300, 100, 10]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in mlp.network) == 2


def test_hyperparameters_rebuild_the_model():
    model = BookCNN(channels=(8, 8, 16, 16), hidden=(32,), lr=0.1, momentum=0.5)
    assert model.hparams.channels == (8, 8, 16, 16) and model.hparams.lr == 0.1
    clone = BookCNN(**model.hparams)
    assert [p.shape for p in clone.parameters()] == [p.shape for p in model.parameters()]


def test_optimizer_from_hparams():
    opt = MLP(optimizer="adam", lr=1e-3).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-3
    conf = MLP(lr_step_gamma=0.5).configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.SGD)
    assert conf["lr_scheduler"]["scheduler"].gamma == 0.5
    with pytest.raises(ValueError, match="optimizer"):
        MLP(optimizer="rmsprop")
    nag = MLP(momentum=0.9, nesterov=True).configure_optimizers()
    assert nag.param_groups[0]["nesterov"] and not MLP(momentum=0.9).configure_optimizers().param_groups[0]["nesterov"]
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        MLP(nesterov=True)


def test_subclass_overrides_one_method():
    model = WideLeNet(width=64)
    assert model.network[-1].in_features == 64
    assert model.hparams.width == 64 and "lr" in model.hparams
