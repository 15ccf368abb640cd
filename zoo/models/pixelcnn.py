"""A gated residual PixelCNN (PixelCNN++, Salimans et al., 2017; PixelSNAIL, Chen et al., 2018) for binary images.

The model is autoregressive over the pixels in raster order (van den Oord et al., 2016, eq. 1)::

    p(x | y) = prod_{i, j} Bernoulli(x_ij ; sigmoid(logit_ij(x_<ij, y)))

with the logits from :class:`zoo.layers.pixelcnn.PixelCNNNetwork` and the optional class ``y`` given to every
gated block as the one-hot condition ``h``. The loss is the negative log-likelihood in nats per image,
``-log p(x) = sum_ij BCE(logit_ij, x_ij)``; bits per dimension are ``nll / (H * W * ln 2)``.

Batches are ``(x, y)``: binary images ``x`` float ``(N, 1, H, W)`` in {0, 1} (see
:mod:`datamodules.binarized_mnist`) and labels ``y`` long ``(N,)``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from zoo.layers.pixelcnn import PixelCNNNetwork
from zoo.models.base import ZooModule, check_count
from zoo.models.generative import Labels, check_class_labels


class PixelCNN(ZooModule):
    """Bernoulli PixelCNN of two gated residual streams, optionally class-conditional.

    Logs ``train/loss``, ``val/nll``, ``test/nll`` (nats per image) and ``val/bpd``, ``test/bpd`` (bits per
    pixel). ``predict_step`` draws one sample per image of the batch (of the batch's class when conditional).

    Args:
        channels: width of both streams.
        num_blocks: gated residual blocks per stream.
        dropout: dropout in the blocks.
        conditional: condition on the class label through ``h`` (one-hot of ``num_classes``).
        num_classes: classes of the labels.
        image_size: height and width of the images.
        **kwargs: optimizer arguments of :class:`ZooModule`.
    """

    checkpoint_monitor = "val/nll"
    checkpoint_mode = "min"

    def __init__(
        self,
        channels: int = 32,
        num_blocks: int = 5,
        dropout: float = 0.0,
        conditional: bool = False,
        num_classes: int = 10,
        image_size: int = 28,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.network = self.build_network()

    def build_network(self) -> nn.Module:
        hp = self.hparams
        return PixelCNNNetwork(
            in_channels=1, out_channels=1, channels=hp.channels, num_blocks=hp.num_blocks,
            condition_dim=hp.num_classes if hp.conditional else 0, dropout=hp.dropout,
        )

    def condition(self, labels: Optional[Labels], batch_size: int) -> Optional[Tensor]:
        """The one-hot condition ``h`` ``(N, num_classes)`` of a conditional model, ``None`` otherwise; ``labels``
        (a tensor or a list of ints) pass :func:`zoo.models.generative.check_class_labels`."""
        if not self.hparams.conditional:
            return None
        labels = check_class_labels(self, labels, batch_size, self.hparams.num_classes)
        return F.one_hot(labels.to(self.device), self.hparams.num_classes).to(self.dtype)

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Bernoulli logits ``(N, 1, H', W)`` of images ``x`` ``(N, 1, H', W)`` (``H' <= image_size`` rows)."""
        size = self.hparams.image_size
        ok = x.ndim == 4 and x.shape[1] == 1 and x.shape[3] == size and 0 < x.shape[2] <= size
        if not ok:
            raise ValueError(f"PixelCNN expects images of shape (N, 1, {size}, {size}), got {tuple(x.shape)}; "
                             f"check the datamodule or the model's image_size")
        return self.network(x, self.condition(labels, len(x)))

    def nll(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Negative log-likelihood ``-log p(x | y)`` in nats of each image: shape ``(N,)``."""
        return F.binary_cross_entropy_with_logits(self(x, labels), x, reduction="none").sum(dim=(1, 2, 3))

    def bits_per_dim(self, nll: Tensor) -> Tensor:
        return nll / (self.hparams.image_size ** 2 * math.log(2))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = self.nll(x, y).mean()
        self.log_train_step("train/loss", loss, len(x))
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        nll = self.nll(x, y).mean()
        self.log(f"{stage}/nll", nll, on_epoch=True, prog_bar=True, batch_size=len(x))
        self.log(f"{stage}/bpd", self.bits_per_dim(nll), on_epoch=True, batch_size=len(x))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    @torch.no_grad()
    def sample(self, n: int, labels: Optional[Labels] = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """Draw ``n`` binary images ``(n, 1, image_size, image_size)`` pixel by pixel in raster order (``n = 0``:
        an empty batch).

        ``labels`` ``(n,)``, a long tensor or a list of ints, picks the class of each sample of a conditional
        model. Row ``i`` is drawn from the network run on rows ``0..i`` only (its outputs there do not depend on
        later rows), and the weight normalization is computed once for the whole loop.
        """
        if labels is not None and not self.hparams.conditional:
            raise ValueError("this PixelCNN is unconditional (conditional=False): sample without labels")
        n = check_count(self, n, "sample(n)", "samples n")
        size = self.hparams.image_size
        h = self.condition(labels, n)
        was_training = self.training
        self.eval()
        x = torch.zeros(n, 1, size, size, device=self.device)
        with parametrize.cached():
            for i in range(size):
                for j in range(size):
                    logits = self.network(x[:, :, : i + 1], h)[:, :, i, j]
                    x[:, :, i, j] = torch.bernoulli(torch.sigmoid(logits), generator=generator)
        self.train(was_training)
        return x

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One sample ``(N, 1, H, W)`` per image of the batch, of the batch's labels when conditional.

        Sampling costs ``H * W`` network passes: limit ``zoo predict`` with ``--trainer.limit_predict_batches``.
        """
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return self.sample(len(x), labels=y if self.hparams.conditional else None)
