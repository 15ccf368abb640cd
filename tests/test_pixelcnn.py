"""Gated residual PixelCNN (issue 6): causality, the gated block's formula, shapes, sampling, binarization, fit."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datamodules import BinarizedMNISTDataModule
from datamodules.binarized_mnist import binarize
from tests.helpers import ok, run_script, run_zoo
from zoo.layers.pixelcnn import (DownRightShiftedConv2d, DownShiftedConv2d, GatedResidualBlock, PixelCNNNetwork,
                                 concat_elu, down_shift, right_shift)
from zoo.models.pixelcnn import PixelCNN


def input_gradient(fn, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """|d fn(x)[..., i, j] / d x| summed over channels and batch: an (H, W) map of what output (i, j) sees."""
    x = x.clone().requires_grad_(True)
    out = fn(x)
    (grad,) = torch.autograd.grad(out[:, :, i, j].sum(), x)
    return grad.abs().sum(dim=(0, 1))


def raster_mask(h: int, w: int, i: int, j: int) -> torch.Tensor:
    """True at (i, j) and every pixel after it in raster order."""
    return torch.arange(h * w).view(h, w) >= i * w + j


# ---------------------------------------------------------------- layers
def test_concat_elu_matches_its_definition():
    x = torch.randn(2, 3, 4, 5)
    out = concat_elu(x)
    assert out.shape == (2, 6, 4, 5)
    torch.testing.assert_close(out[:, :3], F.elu(x))
    torch.testing.assert_close(out[:, 3:], F.elu(-x))


def test_shifts_move_rows_and_columns_by_one():
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    assert down_shift(x)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert right_shift(x)[0, 0].tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]


@pytest.mark.parametrize(
    "conv_class,kernel,rows,cols",
    [  # the input window that output (4, 3) of a 7x7 image sees
        (DownShiftedConv2d, (2, 3), slice(3, 5), slice(2, 5)),
        (DownShiftedConv2d, (3, 5), slice(2, 5), slice(1, 6)),
        (DownShiftedConv2d, (1, 3), slice(4, 5), slice(2, 5)),
        (DownRightShiftedConv2d, (2, 2), slice(3, 5), slice(2, 4)),
        (DownRightShiftedConv2d, (2, 1), slice(3, 5), slice(3, 4)),
        (DownRightShiftedConv2d, (3, 3), slice(2, 5), slice(1, 4)),
    ],
)
def test_shifted_convs_see_exactly_their_window(conv_class, kernel, rows, cols):
    conv = conv_class(2, 3, kernel)
    x = torch.randn(1, 2, 7, 7)
    assert conv(x).shape == (1, 3, 7, 7)
    expected = torch.zeros(7, 7, dtype=torch.bool)
    expected[rows, cols] = True
    assert torch.equal(input_gradient(conv, x, 4, 3) > 0, expected)


def test_down_shifted_conv_rejects_even_width():
    with pytest.raises(ValueError, match="odd kernel width"):
        DownShiftedConv2d(1, 1, (2, 2))


def test_convolutions_are_weight_normalized():
    conv = DownShiftedConv2d(4, 6, (2, 3)).conv
    g = conv.parametrizations.weight.original0
    v = conv.parametrizations.weight.original1
    expected = g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(conv.weight, expected)


def gated_block_reference(block: GatedResidualBlock, x, a=None, h=None):
    """The formula of MODELS.md section D, written out with the block's own sub-layers."""
    c1 = block.conv_in(concat_elu(x))
    if a is not None:
        c1 = c1 + block.aux_nin(concat_elu(a))
    c1 = concat_elu(c1)
    c2 = block.conv_out(c1)
    if h is not None:
        c2 = c2 + (h @ block.condition.weight.T).view(len(x), -1, 1, 1)
    c = x.shape[1]
    return x + c2[:, :c] * torch.sigmoid(c2[:, c:])


@pytest.mark.parametrize("with_a,with_h", [(False, False), (True, False), (False, True), (True, True)])
def test_gated_block_formula_and_shapes(with_a, with_h):
    torch.manual_seed(0)
    block = GatedResidualBlock(4, DownRightShiftedConv2d, (2, 2), aux_channels=3 if with_a else 0,
                               condition_dim=5 if with_h else 0).eval()
    x = torch.randn(2, 4, 6, 7)
    a = torch.randn(2, 3, 6, 7) if with_a else None
    h = torch.randn(2, 5) if with_h else None
    out = block(x, a=a, h=h)
    assert out.shape == x.shape
    torch.testing.assert_close(out, gated_block_reference(block, x, a, h))


def test_gated_block_condition_is_broadcast_over_pixels():
    """With the gate convolution zeroed, c2 = linear(h) at every pixel: x + a * sigmoid(b) of W h, everywhere."""
    torch.manual_seed(0)
    block = GatedResidualBlock(3, condition_dim=4)
    with torch.no_grad():
        block.conv_out.conv.parametrizations.weight.original0.zero_()
        block.conv_out.conv.bias.zero_()
    x, h = torch.randn(2, 3, 5, 5), torch.randn(2, 4)
    projected = h @ block.condition.weight.T
    residual = projected[:, :3] * torch.sigmoid(projected[:, 3:])
    torch.testing.assert_close(block(x, h=h) - x, residual.view(2, 3, 1, 1).expand_as(x))


def test_gated_block_starts_near_identity_and_dropout_acts_in_training():
    torch.manual_seed(0)
    block = GatedResidualBlock(8, dropout=0.5)
    x = torch.randn(4, 8, 6, 6)
    block.eval()
    assert (block(x) - x).abs().mean() < 0.5 * x.abs().mean()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))


def test_gated_block_errors_name_expected_and_received():
    block = GatedResidualBlock(4, aux_channels=2, condition_dim=3)
    x, a, h = torch.randn(2, 4, 5, 5), torch.randn(2, 2, 5, 5), torch.randn(2, 3)
    with pytest.raises(ValueError, match="needs auxiliary input a"):
        block(x, h=h)
    with pytest.raises(ValueError, match="needs condition h"):
        block(x, a=a)
    with pytest.raises(ValueError, match=r"a of shape \(N, 2, 5, 5\).*got \(2, 2, 4, 5\)"):
        block(x, a=a[:, :, :4], h=h)
    with pytest.raises(ValueError, match=r"h of shape \(N, 3\).*got \(1, 3\)"):
        block(x, a=a, h=h[:1])
    with pytest.raises(ValueError, match=r"x of shape \(N, 4, \*, \*\).*got \(2, 3, 5, 5\)"):
        block(x[:, :3], a=a, h=h)
    with pytest.raises(ValueError, match="takes no auxiliary input"):
        GatedResidualBlock(4)(x, a=a)


def test_network_names_images_of_other_channels_than_in_channels():
    net = PixelCNNNetwork(channels=4, num_blocks=1)
    with pytest.raises(ValueError, match=r"images x of shape \(N, 1, H, W\), got \(2, 3, 8, 8\); check the images, or "
                                         r"the network's in_channels=1"):
        net(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got \(8, 8\)"):
        net(torch.rand(8, 8))
    assert PixelCNNNetwork(in_channels=3, channels=4, num_blocks=1)(torch.rand(2, 3, 8, 8)).shape == (2, 1, 8, 8)


# ---------------------------------------------------------------- network causality
@pytest.mark.parametrize("condition_dim", [0, 4])
def test_network_output_at_each_pixel_ignores_that_pixel_and_later_ones(condition_dim):
    torch.manual_seed(0)
    net = PixelCNNNetwork(channels=6, num_blocks=2, condition_dim=condition_dim)
    size = 6
    x = torch.rand(2, 1, size, size)
    h = torch.randn(2, condition_dim) if condition_dim else None
    sees_something = 0
    for i in range(size):
        for j in range(size):
            seen = input_gradient(lambda t: net(t, h), x, i, j)
            assert seen[raster_mask(size, size, i, j)].max() == 0, f"output ({i}, {j}) sees itself or a later pixel"
            sees_something += int(seen.sum() > 0)
    assert sees_something == size * size - 1  # every pixel but the first sees an earlier one


def test_network_view_covers_the_row_to_the_left_and_rows_above():
    """No blind spot: output (i, j) sees (i, j-1), and pixels above-right of it (unlike a masked 3x3 stack)."""
    torch.manual_seed(0)
    net = PixelCNNNetwork(channels=6, num_blocks=2)
    seen = input_gradient(net, torch.rand(1, 1, 8, 8), 5, 3) > 0
    assert seen[5, 0:3].all() and seen[4, 3:7].all() and seen[3, 6]


def test_network_on_top_rows_equals_top_rows_of_the_network():
    torch.manual_seed(0)
    net = PixelCNNNetwork(channels=6, num_blocks=2)
    x = torch.rand(3, 1, 7, 7)
    torch.testing.assert_close(net(x[:, :, :4]), net(x)[:, :, :4])


def test_causality_check_catches_a_network_that_sees_its_own_pixel():
    """The gradient check above can fail: a plain 3x3 convolution sees the pixel itself and later ones."""
    conv = nn.Conv2d(1, 1, 3, padding=1)
    seen = input_gradient(conv, torch.rand(1, 1, 5, 5), 2, 2)
    assert seen[raster_mask(5, 5, 2, 2)].max() > 0


# ---------------------------------------------------------------- model
def tiny_model(**kwargs) -> PixelCNN:
    args = dict(channels=6, num_blocks=1, image_size=28, optimizer="adam", lr=1e-3)
    return PixelCNN(**{**args, **kwargs})


def test_nll_is_the_bernoulli_log_likelihood_in_nats_and_bits():
    torch.manual_seed(0)
    model = tiny_model().eval()
    x = torch.bernoulli(torch.full((2, 1, 28, 28), 0.3))
    p = torch.sigmoid(model(x))
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(dim=(1, 2, 3))
    torch.testing.assert_close(model.nll(x), expected, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(model.bits_per_dim(expected), expected / (784 * math.log(2)))


@pytest.mark.parametrize("conditional", [False, True])
def test_sampling_returns_binary_images_of_the_right_shape(conditional):
    torch.manual_seed(0)
    model = tiny_model(conditional=conditional, image_size=8)
    model.train()
    labels = torch.tensor([0, 3, 9]) if conditional else None
    samples = model.sample(3, labels=labels, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (3, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert model.training  # sampling leaves the mode as it found it
    again = model.sample(3, labels=labels, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(samples, again)


def test_sampling_follows_the_model_distribution():
    """With the first logit's bias pushed to +20, the first pixel is 1 in every sample."""
    model = tiny_model(image_size=4)
    with torch.no_grad():
        model.network.head.bias.fill_(20.0)
    assert model.sample(5)[:, 0, 0, 0].eq(1).all()
    with torch.no_grad():
        model.network.head.bias.fill_(-20.0)
    assert model.sample(5).eq(0).all()


def test_class_condition_changes_the_likelihood_and_is_required():
    torch.manual_seed(0)
    model = tiny_model(conditional=True).eval()
    x = torch.bernoulli(torch.full((2, 1, 28, 28), 0.3))
    assert not torch.allclose(model.nll(x, torch.tensor([0, 0])), model.nll(x, torch.tensor([5, 5])))
    with pytest.raises(ValueError, match="class-conditional"):
        model.nll(x)
    with pytest.raises(ValueError, match=r"labels of shape \(2,\), got \(3,\)"):
        model.nll(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_model(image_size=4).sample(2, labels=torch.tensor([0, 1]))


def test_sampling_checks_n_and_labels_as_the_other_generative_models_do():
    model = tiny_model(image_size=4)
    with pytest.raises(ValueError, match=r"whole number of samples n >= 0, got -1"):
        model.sample(-1)
    assert model.sample(0).shape == (0, 1, 4, 4)
    conditional = tiny_model(image_size=4, conditional=True)
    assert conditional.sample(0, labels=[]).shape == (0, 1, 4, 4)
    torch.testing.assert_close(conditional.sample(2, labels=[3, 7], generator=torch.Generator().manual_seed(0)),
                               conditional.sample(2, torch.tensor([3, 7]), torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"integer class labels, got dtype torch\.float32"):
        conditional.sample(2, labels=torch.tensor([3.5, 7.0]))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        conditional.sample(2, labels=[3, 10])


def test_model_rejects_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        tiny_model()(torch.zeros(2, 3, 28, 28))


# ---------------------------------------------------------------- data
def test_binarize_stochastic_and_threshold():
    images = torch.tensor([0.0, 0.3, 0.6, 1.0]).repeat(2000, 1)
    stochastic = binarize(images, "stochastic", torch.Generator().manual_seed(0))
    assert set(stochastic.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(stochastic.mean(0), images[0], atol=0.04, rtol=0)
    assert binarize(images[:1], "threshold").tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_binarized_datamodule_fixes_eval_images_and_resamples_training_images(mnist_root):
    dm = BinarizedMNISTDataModule(root=str(mnist_root), batch_size=8, val_fraction=0.2, seed=0)
    dm.setup("fit")
    dm.setup("test")
    assert "binarized (dynamic binarization" in dm.describe()["dataset"]
    for split in (dm.val_set, dm.test_set):
        assert set(split.images.unique().tolist()) == {0.0, 1.0}
    dm2 = BinarizedMNISTDataModule(root=str(mnist_root), batch_size=8, val_fraction=0.2, seed=0)
    dm2.setup("test")
    assert torch.equal(dm.test_set.images, dm2.test_set.images)  # one fixed binarization per seed
    grey = dm.train_set.images[:8]
    first, second = (dm.train_batch_transform(grey, torch.Generator().manual_seed(step)) for step in (0, 1))
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)  # resampled per draw
    assert torch.equal(first, dm.train_batch_transform(grey, torch.Generator().manual_seed(0)))  # of the generator
    threshold = BinarizedMNISTDataModule(root=str(mnist_root), binarization="threshold", val_fraction=0.2)
    threshold.setup("fit")
    images = threshold.train_set.images[:8]
    assert torch.equal(threshold.train_batch_transform(images, torch.Generator().manual_seed(0)), images)


def test_binarized_datamodule_rejects_normalization_and_unknown_binarization():
    with pytest.raises(ValueError, match="normalize=False"):
        BinarizedMNISTDataModule(normalize=True)
    with pytest.raises(ValueError, match="'stochastic' or 'threshold'"):
        BinarizedMNISTDataModule(binarization="otsu")


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("conditional", [False, True])
def test_fast_dev_run_fit_test_and_predict(conditional, mnist_root, tmp_path):
    L.seed_everything(0)
    model = tiny_model(conditional=conditional)
    dm = BinarizedMNISTDataModule(root=str(mnist_root), batch_size=4, val_fraction=0.2)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert {"train/loss_step", PixelCNN.checkpoint_monitor, "val/bpd"} <= set(trainer.callback_metrics)
    results = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert results["test/nll"] > 0
    assert results["test/bpd"] == pytest.approx(results["test/nll"] / (784 * math.log(2)), rel=1e-4)
    (samples,) = trainer.predict(model, datamodule=dm)
    assert samples.shape == (4, 1, 28, 28) and set(samples.unique().tolist()) <= {0.0, 1.0}


def test_a_few_steps_lower_the_nll(mnist_root):
    L.seed_everything(0)
    model = tiny_model(channels=8, lr=3e-3)
    dm = BinarizedMNISTDataModule(root=str(mnist_root), binarization="threshold")
    dm.setup("test")
    x = dm.test_set.images[:32]
    optimizer = model.configure_optimizers()
    before = model.nll(x).mean().item()
    for _ in range(15):
        optimizer.zero_grad()
        loss = model.nll(x).mean()
        loss.backward()
        optimizer.step()
    assert model.nll(x).mean().item() < 0.8 * before


def test_cli_fit_round_trip(tmp_path, mnist_root):
    """`zoo fit` of the shipped config, shrunk, on tiny synthetic files, through a subprocess."""
    proc = run_zoo(
        "fit", "-c", "pixelcnn_mnist5k", "--data.root", str(mnist_root), "--data.batch_size", "8",
        "--model.channels", "4", "--model.num_blocks", "1", "--trainer.fast_dev_run", "true",
        "--trainer.default_root_dir", str(tmp_path), "--test_after_fit", "false",
        env={"OMP_NUM_THREADS": "1"}, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_sampling_script_writes_a_png_grid(tmp_path):
    L.seed_everything(0)
    model = tiny_model(image_size=8, conditional=True)
    trainer = L.Trainer(max_epochs=0, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    ckpt = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "grid.png"
    ok(run_script("figures.sample_pixelcnn", "--ckpt_path", str(ckpt), "--per_class", "2", "--out", str(out),
                  env={"OMP_NUM_THREADS": "1"}, timeout=120))
    from torchvision.io import read_image

    grid = read_image(str(out))
    assert grid.shape[1:] == (2 + 10 * (8 + 2), 2 + 2 * (8 + 2))  # 10 class rows of 2 samples, padding 2


@pytest.mark.realdata
@pytest.mark.parametrize(("entry", "folder", "dataset"), [("pixelcnn_mnist5k", "mnist-5k", "MNIST-5k"),
                                                          ("pixelcnn_mnist", "", "MNIST")])
def test_shipped_pixelcnn_reaches_its_nll(real_data, entry, folder, dataset):
    """The shipped weights load, meet the 100-nat bar, and re-measure their NLL on 1,000 test images."""
    from zoo import hub, registry

    manifest = registry.get(entry).manifest()
    if manifest is None:
        pytest.skip(f"{entry} ships no weights")
    assert manifest.data["dataset"].startswith(dataset)
    assert manifest.metrics["test/nll"] <= 100.0
    model = hub.load(entry)
    dm = hub.build_datamodule(entry, root=str(real_data / folder))
    dm.setup("test")
    with torch.no_grad():
        nll = torch.cat([model.nll(x) for x in dm.test_set.images[:1000].split(250)]).mean().item()
    assert nll == pytest.approx(manifest.metrics["test/nll"], abs=4.0)  # 1,000 of the 10,000 images
