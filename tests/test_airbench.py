"""AirbenchNet: whitening, identity init, frozen parts, the optimizer and schedule, lookahead, TTA, a CLI fit."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import ok, run_zoo
from zoo.models import AirbenchNet
from zoo.models.airbench import IdentityInitConv2d, whitening_filters


def test_whitening_filters_decorrelate_the_patches():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(3, 3, generator=generator)
    images = torch.einsum("ij,njhw->nihw", mixing, torch.randn(64, 3, 16, 16, generator=generator))
    images = images + torch.roll(images, 1, dims=-1)  # correlated neighbours
    filters = whitening_filters(images, eps=0.0)
    assert filters.shape == (24, 3, 2, 2) and torch.allclose(filters[12:], -filters[:12])
    responses = torch.nn.functional.conv2d(images, filters[:12]).permute(1, 0, 2, 3).reshape(12, -1)
    covariance = responses @ responses.T / responses.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=1e-3)


def test_convolutions_start_as_the_identity_on_their_first_channels():
    conv = IdentityInitConv2d(4, 6)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(conv(x)[:, :4], x, atol=1e-6)


def test_frozen_parameters_and_the_networks_shape():
    model = AirbenchNet()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert "network.0.weight" in frozen  # the whitening filters
    assert all(name.endswith(".weight") for name in frozen)  # batch norms keep gamma = 1
    assert 1.9e6 < sum(p.numel() for p in model.parameters()) < 2.0e6  # airbench94: about 1.97 M


def test_optimizer_groups_and_triangular_schedule():
    model = AirbenchNet()
    configured = model.configure_optimizers()  # no trainer: batch 1024, one step
    optimizer = configured["optimizer"]
    bn_group, other_group = optimizer.param_groups
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    assert other_group["lr"] == pytest.approx(11.5 / kilostep * 1024)
    assert bn_group["lr"] == pytest.approx(64 * other_group["lr"])
    decay = 0.0153 * 1024 / kilostep
    assert other_group["weight_decay"] * other_group["lr"] == pytest.approx(decay)
    assert bn_group["weight_decay"] * bn_group["lr"] == pytest.approx(decay)
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.85
    n_bn = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert len(bn_group["params"]) == n_bn


def test_lookahead_pulls_the_weights_to_the_slow_average():
    model = AirbenchNet()
    model._lookahead = {k: v.clone() for k, v in model.network.state_dict().items()}
    slow = model.network[-2].weight.detach().clone()
    with torch.no_grad():
        model.network[-2].weight.add_(1.0)
    model._lookahead_update(decay=0.75)
    assert torch.allclose(model.network[-2].weight, slow + 0.25)
    assert torch.allclose(model._lookahead["7.weight"], slow + 0.25)


def test_test_time_augmentation_is_mirror_invariant_and_can_be_off():
    model = AirbenchNet(tta_level=1).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.flip(-1)), atol=1e-5)
        assert AirbenchNet(tta_level=2).eval()(x).shape == (3, 10)
    plain = AirbenchNet(tta_level=0).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(plain(x), plain.network(x), atol=1e-6)
    with pytest.raises(ValueError, match="tta_level"):
        AirbenchNet(tta_level=3)


def test_fit_through_the_cli_whitens_and_checkpoints_the_lookahead_state(cifar_root, tmp_path):
    proc = ok(run_zoo(
        "fit", "-c", "airbench_cifar10", "--data.init_args.root", str(cifar_root), "--data.init_args.batch_size", "16",
        "--trainer.max_steps", "10", "--model.init_args.whiten_bias_epochs", "1", "--model.init_args.widths",
        "[8, 16, 16]", "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
    ))
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert results["global_step"] == 10 and "test/acc" in results["test"], proc.stdout[-2000:]
    assert results["monitor"] is None  # the config validates nothing, so no val/acc is watched (or warned about)
    checkpoint = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    assert bool(state["whitened"]) and state["network.0.weight"].abs().sum() > 0
    assert "lookahead" in checkpoint
