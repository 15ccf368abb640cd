"""The textbook classifiers (chapters 3-4) on the shared ImageClassifier base."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.custom_models import WideLeNet
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


def test_one_cycle_schedule_peaks_at_lr_and_steps_per_batch():
    model = MLP(lr=0.2, lr_schedule="onecycle", warmup_fraction=0.25)
    model.trainer = type("FakeTrainer", (), {"estimated_stepping_batches": 100})()
    conf = model.configure_optimizers()
    scheduler = conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step" and isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    rates = []
    for _ in range(99):
        conf["optimizer"].step()
        scheduler.step()
        rates.append(conf["optimizer"].param_groups[0]["lr"])
    assert max(rates) == pytest.approx(0.2) and rates.index(max(rates)) == 23 and rates[-1] < 1e-4
    with pytest.raises(ValueError, match="set one of them"):
        MLP(lr_schedule="onecycle", lr_step_gamma=0.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        MLP(lr_schedule="cosine")


def test_label_smoothing_changes_the_loss_only_as_asked():
    logits, target = torch.randn(6, 10), torch.arange(6)
    plain = MLP().loss(logits, target)
    assert plain == pytest.approx(torch.nn.functional.cross_entropy(logits, target).item())
    smooth = MLP(label_smoothing=0.1).loss(logits, target)
    assert smooth == pytest.approx(torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1).item())
    with pytest.raises(ValueError, match="label_smoothing"):
        MLP(label_smoothing=1.0)


def test_channels_last_and_test_time_flip_keep_the_function():
    torch.manual_seed(0)
    plain = LeNet().eval()
    fast = LeNet(channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(plain(x), fast(x), atol=1e-5)
    assert fast.network[0].weight.is_contiguous(memory_format=torch.channels_last)
    flipped = LeNet(test_time_flip=True)
    flipped.load_state_dict(plain.state_dict())
    expected = 0.5 * (plain(x) + plain(x.flip(-1)))
    assert torch.allclose(flipped.eval()(x), expected, atol=1e-6)
    assert torch.allclose(flipped.train()(x), plain.train()(x), atol=1e-6)  # training sees the image once


def test_subclass_overrides_one_method():
    model = WideLeNet(width=64)
    assert model.network[-1].in_features == 64
    assert model.hparams.width == 64 and "lr" in model.hparams


def test_a_subclass_that_changes_a_base_argument_on_the_way_up_or_skips_super_is_refused():
    """save_hyperparameters keeps the subclass's value; the network would be built from the changed one, and a
    checkpoint would rebuild another model. Passing arguments up unchanged (or with a new default) is fine."""
    class WithBackground(LeNet):
        def __init__(self, num_classes: int = 10, **kwargs):
            super().__init__(num_classes=num_classes + 1, **kwargs)

    class DoubleLr(LeNet):
        def __init__(self, lr: float = 0.01, **kwargs):
            super().__init__(lr=lr * 2, **kwargs)

    class Direct(LeNet):
        def __init__(self, width: int = 3, **kwargs):
            LeNet.__init__(self, **kwargs)

    class Elevenfold(LeNet):
        def __init__(self, num_classes: int = 11, dropout: float = 0.1, **kwargs):
            super().__init__(num_classes=num_classes, **kwargs)

    with pytest.raises(ValueError, match=r"WithBackground was given num_classes=10 but passes num_classes=11 on to "
                                         r"Classifier.*Give WithBackground's num_classes the default you want"):
        WithBackground()
    with pytest.raises(ValueError, match=r"DoubleLr was given lr=0.01 but passes lr=0.02 on to ZooModule"):
        DoubleLr()
    with pytest.raises(ValueError, match=r"Direct.__init__ calls its base class without the zero-argument super\(\)"):
        Direct()
    model = Elevenfold()
    assert model.hparams.num_classes == 11 and model.hparams.dropout == 0.1
    assert model.network[-1].out_features == 11


@pytest.mark.parametrize("num_classes", [0, 1, 2.5, "10"])
def test_a_classifier_refuses_fewer_than_two_classes_naming_the_argument(num_classes):
    """Before, torchmetrics' accuracy refused 0 or 1 from inside its own code (a traceback under the zoo command), and
    2.5 or "10" failed in the head's nn.Linear."""
    with pytest.raises(ValueError, match=rf"^num_classes must be a whole number of at least 2 .*got {num_classes!r}"):
        LeNet(num_classes=num_classes)
