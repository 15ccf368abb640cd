"""The losses and penalties of the zoo's generative models, as plain tensor functions (no Lightning).

Each function cites its paper and equation; the models of :mod:`zoo.models.generative` and
:mod:`zoo.models.gans` combine them.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of each row, summed over the code (Kingma & Welling, 2014, app. B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def input_gradients(critic: Any, images: Tensor) -> Tensor:
    """``grad_x critic(x)`` for each image, flattened to ``(N, C*H*W)``, differentiable in the critic's weights
    (the penalties below backpropagate through it)."""
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(images).sum(), images, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(critic: Any, real: Tensor, fake: Tensor, mix: Optional[Tensor] = None) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al., 2017, Algorithm 1): ``mean((||grad critic(x_hat)||_2 - 1)^2)`` at
    ``x_hat = mix * real + (1 - mix) * fake``, ``mix ~ U[0, 1]`` per image unless given ``(N,)``."""
    if mix is None:
        mix = torch.rand(len(real), device=real.device)
    mix = mix.to(real.dtype).view(-1, *([1] * (real.ndim - 1)))
    return (input_gradients(critic, mix * real + (1 - mix) * fake).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(discriminator: Any, real: Tensor) -> Tensor:
    """R1 regularizer (Mescheder et al., 2018, eq. 9, without its ``gamma / 2``): ``E[||grad D(x)||_2^2]`` over
    real images ``x``."""
    return input_gradients(discriminator, real).pow(2).sum(dim=1).mean()


def least_squares_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]`` (Mao et al. 2017, eq. 2)."""
    return 0.5 * (real_scores - 1).pow(2).mean() + 0.5 * fake_scores.pow(2).mean()


def least_squares_g_loss(fake_scores: Tensor) -> Tensor:
    """``1/2 E[(D(G(z)) - 1)^2]`` (Mao et al. 2017, eq. 2)."""
    return 0.5 * (fake_scores - 1).pow(2).mean()
