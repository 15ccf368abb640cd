"""The dense and sparse CNNs of "How Can We Be So Dense?" (Ahmad & Scheinkman, 2019, arXiv:1903.11257).

Both networks are ``[Conv(k=5) -> MaxPool(2) -> activation] x len(channels) -> Flatten ->
[Linear -> activation] x len(hidden) -> Linear(num_classes)``. The dense net's activation is ReLU; the sparse net
uses k-winners (:class:`~zoo.layers.KWinners2d` after a convolution, :class:`~zoo.layers.KWinners` after a
linear layer) and may hold a fraction of the weights at zero (:class:`~zoo.layers.SparseWeights`).

The networks of the paper (MNIST section, Numenta's ``experiments_paper.cfg``) and of the blog version:

=============  ================================================================================================
Dense CNN-1    Conv 30 -> hidden 1000 (ReLU); SGD lr 0.01, momentum 0.9, StepLR 0.8, 15 epochs
Dense CNN-2    Conv 30 -> Conv 30 -> hidden 1000 (ReLU); same recipe
Sparse CNN-1   Conv 30 (k=400 of 4320) -> hidden 150 (k=50, weight density 0.3); SGD lr 0.01, momentum 0,
               StepLR 0.8, 15 epochs, first epoch batch 4
Sparse CNN-2   Conv 32 (k=400 of 4608) -> Conv 64 (k=300 of 1024) -> hidden 700 (k=100, weight density 0.3);
               SGD lr 0.02, momentum 0, StepLR 0.8, 10 epochs, first epoch batch 4
Blog nets      Conv 30 -> ReLU -> Linear(4320, 300) -> Linear(300, 10) (no activation in between); the sparse
               one has conv and hidden weight density 0.5 and KWinners2d k=100 without boosting; 1 epoch
=============  ================================================================================================

The configs of the four paper nets follow the authors' harness (``htmpapers`` ``mnist_sparse_experiment.py``),
not only its numbers: they train on all 60,000 training images (``validation = 1.0``) and test the last epoch.
Their ``lr`` is the paper's: the authors step ``StepLR`` *before* each epoch's training, but under the torch 1.0.1
they pinned a new scheduler starts one step back, so epoch ``e`` runs at ``lr * 0.8^e``, as with the zoo's step
after each epoch (torch 1.1 changed that; the paper's code predates it). The paper's Table 1 takes,
for each of 10 seeds, the epoch with the best *test* accuracy (``test_score_table.py``); the zoo's figures are the
last epoch's, and ``scripts/reproductions/paper_table1.py --statistic best_test`` measures the authors' choice.

The sparse layers keep their state in buffers; :class:`SparseCNN`'s Lightning hooks re-zero the masked weights
after every training batch (after the optimizer step), keep the duty cycles equal on all DDP ranks, and decay
the boost strength after each epoch.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from zoo.layers.sparse import KWinners, KWinners2d, SparseWeights, SparseWeights2d, decay_boost_strength
from zoo.layers.sparse import kwinners_layers, rezero_weights
from zoo.models.base import ImageClassifier


class DenseCNN(ImageClassifier):
    """The dense CNN of the paper (defaults: Dense CNN-2 on 28x28 grey images).

    Input ``(N, in_channels, image_size, image_size)``, logits ``(N, num_classes)``.

    Args:
        channels: output channels of the convolutions, each followed by MaxPool(2) and an activation.
        hidden: sizes of the hidden linear layers.
        kernel_size: kernel of every convolution (no padding, stride 1).
        hidden_activation: ``False`` leaves the hidden linear layers without activation (the blog nets).
    """

    def __init__(
        self,
        channels: list[int] = [30, 30],
        hidden: list[int] = [1000],
        kernel_size: int = 5,
        hidden_activation: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    # The four factories a subclass overrides to change the layers; ``index`` counts layers of that kind.
    def conv_layer(self, index: int, in_channels: int, out_channels: int) -> nn.Module:
        return nn.Conv2d(in_channels, out_channels, self.hparams.kernel_size)

    def conv_activation(self, index: int, channels: int, size: int) -> nn.Module:
        """The activation after convolution ``index`` and its max-pooling (maps of ``channels x size x size``)."""
        return nn.ReLU()

    def hidden_layer(self, index: int, in_features: int, out_features: int) -> nn.Module:
        return nn.Linear(in_features, out_features)

    def hidden_activation(self, index: int, units: int) -> nn.Module:
        return nn.ReLU() if self.hparams.hidden_activation else nn.Identity()

    def build_network(self) -> nn.Module:
        hp = self.hparams
        layers: list[nn.Module] = []
        channels, size = hp.in_channels, hp.image_size
        for i, out_channels in enumerate(hp.channels):
            size = (size - hp.kernel_size + 1) // 2
            if size < 1:
                raise ValueError(
                    f"{type(self).__name__}: {len(hp.channels)} convolutions of kernel {hp.kernel_size} with "
                    f"pooling leave no pixels of a {hp.image_size}x{hp.image_size} image; use fewer channels entries"
                )
            layers += [
                self.conv_layer(i, channels, out_channels),
                nn.MaxPool2d(2),
                self.conv_activation(i, out_channels, size),
            ]
            channels = out_channels
        layers.append(nn.Flatten())
        features = channels * size * size
        for i, units in enumerate(hp.hidden):
            layers += [self.hidden_layer(i, features, units), self.hidden_activation(i, units)]
            features = units
        layers.append(nn.Linear(features, hp.num_classes))
        return nn.Sequential(*layers)


class SparseCNN(DenseCNN):
    """The sparse CNN of the paper (defaults: Sparse CNN-2): k-winners activations and sparse weights.

    Args:
        channels, hidden, kernel_size, hidden_activation: as in :class:`DenseCNN`.
        conv_k: winners per sample after each convolution, over all ``C * H * W`` units of its pooled maps
            (``local=True``: among the channels at each location); ``None`` for a ReLU instead.
        hidden_k: winners per sample of each hidden layer; ``None`` for the dense activation instead.
        conv_weight_density: fraction of non-zero weights of every convolution (1: dense weights).
        hidden_weight_density: fraction of non-zero weights of every hidden linear layer.
        local: pick the convolutional winners per location (:class:`~zoo.layers.KWinners2d` ``local``).
        boost_strength: initial boost strength (0: no boosting).
        boost_strength_factor: boost strength multiplier applied after each epoch.
        k_inference_factor: the winners' ``k`` is multiplied by this in eval mode.
        duty_cycle_period: samples averaged over by the duty cycles.
    """

    def __init__(
        self,
        channels: list[int] = [32, 64],
        conv_k: list[Optional[int]] = [400, 300],
        hidden: list[int] = [700],
        hidden_k: list[Optional[int]] = [100],
        conv_weight_density: float = 1.0,
        hidden_weight_density: float = 0.3,
        local: bool = False,
        boost_strength: float = 1.5,
        boost_strength_factor: float = 0.85,
        k_inference_factor: float = 1.5,
        duty_cycle_period: int = 1000,
        **kwargs: Any,
    ) -> None:
        for name, ks, sizes in (("conv_k", conv_k, channels), ("hidden_k", hidden_k, hidden)):
            if len(ks) != len(sizes):
                raise ValueError(
                    f"{name} needs one entry (k or null) per layer: {len(sizes)} layers, got {len(ks)} entries "
                    f"{list(ks)}"
                )
        super().__init__(channels=channels, hidden=hidden, **kwargs)

    def _kwinners_args(self) -> dict[str, Any]:
        hp = self.hparams
        return dict(
            k_inference_factor=hp.k_inference_factor, boost_strength=hp.boost_strength,
            boost_strength_factor=hp.boost_strength_factor, duty_cycle_period=hp.duty_cycle_period,
        )

    def conv_layer(self, index: int, in_channels: int, out_channels: int) -> nn.Module:
        conv = super().conv_layer(index, in_channels, out_channels)
        density = self.hparams.conv_weight_density
        return conv if density >= 1.0 else SparseWeights2d(conv, density)

    def conv_activation(self, index: int, channels: int, size: int) -> nn.Module:
        k = self.hparams.conv_k[index]
        if k is None:
            return super().conv_activation(index, channels, size)
        units = channels if self.hparams.local else channels * size * size
        if k > units:
            raise ValueError(f"conv_k[{index}]={k} exceeds the {units} units it picks from; lower it")
        return KWinners2d(channels, k, local=self.hparams.local, **self._kwinners_args())

    def hidden_layer(self, index: int, in_features: int, out_features: int) -> nn.Module:
        linear = super().hidden_layer(index, in_features, out_features)
        density = self.hparams.hidden_weight_density
        return linear if density >= 1.0 else SparseWeights(linear, density)

    def hidden_activation(self, index: int, units: int) -> nn.Module:
        k = self.hparams.hidden_k[index]
        if k is None:
            return super().hidden_activation(index, units)
        return KWinners(units, k, **self._kwinners_args())

    # ------------------------------------------------------------------ hooks
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the optimizer step: restore the weight zeros; average the duty cycles over DDP ranks."""
        rezero_weights(self)
        if self.trainer.world_size > 1:
            self.synchronize_duty_cycles()

    def synchronize_duty_cycles(self) -> None:
        """Replace every layer's duty cycles by their mean over the ranks (one all-reduce for all layers).

        The ranks start equal and see batches of the same size, so the mean equals the update a single process
        would make from the whole distributed batch. (DDP's ``broadcast_buffers`` alone would copy rank 0's
        duty cycles to the others at the next forward pass, dropping the other ranks' wins.)
        """
        layers = list(kwinners_layers(self))
        if not layers:
            return
        flat = torch.cat([layer.duty_cycles for layer in layers])
        flat = self.trainer.strategy.reduce(flat, reduce_op="mean")
        for layer, values in zip(layers, flat.split([layer.duty_cycles.numel() for layer in layers])):
            layer.duty_cycles.copy_(values)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        decay_boost_strength(self)
