"""Deep Complex Networks (Trabelsi et al., ICLR 2018): ComplexNet for 28x28 images and its real-valued twin.

Both nets share one topology, written once in :class:`TwoConvNet`:

    input -> Conv(c1, 5, stride 2) -> act -> BN(c1) -> Conv(c2, 5, stride 2) -> act -> flatten -> Linear(hidden)
          -> act -> [dropout] -> Linear(num_classes) -> output

The dropout before the last layer is off by default (the paper's topology); ``dropout=p`` turns it on for both nets
alike (complex dropout, one mask for both parts, in ComplexNet).

- :class:`ComplexNet`: the input gets a learned imaginary part (BN -> ReLU -> Conv(1, 1, 3, pad 1), section 3.7),
  then complex layers with CReLU and complex batch norm, and the output is ``|z|`` -> log-softmax.
  Defaults: c1 = 20, c2 = 50, hidden = 500 (flatten 50 * 4 * 4 = 800): 862,272 real numbers (a complex
  parameter counts twice).
- :class:`RealNet`: the same topology with real layers and ReLU, widened to about the same number of real
  parameters (c1 = 28, c2 = 71, hidden = 707: 861,494), the paper's way of comparing complex and real nets.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Literal, Optional

from torch import Tensor, nn

from zoo.layers.complex import (
    ComplexBatchNorm2d,
    ComplexConv2d,
    ComplexDropout,
    ComplexInit,
    ComplexLinear,
    ComplexMagnitude,
    CReLU,
    LearnedImaginaryInput,
    ModReLU,
    ZReLU,
)
from zoo.models.base import ImageClassifier

ComplexActivation = Literal["crelu", "modrelu", "zrelu"]

# Real initialisers with the second moment of ComplexNet's complex ones (E|w|^2 = 2 sigma^2 of the Rayleigh modulus).
REAL_INITS: dict[str, Callable[[Tensor], Tensor]] = {
    "he": partial(nn.init.kaiming_normal_, nonlinearity="relu"),
    "glorot": nn.init.xavier_normal_,
}


class TwoConvNet(ImageClassifier):
    """Two strided convolutions and two fully connected layers; subclasses pick the layer kinds.

    A subclass overrides :meth:`conv`, :meth:`batch_norm`, :meth:`linear`, :meth:`activation`, :meth:`dropout_layer`
    and may override :meth:`input_layer` and :meth:`output_layer`.

    Args:
        channels: output channels of the two convolutions.
        hidden: width of the hidden fully connected layer.
        kernel_size: kernel of both convolutions (no padding).
        stride: stride of both convolutions.
        dropout: drop probability before the last linear layer (0: no dropout layer, the paper's net).
    """

    def __init__(
        self, channels: tuple[int, int] = (20, 50), hidden: int = 500, kernel_size: int = 5, stride: int = 2,
        dropout: float = 0.0, **kwargs: Any,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        super().__init__(**kwargs)

    def conv(self, in_channels: int, out_channels: int) -> nn.Module:
        raise NotImplementedError

    def batch_norm(self, channels: int) -> nn.Module:
        raise NotImplementedError

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        raise NotImplementedError

    def activation(self, features: int) -> nn.Module:
        raise NotImplementedError

    def dropout_layer(self, p: float) -> nn.Module:
        raise NotImplementedError

    def input_layer(self) -> nn.Module:
        return nn.Identity()

    def output_layer(self) -> nn.Module:
        return nn.Identity()

    def feature_size(self) -> int:
        """Side of the second convolution's output map (4 for 28x28 inputs with the defaults)."""
        hp = self.hparams
        size = hp.image_size
        for _ in range(2):
            size = (size - hp.kernel_size) // hp.stride + 1
        if size < 1:
            raise ValueError(
                f"image_size {hp.image_size} is too small for two convolutions of kernel {hp.kernel_size} and "
                f"stride {hp.stride}"
            )
        return size

    def build_network(self) -> nn.Module:
        hp = self.hparams
        c1, c2 = hp.channels
        size = self.feature_size()
        # Without dropout no layer is inserted, so the paper's net keeps its parameter names.
        dropout = [self.dropout_layer(hp.dropout)] if hp.dropout > 0 else []
        return nn.Sequential(
            self.input_layer(),
            self.conv(hp.in_channels, c1),
            self.activation(c1),
            self.batch_norm(c1),
            self.conv(c1, c2),
            self.activation(c2),
            nn.Flatten(),
            self.linear(c2 * size * size, hp.hidden),
            self.activation(hp.hidden),
            *dropout,
            self.linear(hp.hidden, hp.num_classes),
            self.output_layer(),
        )


class ComplexNet(TwoConvNet):
    """The paper's complex-valued network (MODELS.md section B); returns log-probabilities ``(N, num_classes)``.

    Trained with SGD, lr 0.01, momentum 0.9. Under ``precision="bf16-mixed"`` the convolutions and matrix
    products run in bfloat16 (real arithmetic, see ``zoo.layers.complex.complex_product``) while the tensors
    between layers, the batch norm and ``|z|`` stay complex64 / float32.

    Args:
        activation: ``"crelu"`` (the paper's choice), ``"modrelu"`` or ``"zrelu"``.
        init: complex initialiser of the convolutions and linear layers, ``"he"`` or ``"glorot"`` (section 3.6).
    """

    def __init__(self, activation: ComplexActivation = "crelu", init: ComplexInit = "he", **kwargs: Any) -> None:
        if activation not in ("crelu", "modrelu", "zrelu"):
            raise ValueError(f"activation must be 'crelu', 'modrelu' or 'zrelu', got {activation!r}")
        kwargs.setdefault("lr", 0.01)
        kwargs.setdefault("momentum", 0.9)
        super().__init__(**kwargs)

    def input_layer(self) -> nn.Module:
        return LearnedImaginaryInput(self.hparams.in_channels)

    def conv(self, in_channels: int, out_channels: int) -> nn.Module:
        hp = self.hparams
        return ComplexConv2d(in_channels, out_channels, hp.kernel_size, stride=hp.stride, init=hp.init)

    def batch_norm(self, channels: int) -> nn.Module:
        return ComplexBatchNorm2d(channels)

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        return ComplexLinear(in_features, out_features, init=self.hparams.init)

    def activation(self, features: int) -> nn.Module:
        kind = self.hparams.activation
        return CReLU() if kind == "crelu" else ModReLU(features) if kind == "modrelu" else ZReLU()

    def dropout_layer(self, p: float) -> nn.Module:
        return ComplexDropout(p)

    def output_layer(self) -> nn.Module:
        return nn.Sequential(ComplexMagnitude(), nn.LogSoftmax(dim=-1))


class RealNet(TwoConvNet):
    """Real-valued baseline of ComplexNet's topology with about as many real parameters; returns logits.

    Args:
        channels: output channels of the two real convolutions (28 and 71: about ComplexNet's real parameters).
        hidden: width of the hidden fully connected layer.
        init: ``None`` keeps PyTorch's default initialisation; ``"he"`` (normal, variance ``2 / fan_in``) and
            ``"glorot"`` (normal, variance ``2 / (fan_in + fan_out)``) are the real counterparts of ComplexNet's
            initialisers (the same ``E|w|^2``), with zero biases.
    """

    def __init__(
        self, channels: tuple[int, int] = (28, 71), hidden: int = 707, init: Optional[ComplexInit] = None,
        **kwargs: Any,
    ) -> None:
        if init is not None and init not in REAL_INITS:
            raise ValueError(f"init must be None or one of {sorted(REAL_INITS)}, got {init!r}")
        kwargs.setdefault("lr", 0.01)
        kwargs.setdefault("momentum", 0.9)
        super().__init__(channels=channels, hidden=hidden, **kwargs)

    def initialised(self, layer: nn.Conv2d | nn.Linear) -> nn.Module:
        """``layer`` with the ``init`` weights and zero bias (unchanged when ``init`` is None)."""
        if self.hparams.init is not None:
            REAL_INITS[self.hparams.init](layer.weight)
            nn.init.zeros_(layer.bias)
        return layer

    def conv(self, in_channels: int, out_channels: int) -> nn.Module:
        hp = self.hparams
        return self.initialised(nn.Conv2d(in_channels, out_channels, hp.kernel_size, stride=hp.stride))

    def batch_norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels)

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        return self.initialised(nn.Linear(in_features, out_features))

    def activation(self, features: int) -> nn.Module:
        return nn.ReLU()

    def dropout_layer(self, p: float) -> nn.Module:
        return nn.Dropout(p)
