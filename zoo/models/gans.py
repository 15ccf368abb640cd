"""The GAN family of chapter 6 of "深度学习入门之PyTorch" (Liao Xingyu, 2017), on the GAN base of
:mod:`zoo.models.generative` (images in [0, 1] in and out; the networks work in [-1, 1] inside).

- :class:`MLPGAN` (section 6.4): D 784-256-256-1 LeakyReLU 0.2, G 96-1024-1024-784 tanh (Goodfellow et al., 2014).
- :class:`LSGAN`: the same nets with the base's least-squares loss (Mao et al., 2017, eq. 2 with a=0, b=c=1).
- :class:`DCGAN` (section 6.4): the book's convolutional D and G (Radford et al., 2016); its entry adds the GAN
  base's R1 penalty on D (Mescheder et al., 2018), without which it under-draws some digits.
- :class:`WGANGP`: the WGAN-GP paper's own MNIST critic and generator (no batch norm), gradient penalty 10,
  n_critic 5 (Gulrajani et al., 2017, Algorithm 1).
- :class:`ConditionalGAN`: the MLP nets with the one-hot label appended to the noise and to the image
  (Mirza & Osindero, 2014).
"""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn

from zoo.layers.generative_losses import gradient_penalty
from zoo.layers.heads import mlp
from zoo.models.generative import GAN


def require_unconditional_28x28(gan: GAN) -> None:
    """Refuse settings that the fixed-size convolutional nets (DCGAN's, WGAN-GP's) cannot serve."""
    if gan.hparams.image_size != 28 or gan.hparams.conditional:
        raise ValueError(f"{type(gan).__name__}'s nets fit unconditional 28x28 images: set image_size=28, "
                         "conditional=false")


class MLPGAN(GAN):
    """Fully connected GAN: D ``784 -> d_hidden -> 1`` with LeakyReLU 0.2, G ``latent_dim -> g_hidden -> 784``
    with ReLU and a tanh output. A conditional model's nets take ``num_classes`` more inputs.

    Args:
        d_hidden: discriminator hidden sizes.
        g_hidden: generator hidden sizes.
    """

    def __init__(self, d_hidden: tuple[int, ...] = (256, 256), g_hidden: tuple[int, ...] = (1024, 1024),
                 latent_dim: int = 96, **kwargs: Any) -> None:
        super().__init__(latent_dim=latent_dim, **kwargs)

    def label_inputs(self) -> int:
        return self.hparams.num_classes if self.hparams.conditional else 0

    def build_generator(self) -> nn.Module:
        c, h, w = self.image_shape
        sizes = [self.hparams.latent_dim + self.label_inputs(), *self.hparams.g_hidden, c * h * w]
        return nn.Sequential(*mlp(sizes), nn.Tanh(), nn.Unflatten(1, self.image_shape))

    def build_discriminator(self) -> nn.Module:
        c, h, w = self.image_shape
        sizes = [c * h * w + self.label_inputs(), *self.hparams.d_hidden, 1]
        return nn.Sequential(nn.Flatten(), *mlp(sizes, lambda: nn.LeakyReLU(0.2)))


class LSGAN(MLPGAN):
    """Least-squares GAN (Mao et al. 2017): the MLP GAN's nets with the GAN base's least-squares losses."""

    def __init__(self, least_squares: bool = True, **kwargs: Any) -> None:
        if not least_squares:
            raise ValueError("LSGAN trains with the least-squares losses: use MLPGAN for least_squares=False")
        super().__init__(least_squares=True, **kwargs)


class ConditionalGAN(MLPGAN):
    """Class-conditional MLP GAN: G gets ``[z, one_hot(y)]``, D gets ``[flattened x, one_hot(y)]``.

    The shipped config sets the base's ``least_squares``: with the cross-entropy loss its run collapsed to one
    digit for every label.
    """

    def __init__(self, conditional: bool = True, **kwargs: Any) -> None:
        if not conditional:
            raise ValueError("ConditionalGAN is class-conditional: use MLPGAN for conditional=False")
        super().__init__(conditional=True, **kwargs)


class DCGAN(GAN):
    """The book's DCGAN for 28x28 images.

    D: Conv(1, 32, 5) LeakyReLU 0.01, MaxPool 2, Conv(32, 64, 5) LeakyReLU 0.01, MaxPool 2, Linear 1024 -> 1024
    LeakyReLU 0.01 -> 1. G: ``latent_dim`` -> 1024 ReLU BN -> 7*7*128 ReLU BN, ConvT(128, 64, 4, 2, 1) ReLU BN,
    ConvT(64, 1, 4, 2, 1) tanh.
    """

    def __init__(self, latent_dim: int = 96, **kwargs: Any) -> None:
        super().__init__(latent_dim=latent_dim, **kwargs)
        require_unconditional_28x28(self)

    def build_generator(self) -> nn.Module:
        return nn.Sequential(
            nn.Linear(self.hparams.latent_dim, 1024), nn.ReLU(), nn.BatchNorm1d(1024),
            nn.Linear(1024, 7 * 7 * 128), nn.ReLU(), nn.BatchNorm1d(7 * 7 * 128),
            nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
            nn.ConvTranspose2d(64, self.hparams.in_channels, 4, stride=2, padding=1), nn.Tanh(),
        )

    def build_discriminator(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(self.hparams.in_channels, 32, 5), nn.LeakyReLU(0.01), nn.MaxPool2d(2),  # 32x12x12
            nn.Conv2d(32, 64, 5), nn.LeakyReLU(0.01), nn.MaxPool2d(2),  # 64x4x4
            nn.Flatten(), nn.Linear(1024, 1024), nn.LeakyReLU(0.01), nn.Linear(1024, 1),
        )


class WGANGP(GAN):
    """WGAN-GP (Gulrajani et al., 2017, Algorithm 1): critic ``E[D(G(z))] - E[D(x)] + lambda * GP``, generator
    ``-E[D(G(z))]``, on the paper's MNIST nets (the layout of the authors' released ``gan_mnist.py``, ``DIM = width``).

    Critic: Conv(1, w, 5, stride 2) -> Conv(w, 2w, 5, stride 2) -> Conv(2w, 4w, 5, stride 2), each LeakyReLU 0.2,
    then Linear(4w * 4 * 4 -> 1); no batch norm, since the penalty is taken per sample (section 4).
    Generator: ``latent_dim`` -> Linear 4w * 4 * 4 ReLU -> ConvT(4w, 2w, 5, stride 2) ReLU -> crop to 7x7 ->
    ConvT(2w, w, 5, stride 2) ReLU -> ConvT(w, 1, 5, stride 2) -> tanh (the GAN base's [-1, 1]; the paper's
    sigmoid gives the same images in [0, 1]).

    Args:
        width: the nets' base channel count (64 in the paper).
        penalty_weight: lambda of the gradient penalty (10 in the paper).
        n_critic: critic steps per generator step (5 in the paper).
        least_squares, r1_gamma: the base's other losses and penalty, refused here (must stay ``False`` and 0).
    """

    def __init__(self, width: int = 64, latent_dim: int = 128, penalty_weight: float = 10.0, n_critic: int = 5,
                 least_squares: bool = False, r1_gamma: float = 0.0, **kwargs: Any) -> None:
        if least_squares:
            raise ValueError("WGANGP trains with the Wasserstein losses: least_squares must be false")
        if r1_gamma:
            raise ValueError("WGANGP's penalty is the gradient penalty (penalty_weight): r1_gamma must be 0")
        super().__init__(latent_dim=latent_dim, n_critic=n_critic, **kwargs)
        require_unconditional_28x28(self)

    def build_generator(self) -> nn.Module:
        w = self.hparams.width

        def up(c_in: int, c_out: int) -> nn.ConvTranspose2d:  # doubles height and width ('SAME' padding)
            return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)

        return nn.Sequential(
            nn.Linear(self.hparams.latent_dim, 4 * w * 4 * 4), nn.ReLU(), nn.Unflatten(1, (4 * w, 4, 4)),
            up(4 * w, 2 * w), nn.ReLU(),  # 8x8
            nn.ZeroPad2d((0, -1, 0, -1)),  # negative padding: crop 8x8 to its top-left 7x7
            up(2 * w, w), nn.ReLU(),  # 14x14
            up(w, self.hparams.in_channels), nn.Tanh(),  # 28x28
        )

    def build_discriminator(self) -> nn.Module:
        w = self.hparams.width

        def down(c_in: int, c_out: int) -> list[nn.Module]:  # halves height and width, rounding up
            return [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]

        return nn.Sequential(
            *down(self.hparams.in_channels, w), *down(w, 2 * w), *down(2 * w, 4 * w),  # 14, 7, 4
            nn.Flatten(), nn.Linear(4 * w * 4 * 4, 1),
        )

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        return -fake_scores.mean()

    def penalty(self, real: Tensor, fake: Tensor, labels: Optional[Tensor]) -> Tensor:
        return self.hparams.penalty_weight * gradient_penalty(lambda x: self.discriminate(x, labels), real, fake)
