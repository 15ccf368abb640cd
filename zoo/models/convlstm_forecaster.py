"""Precipitation-nowcasting ConvLSTM (Shi et al., 2015, NeurIPS) applied to Moving MNIST (section 4.1).

:class:`ConvLSTMForecaster` trains the encoding-forecasting network (:class:`zoo.layers.ConvLSTMEncoderForecaster`)
with per-pixel binary cross-entropy against the future frames, whose pixels are intensities in [0, 1].
Batches are ``(input_frames (N, T_in, C, H, W), future_frames (N, T_out, C, H, W))``.

Test metrics, each also measured for two baselines on the same batches (suffixes ``_copy_last``: every future
frame is the last input frame; ``_mean_frame``: every future frame is the per-pixel mean of the input frames):

- ``test/ce_per_seq``: cross-entropy summed over the ``T_out`` frames of ``H x W`` pixels of a sequence, averaged
  over sequences (the paper's unit: 3670.85 for its 3-layer model over 10 frames of 64x64). All predictions are
  scored as probabilities clamped to ``[eps, 1 - eps]`` (``eps = ce_eps``, 1e-4): a copied frame holds exact
  zeros and ones, whose cross-entropy is otherwise infinite.
- ``test/mse_per_frame``: squared error summed over the pixels of a frame, averaged over frames.
- ``test/ssim``: structural similarity (torchmetrics), frames scored as images with data range 1.

:class:`zoo.callbacks.FrameStripCallback` writes strips of input, target and predicted frames as PNG files and to
the logger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import StructuralSimilarityIndexMeasure

from zoo.layers.convlstm import ConvLSTMEncoderForecaster
from zoo.models.base import ZooModule

#: how each scored prediction is named in the logged metrics: the model, then the two baselines.
PREDICTORS = ("", "_copy_last", "_mean_frame")


def cross_entropy_per_sequence(probabilities: Tensor, target: Tensor, eps: float) -> Tensor:
    """Binary cross-entropy of ``(N, T, C, H, W)`` predictions, summed per sequence: ``(N,)``.

    ``probabilities`` are clamped to ``[eps, 1 - eps]`` first.
    """
    probabilities = probabilities.clamp(eps, 1 - eps)
    return F.binary_cross_entropy(probabilities, target, reduction="none").flatten(1).sum(1)


def squared_error_per_frame(prediction: Tensor, target: Tensor) -> Tensor:
    """Squared error of ``(N, T, C, H, W)`` frames summed over each frame's pixels: ``(N, T)``."""
    return (prediction - target).square().flatten(2).sum(2)


def baseline_predictions(inputs: Tensor, frames_out: int) -> dict[str, Tensor]:
    """The copy-last-frame and mean-frame forecasts of ``inputs`` ``(N, T_in, C, H, W)``, ``(N, frames_out, ...)``."""
    shape = (-1, frames_out, -1, -1, -1)
    return {
        "_copy_last": inputs[:, -1:].expand(shape),
        "_mean_frame": inputs.mean(dim=1, keepdim=True).expand(shape),
    }


class ConvLSTMForecaster(ZooModule):
    """Encoder-forecaster ConvLSTM predicting ``frames_out`` frames from ``frames_in`` (Shi et al., 2015).

    Args:
        in_channels: channels of a frame.
        image_size: frame side (a multiple of ``patch_size``).
        frames_in, frames_out: input and predicted frames.
        patch_size: patch side; each frame becomes ``(in_channels * patch_size**2, S / p, S / p)``.
        hidden_channels: hidden channels of each ConvLSTM layer of the encoder and the forecaster.
        kernel_size: odd kernel of each layer (an int repeats).
        peephole: use the cells' peephole terms.
        output: ``"pixels"`` (the paper's per-pixel logits) or ``"dynamic_filter"`` (per-pixel kernels that move
            the previous frame's pixels, De Brabandere et al., 2016); see :class:`ConvLSTMEncoderForecaster`.
        filter_size: odd side of the dynamic filters.
        ce_eps: clamp of the probabilities scored by the ``ce_per_seq`` metrics (not of the training loss).
        **kwargs: optimizer settings of :class:`ZooModule` (``optimizer``, ``lr``, ...).

    ``forward(inputs)`` returns logits ``(N, frames_out, in_channels, image_size, image_size)``.
    """

    checkpoint_monitor = "val/loss"
    checkpoint_mode = "min"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 64,
        frames_in: int = 10,
        frames_out: int = 10,
        patch_size: int = 4,
        hidden_channels: Sequence[int] = (64, 64),
        kernel_size: Union[int, Sequence[int]] = 3,
        peephole: bool = False,
        output: str = "pixels",
        filter_size: int = 9,
        ce_eps: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        if not 0 < ce_eps < 0.5:
            raise ValueError(f"ce_eps must be in (0, 0.5), got {ce_eps}")
        self.network = self.build_network()
        self.test_ssim = nn.ModuleDict(
            {name or "model": StructuralSimilarityIndexMeasure(data_range=1.0) for name in PREDICTORS}
        )

    def build_network(self) -> nn.Module:
        """The network mapping input frames to logits of the future frames."""
        hp = self.hparams
        return ConvLSTMEncoderForecaster(
            hp.in_channels, list(hp.hidden_channels), hp.kernel_size, hp.patch_size, hp.frames_out, hp.peephole,
            hp.output, hp.filter_size,
        )

    def forward(self, inputs: Tensor) -> Tensor:
        hp = self.hparams
        self.check_input(inputs, (None, hp.frames_in, hp.in_channels, hp.image_size, hp.image_size), "input frames")
        return self.network(inputs)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Per-pixel binary cross-entropy, averaged over pixels (the paper's objective up to a constant factor)."""
        return F.binary_cross_entropy_with_logits(logits, target)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        inputs, target = batch
        logits = self(inputs)
        loss = self.loss(logits, target)
        self.log_loss(stage, "loss", loss, len(inputs))
        return logits, loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")[1]

    def log_error_metrics(self, stage: str, name: str, prediction: Tensor, target: Tensor) -> None:
        """Log ``{stage}/ce_per_seq{name}`` and ``{stage}/mse_per_frame{name}`` of ``prediction`` ``(N, T, C, H, W)``
        probabilities."""
        batch_size = len(prediction)
        ce = cross_entropy_per_sequence(prediction, target, self.hparams.ce_eps).mean()
        self.log(f"{stage}/ce_per_seq{name}", ce, prog_bar=stage == "val", batch_size=batch_size)
        self.log(f"{stage}/mse_per_frame{name}", squared_error_per_frame(prediction, target).mean(),
                 batch_size=batch_size)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        logits, _ = self._step(batch, "val")
        prediction, target = logits.sigmoid(), batch[1]
        self.log_error_metrics("val", "", prediction, target)
        frames = prediction.flatten(0, 1).float(), target.flatten(0, 1).float()
        self.log("val/ssim", structural_similarity_index_measure(*frames, data_range=1.0), batch_size=len(logits))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, target = batch
        logits, _ = self._step(batch, "test")
        predictions = {"": logits.sigmoid(), **baseline_predictions(inputs, self.hparams.frames_out)}
        for name, prediction in predictions.items():
            self.log_error_metrics("test", name, prediction, target)
            ssim = self.test_ssim[name or "model"]
            ssim.update(prediction.flatten(0, 1), target.flatten(0, 1))  # computed once, at the epoch's end
            self.log(f"test/ssim{name}", ssim, batch_size=len(inputs))

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        metrics = self.trainer.callback_metrics
        rows = [f"{'':<12}{'ce_per_seq':>12}{'mse/frame':>12}{'ssim':>8}"]
        for name, label in zip(PREDICTORS, ("model", "copy-last", "mean-frame")):
            values = [metrics.get(f"test/{m}{name}") for m in ("ce_per_seq", "mse_per_frame", "ssim")]
            if all(v is not None for v in values):
                rows.append(f"{label:<12}{float(values[0]):>12.1f}{float(values[1]):>12.2f}{float(values[2]):>8.4f}")
        rank_zero_info("Moving MNIST forecasts on the test sequences:\n" + "\n".join(rows))

    @torch.no_grad()
    def predict_frames(self, inputs: Tensor) -> Tensor:
        """Predicted future frames as probabilities in [0, 1], ``(N, frames_out, C, H, W)``."""
        return self(inputs).sigmoid()

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_frames(inputs)
