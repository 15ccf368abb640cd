"""Generative models of textbook chapter 6 (issue 17): shapes, optimizer steps, loss formulas, sampling, fits,
bf16 fits, checkpoint and generator-only safetensors round trips, sample-quality metrics."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from datamodules import MNISTDataModule
from tests.helpers import REPO, ok, run_zoo
from zoo import evaluation, export, hub, registry
from zoo.evaluation import ClassifierFeatures, sample_quality
from zoo.layers.generative_losses import gaussian_kl, gradient_penalty, r1_penalty
from zoo.models import (DCGAN, GAN, LSGAN, MLPGAN, VAE, WGANGP, ConditionalGAN, ConvAutoencoder, GenerativeModel,
                        LeNet, MLPAutoencoder)

GENERATIVE_ENTRIES = [name for name, entry in registry.entries().items()
                      if entry.model_class.rsplit(".", 1)[-1] in
                      {"MLPAutoencoder", "ConvAutoencoder", "VAE", "MLPGAN", "LSGAN", "ConditionalGAN", "DCGAN",
                       "WGANGP"}]
GAN_CLASSES = [MLPGAN, LSGAN, ConditionalGAN, DCGAN, WGANGP]
ALL_CLASSES = [MLPAutoencoder, ConvAutoencoder, VAE, *GAN_CLASSES]
TINY = {MLPGAN: dict(d_hidden=(16,), g_hidden=(32,), latent_dim=8), LSGAN: dict(d_hidden=(16,), g_hidden=(32,)),
        ConditionalGAN: dict(d_hidden=(16,), g_hidden=(32,), latent_dim=8), VAE: dict(hidden=32, latent_dim=4),
        MLPAutoencoder: dict(hidden=(32, 12))}


def tiny(cls: type, **kwargs) -> GenerativeModel:
    torch.manual_seed(0)
    return cls(**{"optimizer": "adam", "lr": 1e-3, **TINY.get(cls, {}), **kwargs})


def labels_for(model: GenerativeModel, n: int):
    return torch.arange(n) % 10 if model.hparams.conditional else None


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)


def fit_briefly(model: GenerativeModel, mnist_root, batches: int, batch_size: int = 8, ckpt=None) -> L.Trainer:
    """Fit ``model`` on ``batches`` training batches of the synthetic MNIST files; save a checkpoint if asked."""
    dm = MNISTDataModule(root=str(mnist_root), normalize=False, batch_size=batch_size)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=batches, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    if ckpt is not None:
        trainer.save_checkpoint(ckpt)
    return trainer


def test_all_config_entries_are_covered():
    assert len(GENERATIVE_ENTRIES) == 9


# ---------------------------------------------------------------- shapes and sampling
@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_sample_shape_range_and_reproducibility(cls):
    model = tiny(cls)
    model.train()
    labels = labels_for(model, 6)
    first = model.sample(6, labels=labels, generator=torch.Generator().manual_seed(3))
    assert first.shape == (6, 1, 28, 28) and first.dtype == torch.float32
    assert 0 <= first.min() and first.max() <= 1
    assert model.training  # sample restores the mode
    again = model.sample(6, labels=labels, generator=torch.Generator().manual_seed(3))
    other = model.sample(6, labels=labels, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("cls", [MLPAutoencoder, ConvAutoencoder, VAE])
def test_autoencoders_encode_decode_shapes(cls):
    model = tiny(cls).eval()
    x = torch.rand(5, 1, 28, 28)
    codes = model.encode(x)
    assert codes.shape == (5, model.hparams.latent_dim)
    assert model.decode(codes).shape == (5, 1, 28, 28) and model(x).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match=r"images of shape \(N, 1, 28, 28\), got \(5, 28, 28\)"):
        model.encode(x[:, 0])


def rgb_batches(n: int = 4, size: int = 32, low: float = 0.0, high: float = 1.0, batches: int = 2):
    """A loader of ``(images, labels)`` of 3 x size x size pixels in [low, high] (someone's own photos)."""
    images = low + (high - low) * torch.rand(n * batches, 3, size, size, generator=torch.Generator().manual_seed(0))
    dataset = torch.utils.data.TensorDataset(images, torch.arange(n * batches) % 2)
    return torch.utils.data.DataLoader(dataset, batch_size=n)


@pytest.mark.parametrize("cls", [MLPGAN, DCGAN, ConditionalGAN])
def test_a_gan_refuses_images_of_another_shape_in_one_line(cls):
    """Fitting a 1x28x28 GAN on 3x32x32 photos names both shapes (as the autoencoders do), in training and in
    validation, instead of a matrix-size error from deep inside the discriminator."""
    expected = r"images of shape \(N, 1, 28, 28\), got \(4, 3, 32, 32\); check the datamodule or the model's size"
    with pytest.raises(ValueError, match=expected):
        quiet_trainer(max_epochs=1, limit_val_batches=0).fit(tiny(cls), rgb_batches())
    with pytest.raises(ValueError, match=expected):
        tiny(cls).validation_step((torch.rand(4, 3, 32, 32), torch.arange(4) % 2), 0)


@pytest.mark.parametrize("cls", [MLPGAN, VAE])
def test_a_generative_model_refuses_normalized_training_pixels_naming_the_option(cls):
    """CIFAR-10-normalized photos (-1.99..2.11) would train silently on the wrong range: refused in one line."""
    model = tiny(cls, in_channels=3, image_size=32)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\].* -1\.\d\d\.\.2\.\d\d.*pass normalize=False$"):
        quiet_trainer(max_epochs=1, limit_val_batches=0).fit(model, rgb_batches(low=-1.99, high=2.11))
    quiet_trainer(max_epochs=1, limit_val_batches=0).fit(model, rgb_batches())


class TwoClassPhotos(L.LightningDataModule):
    """A datamodule of two named classes (someone's own folder)."""

    class_names = ["cats", "dogs"]

    def train_dataloader(self):
        return rgb_batches(size=28)


class Photos32(TwoClassPhotos):
    """Someone's photos at 32x32, the side ImageFolderDataModule makes by default."""

    image_size = 32

    def train_dataloader(self):
        return rgb_batches(size=32)


@pytest.mark.parametrize("make", [lambda: tiny(MLPGAN, in_channels=3), lambda: LeNet(num_classes=2, in_channels=3)])
def test_a_model_refuses_a_datamodule_of_another_image_size_naming_both_options(make):
    """Before the first batch: Lightning would stop merging the two sets of hyperparameters (both hold image_size)
    with a traceback, or the first batch with a matrix-size error."""
    model = make()
    with pytest.raises(ValueError, match=rf"{type(model).__name__} takes 28x28 images but Photos32 makes 32x32 ones; "
                                         rf"set {type(model).__name__}\(image_size=32\) \(or Photos32\(image_size=28\) "
                                         r"where the datamodule takes one\)"):
        quiet_trainer(max_epochs=1, limit_val_batches=0).fit(model, datamodule=Photos32())


def test_a_conditional_gan_refuses_a_datamodule_with_another_number_of_classes():
    """As a classifier does: labels 2..9 of a 10-class model would never be trained, yet `zoo sample --labels 5`
    would accept them."""
    model = tiny(ConditionalGAN, in_channels=3)
    with pytest.raises(ValueError, match=r"ConditionalGAN has num_classes=10 but the datamodule has 2 classes "
                                         r"\(cats, dogs\); set num_classes=2$"):
        quiet_trainer(max_epochs=1).fit(model, datamodule=TwoClassPhotos())
    quiet_trainer(max_epochs=1).fit(tiny(ConditionalGAN, in_channels=3, num_classes=2), datamodule=TwoClassPhotos())
    quiet_trainer(max_epochs=1).fit(tiny(MLPGAN, in_channels=3), datamodule=TwoClassPhotos())  # labels unused


def test_book_sizes():
    ae = MLPAutoencoder()
    assert [m.out_features for m in ae.encoder if isinstance(m, nn.Linear)] == [128, 64, 12, 3]
    assert [m.out_features for m in ae.decoder if isinstance(m, nn.Linear)] == [12, 64, 128, 784]
    assert isinstance(ae.decoder[-2], nn.Tanh)
    vae = VAE()
    assert [m.out_features for m in vae.encoder if isinstance(m, nn.Linear)] == [400, 40]
    gan = MLPGAN()
    assert [m.out_features for m in gan.discriminator if isinstance(m, nn.Linear)] == [256, 256, 1]
    assert [m.in_features for m in gan.generator if isinstance(m, nn.Linear)] == [96, 1024, 1024]
    dcgan = DCGAN()
    assert dcgan.discriminate(torch.zeros(2, 1, 28, 28)).shape == (2, 1)
    assert sum(p.numel() for p in dcgan.generator.parameters()) > 6_000_000  # 1024 -> 7*7*128 dominates


def test_wgan_gp_nets_are_the_papers_mnist_nets():
    """Gulrajani et al.'s MNIST nets at DIM 64: every layer's parameters counted from the layout by hand."""
    wgan = WGANGP()
    generator = [128 * 4096 + 4096, 256 * 128 * 25 + 128, 128 * 64 * 25 + 64, 64 * 25 + 1]
    critic = [64 * 25 + 64, 64 * 128 * 25 + 128, 128 * 256 * 25 + 256, 4096 + 1]
    assert [sum(p.numel() for p in m.parameters()) for m in wgan.generator if list(m.parameters())] == generator
    assert [sum(p.numel() for p in m.parameters()) for m in wgan.discriminator if list(m.parameters())] == critic
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in wgan.modules())
    noise = wgan.latent_noise(2)
    assert wgan.generate_tanh(noise).shape == (2, 1, 28, 28)
    assert wgan.generator[:6](noise).shape == (2, 128, 7, 7)  # 8x8 cropped to 7x7 before the 14x14 layer
    with pytest.raises(ValueError, match="28x28"):
        WGANGP(image_size=32)


def test_label_errors_name_the_problem():
    with pytest.raises(ValueError, match="class-conditional"):
        tiny(ConditionalGAN).sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        tiny(MLPGAN).sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels of shape \(2,\), got \(3,\)"):
        tiny(ConditionalGAN).sample(2, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        tiny(ConditionalGAN).sample(2, labels=torch.tensor([0, 10]))


@pytest.mark.parametrize("n", [-1, 2.0, True, "2"])
def test_sample_refuses_a_count_that_is_not_a_whole_number_at_least_0(n):
    for model in (tiny(VAE), tiny(MLPGAN)):
        with pytest.raises(ValueError, match=r"whole number of samples n >= 0"):
            model.sample(n)


def test_sample_of_0_is_an_empty_batch_for_conditional_models_too():
    assert tiny(VAE).sample(0).shape == (0, 1, 28, 28)
    model = tiny(ConditionalGAN)
    assert model.sample(0, labels=torch.tensor([], dtype=torch.long)).shape == (0, 1, 28, 28)
    assert model.sample(0, labels=[]).shape == (0, 1, 28, 28)


def test_sample_takes_labels_as_a_list_of_ints_as_zoo_sample_does():
    model = tiny(ConditionalGAN)
    for labels in ([3, 7], (3, 7), torch.tensor([3, 7], dtype=torch.int32)):
        torch.testing.assert_close(model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0)),
                                   model.sample(2, torch.tensor([3, 7]), torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("labels", [torch.tensor([3.5, 7.0]), torch.tensor([3.0, 7.0]), [3.5, 7],
                                    torch.tensor([True, False])])
def test_sample_refuses_labels_that_are_not_integers(labels):
    with pytest.raises(ValueError, match=r"integer class labels, got dtype torch\.(float|bool)"):
        tiny(ConditionalGAN).sample(2, labels=labels)
    with pytest.raises(ValueError, match="tensor or a list of ints"):
        tiny(ConditionalGAN).sample(2, labels=["a", "b"])


def test_conditional_samples_depend_on_the_label():
    model = tiny(ConditionalGAN)
    a = model.sample(2, labels=torch.tensor([0, 0]), generator=torch.Generator().manual_seed(0))
    b = model.sample(2, labels=torch.tensor([7, 7]), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------- loss formulas
def test_kl_matches_the_closed_form_of_torch_distributions():
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6)
    posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    expected = torch.distributions.kl_divergence(posterior, torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_vae_loss_is_bce_plus_kl_summed_per_image():
    model = tiny(VAE).eval()
    x = torch.rand(3, 1, 28, 28)
    terms = model.losses(x, batch_idx=0)
    mu, logvar = model.posterior(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    p = torch.sigmoid(model.decoder(mu + (0.5 * logvar).exp() * eps))
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum(dim=(1, 2, 3))
    torch.testing.assert_close(terms["bce"], bce.mean(), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(terms["loss"], terms["bce"] + terms["kl"])
    torch.testing.assert_close(model.losses(x, 0)["loss"], terms["loss"])  # eval losses are reproducible


def test_gan_lsgan_and_wgan_losses_match_their_formulas():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sig = torch.sigmoid
    gan = tiny(MLPGAN)
    expected_d = -(sig(real).log().mean() + (1 - sig(fake)).log().mean())
    torch.testing.assert_close(gan.discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(gan.generator_loss(fake), -sig(fake).log().mean())
    ls = tiny(LSGAN)
    expected_ls = torch.tensor(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2)  # 1/2 mean (real - 1)^2 + 1/2 mean fake^2
    torch.testing.assert_close(ls.discriminator_loss(real, fake), expected_ls)
    torch.testing.assert_close(ls.generator_loss(fake), torch.tensor(0.5 * (0.25 + 16) / 2))
    for switched in (tiny(DCGAN, least_squares=True), tiny(ConditionalGAN, least_squares=True)):  # the base's switch
        torch.testing.assert_close(switched.discriminator_loss(real, fake), expected_ls)
        torch.testing.assert_close(switched.generator_loss(fake), torch.tensor(0.5 * (0.25 + 16) / 2))
    w = tiny(WGANGP)
    torch.testing.assert_close(w.discriminator_loss(real, fake), torch.tensor((0.5 - 3) / 2 - (2 - 1) / 2))
    torch.testing.assert_close(w.generator_loss(fake), torch.tensor(1.25))


def test_a_loss_switch_that_contradicts_the_model_is_refused():
    with pytest.raises(ValueError, match="use MLPGAN for least_squares=False"):
        tiny(LSGAN, least_squares=False)
    with pytest.raises(ValueError, match="Wasserstein losses: least_squares must be false"):
        tiny(WGANGP, least_squares=True)
    with pytest.raises(ValueError, match="r1_gamma must be 0"):
        tiny(WGANGP, r1_gamma=10.0)
    with pytest.raises(ValueError, match="r1_gamma must be >= 0"):
        tiny(DCGAN, r1_gamma=-1.0)


def test_gradient_penalty_against_hand_computation():
    """Critic D(x) = sum(x^2) + w.x: grad at x_hat is 2 x_hat + w; GP = mean((||2 x_hat + w|| - 1)^2)."""
    torch.manual_seed(0)
    w = torch.randn(1, 3)
    critic = lambda x: (x.pow(2) + w * x).sum(dim=1, keepdim=True)  # noqa: E731
    real, fake, mix = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0.0, 0.25, 0.5, 1.0])
    x_hat = mix[:, None] * real + (1 - mix[:, None]) * fake
    expected = ((2 * x_hat + w).norm(dim=1) - 1).pow(2).mean()
    torch.testing.assert_close(gradient_penalty(critic, real, fake, mix), expected)
    linear = nn.Linear(3, 1)  # a linear critic's gradient is its weight everywhere
    expected_linear = (linear.weight.norm() - 1).pow(2)
    torch.testing.assert_close(gradient_penalty(linear, real, fake), expected_linear)


def test_r1_penalty_against_hand_computation():
    """D(x) = sum(x^2) + w.x has grad 2x + w at the real x: R1 = mean ||2x + w||^2, before gamma / 2."""
    torch.manual_seed(0)
    w = torch.randn(1, 3)
    discriminator = lambda x: (x.pow(2) + w * x).sum(dim=1, keepdim=True)  # noqa: E731
    real = torch.randn(4, 3)
    torch.testing.assert_close(r1_penalty(discriminator, real), (2 * real + w).pow(2).sum(dim=1).mean())
    linear = nn.Linear(3, 1)
    penalty = r1_penalty(linear, real)
    torch.testing.assert_close(penalty, linear.weight.pow(2).sum())
    penalty.backward()  # differentiable in the discriminator: d/dw ||w||^2 = 2w
    torch.testing.assert_close(linear.weight.grad, 2 * linear.weight.detach())


def test_r1_gamma_adds_its_penalty_to_the_discriminator_loss_only_when_set():
    torch.manual_seed(0)
    real, fake = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    assert tiny(DCGAN).penalty(real, fake, None) == 0
    model = tiny(DCGAN, r1_gamma=10.0)
    expected = 5.0 * r1_penalty(model.discriminate, real)
    assert expected > 0
    torch.testing.assert_close(model.penalty(real, fake, None), expected)
    conditional = tiny(ConditionalGAN, r1_gamma=2.0)  # the labels reach the discriminator
    labels = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(conditional.penalty(real, fake, labels),
                               r1_penalty(lambda x: conditional.discriminate(x, labels), real))


def test_gradient_penalty_is_differentiable_in_the_critic():
    linear = nn.Linear(3, 1)
    gradient_penalty(linear, torch.randn(4, 3), torch.randn(4, 3)).backward()
    assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- optimizer steps
class StepRecorder:
    """Wraps ``GAN._optimizer_step`` to record which parameters each step gave gradients to and changed."""

    def __init__(self, model: GAN) -> None:
        self.model, self.steps = model, []
        self.original = model._optimizer_step
        model._optimizer_step = self.step

    def step(self, optimizer, loss):
        nets = {"discriminator": self.model.discriminator, "generator": self.model.generator}
        before = {name: [p.detach().clone() for p in net.parameters()] for name, net in nets.items()}
        stepped = "discriminator" if optimizer.optimizer is self.model.optimizers()[0].optimizer else "generator"
        self.original(optimizer, loss)
        changed = {name: [not torch.equal(b, p) for b, p in zip(before[name], net.parameters())]
                   for name, net in nets.items()}
        no_grad = {name for name, p in nets[stepped].named_parameters() if p.grad is None or not p.grad.any()}
        self.steps.append((stepped, changed, no_grad))


@pytest.mark.parametrize("cls", GAN_CLASSES)
def test_each_step_updates_every_parameter_of_its_network_and_none_of_the_other(cls, mnist_root):
    model = tiny(cls, n_critic=1)
    recorder = StepRecorder(model)
    fit_briefly(model, mnist_root, 2)
    assert [s[0] for s in recorder.steps] == ["discriminator", "generator"] * 2
    # the Wasserstein loss E[D(fake)] - E[D(real)] and the penalty do not depend on the critic's output bias
    output_bias = f"{len(model.discriminator) - 1}.bias"
    exempt = {"discriminator": {output_bias} if cls is WGANGP else set(), "generator": set()}
    for stepped, changed, no_grad in recorder.steps:
        other = "generator" if stepped == "discriminator" else "discriminator"
        assert no_grad == exempt[stepped], f"{stepped} step: parameters without gradient: {no_grad}"
        assert sum(changed[stepped]) == len(changed[stepped]) - len(exempt[stepped]), f"{stepped} left one unchanged"
        assert not any(changed[other]), f"{stepped} step changed the {other}"


def test_n_critic_discriminator_steps_per_generator_step(mnist_root):
    model = tiny(MLPGAN, n_critic=3)
    trainer = fit_briefly(model, mnist_root, 7)
    d_optimizer, g_optimizer = trainer.optimizers
    steps = [int(next(iter(opt.state.values()))["step"]) for opt in (d_optimizer, g_optimizer)]
    assert steps == [7, 2]
    assert trainer.global_step == 9  # Lightning counts every optimizer step under manual optimization
    with pytest.raises(ValueError, match="n_critic must be >= 1"):
        tiny(MLPGAN, n_critic=0)


def test_gradient_clipping_bounds_the_step_norm(mnist_root):
    clipped = []
    model = tiny(MLPGAN, gradient_clip_norm=1e-3)
    original = model.clip_gradients

    def record(optimizer, **kwargs):
        original(optimizer, **kwargs)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        clipped.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item())

    model.clip_gradients = record
    fit_briefly(model, mnist_root, 2)
    assert len(clipped) == 4 and max(clipped) <= 1e-3 * 1.01


def test_autoencoder_tracks_its_code_statistics(mnist_root):
    model = tiny(MLPAutoencoder)
    fit_briefly(model, mnist_root, 3, batch_size=16)
    assert not torch.equal(model.code_mean, torch.zeros(3)) and not torch.equal(model.code_std, torch.ones(3))


# ---------------------------------------------------------------- checkpoints and shipped weights
def test_checkpoint_round_trip_gives_the_same_samples(tmp_path, mnist_root):
    model = tiny(DCGAN)
    fit_briefly(model, mnist_root, 2, ckpt=tmp_path / "dcgan.ckpt")
    loaded = DCGAN.load_from_checkpoint(tmp_path / "dcgan.ckpt", weights_only=True)
    expected = model.sample(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.sample(4, generator=torch.Generator().manual_seed(0)), expected)


def test_export_ships_only_the_generator_and_load_refuses_missing_generator_keys(tmp_path, mnist_root, monkeypatch):
    for name in ("lenet_mnist.json", "lenet_mnist.safetensors"):  # the classifier the quality metrics use
        shutil.copy(REPO / "checkpoints" / name, tmp_path / name)
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path))
    model = tiny(ConditionalGAN)
    fit_briefly(model, mnist_root, 2, ckpt=tmp_path / "cgan.ckpt")
    manifest = export.export("cgan_mnist", str(tmp_path / "cgan.ckpt"), "zoo fit -c cgan_mnist", out_dir=tmp_path)
    assert manifest.weights_hold_only == ["generator"]
    stored = load_file(tmp_path / "cgan_mnist.safetensors")
    assert stored and all(key.startswith("generator.") for key in stored)
    assert set(stored) == {f"generator.{k}" for k in model.generator.state_dict()}
    metrics = manifest.metrics
    assert "test/d_loss" not in metrics  # the discriminator is not shipped: no figure may depend on it
    assert {"test/fd_lenet", "test/fd_lenet_train_floor", "test/fd_lenet_noise",
            "test/label_acc", "test/label_acc_9"} <= set(metrics)
    assert 0 <= metrics["test/label_acc"] <= 1 and metrics["test/fd_lenet"] >= 0

    loaded = hub.load("cgan_mnist")
    labels = torch.arange(10)
    torch.testing.assert_close(loaded.sample(10, labels, torch.Generator().manual_seed(0)),
                               model.sample(10, labels, torch.Generator().manual_seed(0)))
    measured, recorded = evaluation.evaluate("cgan_mnist")
    for key in ("test/fd_lenet", "test/label_acc", "test/fd_lenet_noise"):
        assert measured[key] == pytest.approx(recorded[key], rel=1e-6)

    del stored[next(iter(stored))]  # a generator key missing: refused
    save_file(stored, tmp_path / "cgan_mnist.safetensors")
    written = {**manifest.to_dict(), "sha256": hub.sha256(tmp_path / "cgan_mnist.safetensors")}
    (tmp_path / "cgan_mnist.json").write_text(json.dumps(written))
    with pytest.raises(hub.CheckpointError, match="missing keys.*generator"):
        hub.load("cgan_mnist")
    del written["weights_hold_only"]  # without the declaration, the missing discriminator is refused too
    (tmp_path / "cgan_mnist.json").write_text(json.dumps(written))
    with pytest.raises(hub.CheckpointError, match="discriminator"):
        hub.load("cgan_mnist")


class PhotosWithTest(TwoClassPhotos):
    def test_dataloader(self):
        return rgb_batches(size=32)


@pytest.mark.parametrize("cls", [MLPGAN, VAE])
def test_sample_quality_of_samples_the_classifier_cannot_read_is_left_out_with_a_note(cls, capsys):
    """A run on 3x32x32 photos: lenet_mnist reads 1x28x28, so zoo evaluate and zoo export record the metrics that
    can be measured and say why the Fréchet distance is missing, instead of a convolution traceback."""
    model = tiny(cls, in_channels=3, image_size=32)
    metrics = evaluation.model_metrics(model, PhotosWithTest())
    assert not any(key.startswith(("test/fd_", "test/class_share", "test/label_acc")) for key in metrics)
    assert ("test/loss" in metrics) == (cls is VAE)
    note = capsys.readouterr().err
    assert "lenet_mnist" in note and "(1, 28, 28)" in note and "(3, 32, 32)" in note and "left out" in note
    with pytest.raises(evaluation.SampleShapeError, match=r"reads images of shape \(1, 28, 28\).* draws \(3, 32, 32\)"):
        sample_quality(model, PhotosWithTest(), "lenet_mnist")


def test_classifier_features_are_the_penultimate_layer():
    lenet = LeNet().eval()
    features = ClassifierFeatures(lenet, mean=0.5, std=0.25)
    x = torch.rand(3, 1, 28, 28)
    assert features.num_features == 84 and features(x).shape == (3, 84)
    torch.testing.assert_close(features.head(features(x)), lenet((x - 0.5) / 0.25))
    with pytest.raises(ValueError, match="nn.Sequential"):
        ClassifierFeatures(nn.Linear(2, 2))


# ---------------------------------------------------------------- fits through the CLI (every entry's
# fast_dev_run: tests/test_registry.py)
def test_sample_grid_callback_writes_a_png_each_epoch(tmp_path, mnist_root):
    from torchvision.io import read_image

    proc = ok(run_zoo("fit", "-c", "cgan_mnist", "--data.root", str(mnist_root), "--data.batch_size", "50",
                      "--model.g_hidden", "[16]", "--model.d_hidden", "[16]", "--trainer.max_epochs", "2",
                      "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                      "--test_after_fit", "false", env={"OMP_NUM_THREADS": "1"}, timeout=180))
    grids = sorted(tmp_path.rglob("samples/epoch=*.png"))
    assert [g.name for g in grids] == ["epoch=000.png", "epoch=001.png"], proc.stdout[-2000:]
    assert read_image(str(grids[0])).shape[1:] == (2 + 10 * 30, 2 + 8 * 30)  # one row of 8 per class
    assert list(tmp_path.rglob("events.out.tfevents.*"))


def test_bf16_mixed_fit_of_wgan_gp(tmp_path, mnist_root):
    ok(run_zoo("fit", "-c", "wgan_gp_mnist", "--data.root", str(mnist_root), "--data.batch_size", "8",
               "--trainer.precision", "bf16-mixed", "--trainer.fast_dev_run", "5",
               "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
               env={"OMP_NUM_THREADS": "1"}, timeout=300))


def test_ddp_two_process_fit_of_wgan_gp_keeps_both_networks_equal_on_every_rank(tmp_path, mnist_root):
    """Two CPU processes; tests/helpers/gan_ddp_check.py asserts inside the ranks after every batch. WGAN-GP exercises
    the gradient penalty's double backward and ``n_critic``; the sample-grid callback runs on rank 0 only."""
    proc = ok(run_zoo(
        "fit", "-c", "wgan_gp_mnist", "--data.root", str(mnist_root), "--data.batch_size", "8",
        "--model.n_critic", "2", "--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "1",
        "--trainer.callbacks+=tests.helpers.gan_ddp_check.GANWeightsEqualAcrossRanks",
        "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
        "--trainer.default_root_dir", str(tmp_path), env={"OMP_NUM_THREADS": "1"}, timeout=300))
    assert proc.stdout.count("GAN weights equal across ranks (4 checks)") == 2, proc.stdout[-2000:]
    assert [g.name for g in tmp_path.rglob("samples/epoch=*.png")] == ["epoch=000.png"]


def test_a_gan_under_plain_ddp_names_the_trainer_strategy_for_a_python_caller():
    """Without processes: the check reads only whether the strategy's DDP wrapper finds unused parameters."""
    ddp = DistributedDataParallel.__new__(DistributedDataParallel)
    object.__setattr__(ddp, "find_unused_parameters", False)
    model = tiny(MLPGAN)
    model.trainer = SimpleNamespace(strategy=SimpleNamespace(model=ddp))
    with pytest.raises(ValueError, match=r"Use Trainer\(strategy='ddp_find_unused_parameters_true'\)\.$"):
        model.on_fit_start()


def test_plain_ddp_fit_of_a_gan_names_the_strategy_to_use(tmp_path, mnist_root):
    proc = run_zoo(
        "fit", "-c", "gan_mnist", "--data.root", str(mnist_root), "--data.batch_size", "8",
        "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--test_after_fit", "false", "--trainer.default_root_dir", str(tmp_path),
        env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode != 0
    assert "ddp_find_unused_parameters_true" in proc.stderr


def test_sample_script_writes_grid_strip_and_scatter(tmp_path, mnist_root):
    model = tiny(MLPAutoencoder)
    fit_briefly(model, mnist_root, 1, ckpt=tmp_path / "ae.ckpt")
    outs = [tmp_path / f"{name}.png" for name in ("grid", "strip", "scatter")]
    cmd = [sys.executable, "-m", "scripts.figures.sample_generative", "ae_mlp_mnist", "--ckpt_path",
           str(tmp_path / "ae.ckpt"), "--out", str(outs[0]), "--strip", str(outs[1]), "--scatter", str(outs[2])]
    env = {"OMP_NUM_THREADS": "1", "ZOO_DATA_DIR": str(mnist_root), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from torchvision.io import read_image

    assert read_image(str(outs[0])).shape[1:] == (2 + 6 * 30, 2 + 10 * 30)
    assert read_image(str(outs[1])).shape[1:] == (2 + 10 * 30, 2 + 10 * 30)  # 10 pairs, 8 steps + 2 ends
    assert outs[2].stat().st_size > 1000


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
def test_fd_floor_is_far_below_the_noise_reference(real_data):
    """On real MNIST the FD between training and test images is tiny next to the noise reference's."""
    vae = tiny(VAE)
    dm = MNISTDataModule(root=str(real_data), normalize=False)
    metrics = sample_quality(vae, dm, vae.hparams.quality_classifier, num_samples=2000)
    assert metrics["test/fd_lenet_train_floor"] < 0.05 * metrics["test/fd_lenet_noise"]
    assert math.isfinite(metrics["test/fd_lenet"])


SHIPPED_GENERATIVE = [e for e in GENERATIVE_ENTRIES if registry.get(e).manifest_path.exists()]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("entry", SHIPPED_GENERATIVE)
def test_shipped_generative_entries_re_measure_their_sample_quality(entry, real_data):
    model = hub.load(entry)
    recorded = registry.get(entry).manifest().metrics
    measured = sample_quality(model, hub.build_datamodule(entry), model.hparams.quality_classifier)
    assert any(key.startswith("test/fd_") for key in measured)
    for key, value in measured.items():
        assert value == pytest.approx(recorded[key], rel=1e-3, abs=1e-4), key


def test_real_images_of_every_image_datamodule_are_in_0_1(mnist_root, cifar_root):
    """The sample-quality metrics' real images: the MNIST family's float images as held, CIFAR-10's (and image
    folders') uint8 images / 255; a normalized MNIST datamodule is refused."""
    from datamodules import CIFAR10DataModule

    cifar = CIFAR10DataModule(root=str(cifar_root), val_size=10)
    test_images = evaluation.real_images(cifar, "test")
    assert test_images.dtype == torch.float32 and test_images.shape == (20, 3, 32, 32)
    assert torch.equal(test_images, cifar.test_set.tensors[0].float() / 255)
    assert 0.0 <= float(evaluation.real_images(cifar, "train").min()) <= float(test_images.max()) <= 1.0
    mnist = MNISTDataModule(root=str(mnist_root), normalize=False)
    assert torch.equal(evaluation.real_images(mnist, "test"), mnist.test_set.images)
    with pytest.raises(ValueError, match="normalize=False"):
        evaluation.real_images(MNISTDataModule(root=str(mnist_root)), "test")
