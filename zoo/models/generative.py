"""Task bases of the zoo's generative models: autoencoders, VAEs and GANs.

Pixel range: every generative model reads and returns images in [0, 1] (configure the MNIST datamodules with
``normalize: false``). Networks with a tanh output work in [-1, 1] inside the model (:func:`to_tanh_range`,
:func:`from_tanh_range`), so ``sample`` always returns images in the datamodule's [0, 1].

- :class:`GenerativeModel`: ``sample(n, labels=None, generator=None) -> (n, C, H, W)``, reproducible for a given
  ``torch.Generator``; its ``quality_classifier`` names the zoo classifier in whose features
  :func:`zoo.evaluation.sample_quality` measures the samples (what ``zoo evaluate`` prints).
- :class:`Autoencoder`: ``encode``/``decode`` and a reconstruction loss; samples decode codes drawn from a
  Gaussian fitted to the training codes (running mean and std).
- :class:`GAN`: manual optimization of two optimizers (Goodfellow et al., 2014, Algorithm 1): ``n_critic``
  discriminator steps per generator step, optional gradient-norm clipping; subclasses change the loss
  (:meth:`GAN.discriminator_loss`, :meth:`GAN.generator_loss`) or add a penalty (:meth:`GAN.penalty`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from zoo.errors import option
from zoo.layers.generative_losses import gaussian_kl, least_squares_d_loss, least_squares_g_loss, r1_penalty
from zoo.models.base import ZooModule, check_class_count, check_count


def to_tanh_range(images: Tensor) -> Tensor:
    """Images in [0, 1] to [-1, 1]."""
    return images * 2 - 1


def from_tanh_range(images: Tensor) -> Tensor:
    """Images in [-1, 1] to [0, 1]."""
    return (images + 1) / 2


#: what ``sample`` and the label checks take as labels: a tensor or a sequence of ints (``zoo sample --labels 3 7``).
Labels = Union[Tensor, Sequence[int]]


def check_class_labels(model: nn.Module, labels: Optional[Labels], n: int, num_classes: int) -> Tensor:
    """Class labels ``(n,)`` long in ``[0, num_classes)`` of a conditional model, from a tensor or a sequence of
    ints; one ``ValueError`` naming the problem otherwise (missing, not integers, wrong shape, out of range)."""
    name = type(model).__name__
    if labels is None:
        raise ValueError(f"{name} is class-conditional: pass labels of shape ({n},) in [0, {num_classes})")
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} takes labels as a tensor or a list of ints, got {labels!r}") from None
        labels = labels if labels.numel() else labels.long()  # [] converts to float32
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} takes integer class labels, got dtype {labels.dtype}; pass a long tensor or a "
                         f"list of ints in [0, {num_classes}) (.long() would truncate values such as 3.5)")
    if labels.shape != (n,):
        raise ValueError(f"{name} expects labels of shape ({n},), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values {labels.min()}..{labels.max()}")
    return labels.long()


class GenerativeModel(ZooModule):
    """Base of the generative models: the ``sample`` interface, label checks and the sample-quality metrics.

    Args:
        latent_dim: size of the code (autoencoders) or of the noise (GANs).
        conditional: the model takes class labels (``sample`` then needs ``labels``).
        num_classes: classes of the labels.
        in_channels: image channels.
        image_size: image height and width.
        quality_classifier: the shipped zoo classifier whose penultimate layer measures the samples.
        **kwargs: optimizer arguments of :class:`ZooModule`.
    """

    def __init__(
        self,
        latent_dim: int = 20,
        conditional: bool = False,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        quality_classifier: str = "lenet_mnist",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def setup(self, stage: str) -> None:
        """A conditional model refuses a datamodule with another number of classes (as a classifier does)."""
        super().setup(stage)
        if self.hparams.conditional:
            check_class_count(self)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        hp = self.hparams
        return (hp.in_channels, hp.image_size, hp.image_size)

    def check_images(self, x: Tensor) -> None:
        """Refuse images ``x`` that are not ``(N, *image_shape)``, naming both shapes (one line)."""
        self.check_input(x, (None, *self.image_shape), name="images")

    def check_pixel_range(self, x: Tensor) -> None:
        """Refuse images outside [0, 1] (normalized pixels): the models would learn, and sample, another range."""
        low, high = torch.aminmax(x.detach())
        low, high = float(low), float(high)
        if low < 0 or high > 1:
            raise ValueError(f"{type(self).__name__} reads pixels in [0, 1], but a training batch holds values "
                             f"{low:.2f}..{high:.2f}: the datamodule normalizes them; pass "
                             f"{option('data', 'normalize', False)}")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Check the pixel range of the first training batch of each fit: the datamodule's normalization is the same
        for every batch, and a min/max read on every step would wait for the device (shapes are checked where the
        images are read)."""
        if getattr(self, "_pixel_range_checked_for", None) != id(self.trainer):
            self.check_pixel_range(batch[0] if isinstance(batch, (tuple, list)) else batch)
            self._pixel_range_checked_for = id(self.trainer)

    def check_labels(self, labels: Optional[Labels], n: int) -> Optional[Tensor]:
        """``labels`` (a tensor or a list of ints) on the model's device if the model is conditional (``None``
        otherwise), after :func:`check_class_labels`."""
        hp = self.hparams
        if not hp.conditional:
            if labels is not None:
                raise ValueError(f"{type(self).__name__} is unconditional (conditional=False): pass no labels")
            return None
        return check_class_labels(self, labels, n, hp.num_classes).to(self.device)

    def one_hot(self, labels: Tensor) -> Tensor:
        return F.one_hot(labels, self.hparams.num_classes).to(self.dtype)

    def latent_noise(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """Standard normal noise ``(n, latent_dim)``, drawn on the CPU (so a CPU generator fixes it everywhere)."""
        return torch.randn(n, self.hparams.latent_dim, generator=generator).to(self.device, self.dtype)

    def generate(self, noise: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Images ``(n, C, H, W)`` in [0, 1] from latent noise ``(n, latent_dim)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement generate()")

    @torch.no_grad()
    def sample(self, n: int, labels: Optional[Labels] = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` images ``(n, C, H, W)`` in [0, 1] (``n = 0``: an empty batch); ``labels`` ``(n,)``, a long tensor
        or a list of ints, picks their classes if conditional.

        Runs in eval mode (batch norm uses its running statistics) and restores the mode; the same generator
        state gives the same images.
        """
        n = check_count(self, n, "sample(n)", "samples n")
        labels = self.check_labels(labels, n)
        was_training = self.training
        self.eval()
        images = self.generate(self.latent_noise(n, generator), labels)
        self.train(was_training)
        return images.float()

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One sample per image of the batch (of the batch's labels when conditional)."""
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return self.sample(len(x), labels=y if self.hparams.conditional else None)


# ---------------------------------------------------------------------------------------------- autoencoders
class Autoencoder(GenerativeModel):
    """An encoder to a ``latent_dim`` code and a decoder back, trained on a reconstruction loss.

    Subclasses build ``build_encoder`` (images -> codes ``(N, latent_dim)``) and ``build_decoder`` (codes ->
    images ``(N, C, H, W)`` in [-1, 1], a tanh output). The loss is the mean squared error in [0, 1].
    ``sample`` decodes codes drawn from N(code_mean, code_std^2), the running statistics of the training codes.
    Logs ``train/loss``, ``val/loss``, ``test/loss``.
    """

    code_momentum: float = 0.01

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = self.build_encoder()
        self.decoder = self.build_decoder()
        self.register_buffer("code_mean", torch.zeros(self.hparams.latent_dim))
        self.register_buffer("code_std", torch.ones(self.hparams.latent_dim))

    def build_encoder(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement build_encoder()")

    def build_decoder(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement build_decoder()")

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(N, latent_dim)`` of images ``x`` ``(N, C, H, W)`` in [0, 1]."""
        self.check_images(x)
        return self.encoder(to_tanh_range(x))

    def decode(self, codes: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] of codes ``(N, latent_dim)``."""
        return from_tanh_range(self.decoder(codes))

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of ``x``."""
        return self.decode(self.encode(x))

    def generate(self, noise: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return self.decode(self.code_mean + self.code_std * noise)

    @torch.no_grad()
    def update_code_statistics(self, codes: Tensor) -> None:
        m = self.code_momentum
        self.code_mean.lerp_(codes.mean(0).to(self.code_mean.dtype), m)
        self.code_std.lerp_(codes.std(0).to(self.code_std.dtype), m)

    def losses(self, x: Tensor, batch_idx: int) -> dict[str, Tensor]:
        """The loss terms of a batch; ``"loss"`` is optimized."""
        codes = self.encode(x)
        if self.training:
            self.update_code_statistics(codes.detach().float())
        return {"loss": F.mse_loss(self.decode(codes), x)}

    def _step(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> Tensor:
        x, _ = batch
        terms = self.losses(x, batch_idx)
        for name, value in terms.items():
            self.log_loss(stage, name, value, len(x), prog_bar=name == "loss")
        return terms["loss"]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, batch_idx, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, batch_idx, "test")


class VariationalAutoencoder(Autoencoder):
    """VAE (Kingma & Welling, 2014): the encoder gives ``(mu, logvar)`` ``(N, 2 * latent_dim)``, the decoder
    Bernoulli logits.

    Loss per image, in nats: ``BCE(decode(z), x)`` summed over the pixels plus ``KL(q(z|x) || N(0, I))``, with
    ``z = mu + exp(logvar / 2) * eps`` (reparameterization), averaged over the batch (the PyTorch example's loss
    divided by the number of images). Outside training, ``eps`` is drawn from a generator seeded by the batch
    index, so validation and test losses are reproducible. ``encode`` returns ``mu``; ``sample`` decodes N(0, I).
    Logs ``<stage>/loss``, ``<stage>/bce``, ``<stage>/kl``.
    """

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of q(z | x), each ``(N, latent_dim)``."""
        self.check_images(x)
        return self.encoder(x).chunk(2, dim=1)

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def decode(self, codes: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(codes))

    def generate(self, noise: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return self.decode(noise)

    def losses(self, x: Tensor, batch_idx: int) -> dict[str, Tensor]:
        mu, logvar = self.posterior(x)
        if self.training:
            eps = torch.randn_like(mu)
        else:
            eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(batch_idx)).to(mu)
        z = mu + (0.5 * logvar).exp() * eps
        logits = self.decoder(z)
        bce = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1)
        kl = gaussian_kl(mu.float(), logvar.float())
        return {"loss": (bce + kl).mean(), "bce": bce.mean(), "kl": kl.mean()}


class GAN(GenerativeModel):
    """Generative adversarial network trained with Lightning's manual optimization.

    Every training batch makes one discriminator step; every ``n_critic``-th batch also one generator step.
    Each step toggles its optimizer (the other network's parameters get no gradient), backpropagates with
    ``manual_backward`` (so the precision plugin, e.g. ``bf16-mixed``, takes part) and clips gradient norms to
    ``gradient_clip_norm`` when set. Subclasses build ``build_generator`` (noise ``(N, latent_dim)`` [plus
    one-hot labels when conditional] -> images in [-1, 1]) and ``build_discriminator`` (images -> scores
    ``(N, 1)``), and may change :meth:`discriminator_loss`, :meth:`generator_loss` and :meth:`penalty`.
    The loss is the non-saturating one of Goodfellow et al. (2014, section 3), or with ``least_squares`` the
    least-squares one of Mao et al. (2017, eq. 2: targets b = c = 1, a = 0).

    Under DDP each ``manual_backward`` averages its network's gradients over the ranks; the strategy must be
    ``ddp_find_unused_parameters_true``, because each step leaves the other network out of the graph
    (:meth:`on_fit_start` says so when it is not).

    Logs ``train/d_loss``, ``train/g_loss`` and, on fixed noise (seeded by the batch index), ``val/d_loss``,
    ``val/g_loss``; the test figures are the sample-quality metrics. There is no model-selection metric: the zoo
    checkpoint keeps the last epoch.

    Args:
        n_critic: discriminator steps per generator step.
        gradient_clip_norm: clip each network's gradient norm to this (``None``: no clipping).
        least_squares: train with :func:`least_squares_d_loss` and :func:`least_squares_g_loss` instead of the
            cross-entropy losses.
        r1_gamma: if above 0, add the R1 penalty ``r1_gamma / 2 * E[||grad D(x)||^2]`` on real images to the
            discriminator loss (Mescheder et al., 2018, eq. 9; they use 10): it damps the discriminator's
            oscillation around the data, which the plain losses leave undamped.
        **kwargs: :class:`GenerativeModel` arguments (``latent_dim``, ``conditional``, optimizer, ...).
    """

    checkpoint_monitor = None
    #: shipped weights hold only these modules' keys (the discriminator serves training only).
    shipped_modules: tuple[str, ...] = ("generator",)

    def __init__(self, n_critic: int = 1, gradient_clip_norm: Optional[float] = None, least_squares: bool = False,
                 r1_gamma: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if r1_gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0 (0 turns the R1 penalty off), got {r1_gamma}")
        self.automatic_optimization = False
        self.generator = self.build_generator()
        self.discriminator = self.build_discriminator()

    def build_generator(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement build_generator()")

    def build_discriminator(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement build_discriminator()")

    # -------------------------------------------------------------- the two networks, in [-1, 1]
    def generate_tanh(self, noise: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Generator images in [-1, 1]; a conditional model gets ``[noise, one_hot(labels)]``."""
        if labels is not None:
            noise = torch.cat([noise, self.one_hot(labels)], dim=1)
        return self.generator(noise)

    def discriminate(self, images: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Scores ``(N, 1)`` of images in [-1, 1]; a conditional model gets ``[flat images, one_hot(labels)]``."""
        if labels is not None:
            images = torch.cat([images.flatten(1), self.one_hot(labels)], dim=1)
        return self.discriminator(images)

    def generate(self, noise: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return from_tanh_range(self.generate_tanh(noise, labels))

    # -------------------------------------------------------------- losses
    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        """``-log D(x) - log(1 - D(G(z)))``, as logits (or :func:`least_squares_d_loss`)."""
        if self.hparams.least_squares:
            return least_squares_d_loss(real_scores, fake_scores)
        return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        """``-log D(G(z))``, the non-saturating generator loss (or :func:`least_squares_g_loss`)."""
        if self.hparams.least_squares:
            return least_squares_g_loss(fake_scores)
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))

    def penalty(self, real: Tensor, fake: Tensor, labels: Optional[Tensor]) -> Tensor:
        """A term added to the discriminator loss: the R1 penalty when ``r1_gamma`` is set, else none."""
        if not self.hparams.r1_gamma:
            return real.new_zeros(())
        return self.hparams.r1_gamma / 2 * r1_penalty(lambda x: self.discriminate(x, labels), real)

    def batch_losses(self, real: Tensor, labels: Optional[Tensor], noise: Tensor) -> tuple[Tensor, Tensor]:
        """(d_loss, g_loss) of real images in [-1, 1] and one noise batch, without penalty (evaluation)."""
        fake = self.generate_tanh(noise, labels)
        fake_scores = self.discriminate(fake, labels)
        d_loss = self.discriminator_loss(self.discriminate(real, labels), fake_scores)
        return d_loss, self.generator_loss(fake_scores)

    # -------------------------------------------------------------- training
    def on_fit_start(self) -> None:
        """Refuses DDP without ``find_unused_parameters``: each step's graph leaves one network out."""
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters:
            raise ValueError(
                f"{type(self).__name__} trains its discriminator and generator in separate steps, so each step "
                "leaves the other network's parameters unused, which plain DDP refuses. Use "
                f"{option('trainer', 'strategy', 'ddp_find_unused_parameters_true')}.")

    def configure_optimizers(self) -> Any:
        """One optimizer per network, both from the hyperparameters: ``[discriminator's, generator's]``."""
        return [self.build_optimizer(network.parameters()) for network in (self.discriminator, self.generator)]

    def _optimizer_step(self, optimizer: Any, loss: Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.hparams.gradient_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_norm,
                                gradient_clip_algorithm="norm")
        optimizer.step()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.check_images(x)
        real = to_tanh_range(x)
        labels = self.check_labels(y, len(x)) if self.hparams.conditional else None
        d_optimizer, g_optimizer = self.optimizers()

        self.toggle_optimizer(d_optimizer)
        with torch.no_grad():
            fake = self.generate_tanh(self.latent_noise(len(x)), labels)
        d_loss = self.discriminator_loss(self.discriminate(real, labels), self.discriminate(fake, labels))
        d_loss = d_loss + self.penalty(real, fake, labels)
        self._optimizer_step(d_optimizer, d_loss)
        self.untoggle_optimizer(d_optimizer)
        self.log("train/d_loss", d_loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))

        if (batch_idx + 1) % self.hparams.n_critic == 0:
            self.toggle_optimizer(g_optimizer)
            fake = self.generate_tanh(self.latent_noise(len(x)), labels)
            g_loss = self.generator_loss(self.discriminate(fake, labels))
            self._optimizer_step(g_optimizer, g_loss)
            self.untoggle_optimizer(g_optimizer)
            self.log("train/g_loss", g_loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))

    def _evaluate(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> None:
        x, y = batch
        self.check_images(x)
        labels = self.check_labels(y, len(x)) if self.hparams.conditional else None
        noise = self.latent_noise(len(x), torch.Generator().manual_seed(batch_idx))
        d_loss, g_loss = self.batch_losses(to_tanh_range(x), labels, noise)
        self.log(f"{stage}/d_loss", d_loss, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        self.log(f"{stage}/g_loss", g_loss, on_epoch=True, batch_size=len(x), sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Logs nothing: the shipped weights hold only the generator, so losses that need the discriminator
        could not be re-measured from them. A GAN's test figures are its sample quality
        (:func:`zoo.evaluation.sample_quality`, which ``zoo export`` and ``zoo evaluate`` add)."""

