"""A fast CIFAR-10 trainer after Keller Jordan's airbench94 ("94% on CIFAR-10 in 3.29 Seconds on a Single GPU", 2024).

The recipe, as the paper describes it, rewritten for Lightning:

- Network: a frozen 2x2 *whitening* convolution (section 3.2: its 12 filters are the eigenvectors of the 2x2x3
  patch covariance of training images scaled by 1/sqrt(eigenvalue + eps), and their negatives), GELU, then three
  blocks ``Conv 3x3 -> MaxPool 2 -> BatchNorm -> GELU -> Conv 3x3 -> BatchNorm -> GELU`` of widths 64, 256, 256,
  MaxPool 3, a bias-free Linear and a fixed scale 1/9. Convolutions start from identity (Dirac) filters in their
  first ``in_channels`` outputs; batch norms keep gamma = 1 (only beta trains), momentum 0.4 (airbench's 0.6),
  eps 1e-12. The whitening bias trains for the first 3 epochs only.
- Optimization: Nesterov SGD (momentum 0.85), label smoothing 0.2, a learning rate "per 1024 examples" of 11.5 and
  decoupled weight decay 0.0153 (both divided by ``1024 * (1 + 1 / (1 - momentum))``, their eq. for the
  "kilostep" scale), batch-norm biases at 64x the learning rate, a triangular schedule (0.2 -> 1 at 20 % of the
  steps -> 0), and *lookahead*: every 5 steps the weights are pulled to an exponential moving average with decay
  ``0.95**5 * (step / total)**3``, which becomes the final weights at the last step.
- Evaluation: test-time augmentation over mirror and one-pixel translations (``tta_level`` 2).
- Augmentation lives in :class:`datamodules.CIFAR10DataModule` (``augment: airbench``: alternating flip and
  2-pixel reflect translation).

The paper sums the loss over the batch; here the loss is the batch mean and the learning rate is multiplied by the
batch size instead, which is the same update. Weight decay is given per parameter group as ``wd / lr`` so that the
decay step stays decoupled from the learning rate, as in the paper's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.lightning_compat import attached_trainer
from zoo.models.base import ImageClassifier, datamodule_of


class IdentityInitConv2d(nn.Conv2d):
    """3x3 "same" convolution without bias whose first ``in_channels`` filters start as the identity."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            nn.init.dirac_(self.weight[: min(self.in_channels, self.out_channels)])


class BiasOnlyBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose scale stays 1 (not trained); only the shift ``beta`` learns."""

    def __init__(self, num_features: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Sequential):
    """Conv -> MaxPool 2 -> BN -> GELU -> Conv -> BN -> GELU (airbench's block)."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float) -> None:
        super().__init__(
            IdentityInitConv2d(in_channels, out_channels),
            nn.MaxPool2d(2),
            BiasOnlyBatchNorm2d(out_channels, momentum=bn_momentum),
            nn.GELU(),
            IdentityInitConv2d(out_channels, out_channels),
            BiasOnlyBatchNorm2d(out_channels, momentum=bn_momentum),
            nn.GELU(),
        )


class Scale(nn.Module):
    """Multiply by a fixed number."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


def whitening_filters(images: Tensor, patch_size: int = 2, eps: float = 5e-4) -> Tensor:
    """Whitening filters of ``patch_size`` patches of ``images`` (N, C, H, W), and their negatives.

    With the patch covariance ``Sigma = U diag(lambda) U^T`` (patches as vectors, uncentred: the images are
    normalized), the filters are the rows of ``diag(lambda + eps)^(-1/2) U^T`` in decreasing eigenvalue order:
    their responses are decorrelated with unit variance. Returns ``(2 * C * p * p, C, p, p)``.
    """
    c = images.shape[1]
    patches = images.unfold(2, patch_size, 1).unfold(3, patch_size, 1)  # N, C, H', W', p, p
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * patch_size * patch_size).double()
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0)
    filters = filters.reshape(-1, c, patch_size, patch_size).float()
    return torch.cat([filters, -filters])


class AirbenchNet(ImageClassifier):
    """The airbench94 network and training recipe on CIFAR-10-sized images (module docstring).

    Args:
        widths: channels of the three blocks (airbench94: 64, 256, 256).
        lr: learning rate per 1024 examples (11.5), before the kilostep scaling.
        momentum: Nesterov momentum (0.85).
        weight_decay: decoupled weight decay per 1024 examples (0.0153).
        bias_lr_scale: learning-rate multiplier of the batch-norm biases (64).
        label_smoothing: cross-entropy label smoothing (0.2).
        whiten_bias_epochs: epochs during which the whitening bias trains (3).
        bn_momentum: PyTorch batch-norm momentum (0.4, airbench's "0.6").
        lookahead_every: steps between lookahead updates (5); 0 turns lookahead off.
        tta_level: test-time augmentation in eval mode: 0 none, 1 mirror, 2 mirror + translations.
        whiten_images: training images used to estimate the whitening filters (5000).
        in_channels, image_size: input images (3, 32 for CIFAR-10).
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (64, 256, 256),
        lr: float = 11.5,
        momentum: float = 0.85,
        weight_decay: float = 0.0153,
        bias_lr_scale: float = 64.0,
        label_smoothing: float = 0.2,
        whiten_bias_epochs: int = 3,
        bn_momentum: float = 0.4,
        lookahead_every: int = 5,
        tta_level: int = 2,
        whiten_images: int = 5000,
        in_channels: int = 3,
        image_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            lr=lr, momentum=momentum, weight_decay=weight_decay, in_channels=in_channels, image_size=image_size,
            label_smoothing=label_smoothing, **kwargs,
        )
        if tta_level not in (0, 1, 2):
            raise ValueError(f"tta_level must be 0, 1 or 2, got {tta_level}")
        self.register_buffer("whitened", torch.tensor(False))
        self._lookahead: dict[str, Tensor] | None = None

    def build_network(self) -> nn.Module:
        hp = self.hparams
        whiten_width = 2 * hp.in_channels * 2 * 2
        whiten = nn.Conv2d(hp.in_channels, whiten_width, kernel_size=2, padding=0, bias=True)
        whiten.weight.requires_grad_(False)
        w1, w2, w3 = hp.widths
        return nn.Sequential(
            whiten,
            nn.GELU(),
            ConvGroup(whiten_width, w1, hp.bn_momentum),
            ConvGroup(w1, w2, hp.bn_momentum),
            ConvGroup(w2, w3, hp.bn_momentum),
            nn.AdaptiveMaxPool2d(1),  # MaxPool 3 on the 3x3 map of 32x32 inputs
            nn.Flatten(),
            nn.Linear(w3, hp.num_classes, bias=False),
            Scale(1 / 9),
        )

    @property
    def whiten(self) -> nn.Conv2d:
        return self.network[0]

    # ------------------------------------------------------------------ inference
    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x, self.input_shape())
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's faster convolution layout on the CPU
        if self.training or self.hparams.tta_level == 0:
            return self.network(x)
        logits = self._mirrored(x)
        if self.hparams.tta_level == 1:
            return logits
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        size = x.shape[-1]
        shifted = [padded[..., :size, :size], padded[..., 2 : size + 2, 2 : size + 2]]
        return 0.5 * logits + 0.25 * sum(self._mirrored(s) for s in shifted)

    def _mirrored(self, x: Tensor) -> Tensor:
        return 0.5 * (self.network(x) + self.network(x.flip(-1)))

    # ------------------------------------------------------------------ whitening
    @torch.no_grad()
    def init_whitening(self, images: Tensor) -> None:
        """Set the whitening filters from normalized training images (N, C, H, W); the bias starts at 0."""
        self.whiten.weight.copy_(whitening_filters(images.to(self.whiten.weight.device)))
        self.whiten.bias.zero_()
        self.whitened.fill_(True)

    def on_fit_start(self) -> None:
        if bool(self.whitened):
            return  # a resumed run or fine-tuning keeps its filters
        datamodule = getattr(self.trainer, "datamodule", None)
        train_set = getattr(datamodule, "train_set", None)
        if train_set is None or not hasattr(datamodule, "normalize"):
            raise RuntimeError(
                f"{type(self).__name__} estimates its whitening filters from the training images of a "
                f"CIFAR10DataModule-like datamodule (train_set.images and normalize()); got {type(datamodule)}"
            )
        images = train_set.images[: self.hparams.whiten_images].to(self.device)
        self.init_whitening(datamodule.normalize(images.float() / 255.0))

    # ------------------------------------------------------------------ optimization
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        batch_size = self._train_batch_size()
        kilostep = 1024 * (1 + 1 / (1 - hp.momentum))
        lr = hp.lr / kilostep * batch_size  # per mean loss: the paper's lr on the summed loss times the batch size
        decay = hp.weight_decay * batch_size / kilostep  # the decoupled decay step at full learning rate
        bn_biases = [p for m in self.modules() if isinstance(m, nn.BatchNorm2d) for p in [m.bias] if p.requires_grad]
        bn_ids = {id(p) for p in bn_biases}
        others = [p for p in self.parameters() if p.requires_grad and id(p) not in bn_ids]
        bias_lr = lr * hp.bias_lr_scale
        optimizer = torch.optim.SGD(
            [dict(params=bn_biases, lr=bias_lr, weight_decay=decay / bias_lr),
             dict(params=others, lr=lr, weight_decay=decay / lr)],
            momentum=hp.momentum, nesterov=True,
        )
        total = self._total_steps()
        warmup = int(0.2 * total)
        schedule = np.interp(np.arange(total + 1), [0, warmup, total], [0.2, 1.0, 0.0])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: float(schedule[min(step, total)]))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _train_batch_size(self) -> int:
        return int(getattr(getattr(datamodule_of(self), "hparams", None), "batch_size", 1024) or 1024)

    def _total_steps(self) -> int:
        if attached_trainer(self) is None:
            return 1
        return max(1, int(self.trainer.estimated_stepping_batches))

    def on_train_epoch_start(self) -> None:
        self.whiten.bias.requires_grad_(self.current_epoch < self.hparams.whiten_bias_epochs)

    # ------------------------------------------------------------------ lookahead
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hparams.lookahead_every
        if not every:
            return
        step, total = self.global_step, self._total_steps()
        if step >= total:
            self._lookahead_update(decay=1.0)  # the final weights are the average
        elif step % every == 0:
            self._lookahead_update(decay=0.95**every * (step / total) ** 3)

    def on_train_start(self) -> None:
        if self.hparams.lookahead_every and self._lookahead is None:  # the slow weights start at the initial ones
            self._lookahead = {k: v.detach().clone() for k, v in self.network.state_dict().items()}

    @torch.no_grad()
    def _lookahead_update(self, decay: float) -> None:
        for name, value in self.network.state_dict().items():
            if value.dtype.is_floating_point:
                slow = self._lookahead[name]
                slow.lerp_(value, 1 - decay)
                value.copy_(slow)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._lookahead is not None:
            checkpoint["lookahead"] = {k: v.cpu() for k, v in self._lookahead.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "lookahead" in checkpoint:
            self._lookahead = {k: v.to(self.device) for k, v in checkpoint["lookahead"].items()}
