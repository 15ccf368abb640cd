"""Convolutional LSTM (Shi et al., 2015, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting", NeurIPS), section 3.1, equation (3).

Every state is a 3-D tensor (channels x height x width) and the LSTM's matrix products become "same"-padded
convolutions, so the state keeps the spatial size of the input:

    i_t = sigmoid(W_xi * x_t + W_hi * h_{t-1} + W_ci o c_{t-1} + b_i)
    f_t = sigmoid(W_xf * x_t + W_hf * h_{t-1} + W_cf o c_{t-1} + b_f)
    c_t = f_t o c_{t-1} + i_t o tanh(W_xc * x_t + W_hc * h_{t-1} + b_c)
    o_t = sigmoid(W_xo * x_t + W_ho * h_{t-1} + W_co o c_t + b_o)
    h_t = o_t o tanh(c_t)

(``*`` a convolution, ``o`` the Hadamard product). The four input/hidden convolutions are one ``Conv2d`` over
``cat(x_t, h_{t-1})`` with ``4 * hidden_channels`` outputs, split in ``nn.LSTM``'s gate order i, f, g, o. The
peephole terms ``W_c o c`` are optional. Plain ``torch.nn``: no Lightning here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch import Tensor, nn

#: the state of one layer: (hidden h, cell c), each ``(N, hidden_channels, H, W)``.
LayerState = tuple[Tensor, Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step (Shi et al., 2015, eq. 3).

    Args:
        input_channels: channels of ``x_t``; 0 makes a state-only cell (the forecaster of the paper has no input).
        hidden_channels: channels of ``h`` and ``c``.
        kernel_size: odd size of the square convolution kernel ("same" padding ``kernel_size // 2``).
        bias: add the gate biases ``b``.
        peephole: add the peephole terms ``W_ci o c_{t-1}``, ``W_cf o c_{t-1}`` and ``W_co o c_t``.
        peephole_size: ``(H, W)`` to give every position its own peephole weight, as the paper's 3-D ``W_c``;
            ``None`` shares one weight per channel over all positions (then any frame size works).

    Shapes: ``x`` ``(N, input_channels, H, W)``; ``h``, ``c`` ``(N, hidden_channels, H, W)``.
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        peephole: bool = False,
        peephole_size: Optional[tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"ConvLSTMCell needs an odd kernel_size so that 'same' padding keeps the frame size, got "
                f"{kernel_size}; use {max(kernel_size - 1, 1)} or {kernel_size + 1}"
            )
        if input_channels < 0 or hidden_channels < 1:
            raise ValueError(
                f"ConvLSTMCell needs input_channels >= 0 and hidden_channels >= 1, got {input_channels} and "
                f"{hidden_channels}"
            )
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.gates = nn.Conv2d(
            input_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        if peephole:
            spatial = tuple(peephole_size) if peephole_size is not None else (1, 1)
            # W_ci, W_cf, W_co stacked on dim 0; zero at init, so the cell starts as a plain ConvLSTM.
            self.peephole_weight: Optional[nn.Parameter] = nn.Parameter(torch.zeros(3, hidden_channels, *spatial))
        else:
            self.register_parameter("peephole_weight", None)

    def initial_state(self, x: Tensor) -> LayerState:
        """Zero ``(h, c)`` for a batch ``x`` of shape ``(N, input_channels, H, W)``."""
        n, _, height, width = x.shape
        zeros = x.new_zeros(n, self.hidden_channels, height, width)
        return zeros, zeros.clone()

    def _check(self, x: Tensor, state: Optional[LayerState]) -> None:
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"ConvLSTMCell expects x of shape (N, {self.input_channels}, H, W), got {tuple(x.shape)}; "
                f"check input_channels"
            )
        if state is not None:
            expected = (x.shape[0], self.hidden_channels, *x.shape[2:])
            for name, tensor in zip(("h", "c"), state):
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"ConvLSTMCell expects {name} of shape {expected} for x of shape {tuple(x.shape)}, "
                        f"got {tuple(tensor.shape)}; pass states of the same batch and frame size"
                    )

    def forward(self, x: Tensor, state: Optional[LayerState] = None) -> LayerState:
        """One step: ``x_t`` and ``(h_{t-1}, c_{t-1})`` (zeros when ``None``) to ``(h_t, c_t)``."""
        self._check(x, state)
        h, c = state if state is not None else self.initial_state(x)
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        if self.peephole_weight is not None:
            w_ci, w_cf, w_co = self.peephole_weight
            i = i + w_ci * c
            f = f + w_cf * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peephole_weight is not None:
            o = o + w_co * c
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def _per_layer(value: Union[int, Sequence[int]], num_layers: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [value] * num_layers
    values = list(value)
    if len(values) != num_layers:
        raise ValueError(f"ConvLSTM got {len(values)} {name} for {num_layers} layers; give one per layer or an int")
    return values


class ConvLSTM(nn.Module):
    """A stack of :class:`ConvLSTMCell` run over a sequence, like ``nn.LSTM`` (Shi et al., 2015, section 3.2).

    Layer ``l > 0`` reads the hidden states of layer ``l - 1``. Each layer has its own hidden channels and kernel.

    Args:
        input_channels: channels of each input frame.
        hidden_channels: hidden channels of every layer (an int repeats over ``num_layers``).
        kernel_size: odd kernel of every layer (an int repeats).
        num_layers: number of layers; by default the length of ``hidden_channels`` (1 for an int).
        batch_first: inputs and outputs are ``(N, T, C, H, W)`` instead of ``(T, N, C, H, W)``.
        bias, peephole, peephole_size: as in :class:`ConvLSTMCell`, for every layer.

    ``forward(x, state=None)`` returns ``(output, states)``: ``output`` holds the last layer's ``h_t`` for every
    step, ``(T, N, hidden_channels[-1], H, W)`` (or batch first), and ``states`` is a list with one ``(h, c)`` per
    layer after the last step, each ``(N, hidden_channels[l], H, W)``. ``nn.LSTM`` stacks its ``(h_n, c_n)`` over
    layers; a list allows layers of different widths (``torch.stack`` gives ``nn.LSTM``'s layout when they agree).
    ``state`` takes the same list as initial states; ``None`` (or ``None`` for a layer) starts from zeros.
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: Union[int, Sequence[int]],
        kernel_size: Union[int, Sequence[int]] = 3,
        num_layers: Optional[int] = None,
        batch_first: bool = False,
        bias: bool = True,
        peephole: bool = False,
        peephole_size: Optional[tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        if num_layers is None:
            num_layers = 1 if isinstance(hidden_channels, int) else len(list(hidden_channels))
        if num_layers < 1:
            raise ValueError(f"ConvLSTM needs at least one layer, got num_layers={num_layers}")
        hidden = _per_layer(hidden_channels, num_layers, "hidden_channels")
        kernels = _per_layer(kernel_size, num_layers, "kernel sizes")
        self.input_channels = input_channels
        self.hidden_channels = hidden
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.cells = nn.ModuleList(
            ConvLSTMCell(fan_in, width, k, bias=bias, peephole=peephole, peephole_size=peephole_size)
            for fan_in, width, k in zip([input_channels, *hidden[:-1]], hidden, kernels)
        )

    def forward(
        self, x: Tensor, state: Optional[Sequence[Optional[LayerState]]] = None
    ) -> tuple[Tensor, list[LayerState]]:
        if x.ndim != 5 or x.shape[2] != self.input_channels:
            layout = "(N, T, C, H, W)" if self.batch_first else "(T, N, C, H, W)"
            raise ValueError(
                f"ConvLSTM expects input {layout} with C={self.input_channels}, got {tuple(x.shape)}; "
                f"check batch_first={self.batch_first} and input_channels"
            )
        if state is not None and len(state) != self.num_layers:
            raise ValueError(
                f"ConvLSTM expects one (h, c) per layer ({self.num_layers}), got {len(state)}; pass a list of "
                f"(h, c) tuples as returned by forward, or None"
            )
        steps = x.unbind(1 if self.batch_first else 0)
        states: list[LayerState] = []
        for layer, cell in enumerate(self.cells):
            layer_state = state[layer] if state is not None else None
            outputs = []
            for step in steps:
                layer_state = cell(step, layer_state)
                outputs.append(layer_state[0])
            states.append(layer_state)
            steps = outputs
        return torch.stack(steps, dim=1 if self.batch_first else 0), states


class ConvLSTMEncoderForecaster(nn.Module):
    """The encoding-forecasting network of Shi et al. (2015), section 3.3 and figure 3.

    Frames are first cut into ``patch_size x patch_size`` patches stacked on channels (the paper's 64x64 ->
    16x16x16 reshaping, ``nn.PixelUnshuffle``). An encoding :class:`ConvLSTM` reads the input frames; a forecasting
    stack of ConvLSTM layers with no input starts from the encoder's final states (layer ``l`` from layer ``l``)
    and runs ``frames_out`` steps; at every step a 1x1 convolution maps the concatenated hidden states of all
    forecasting layers to per-pixel logits, which ``nn.PixelShuffle`` puts back into frames.

    Args:
        in_channels: channels of a frame (1 for Moving MNIST).
        hidden_channels: hidden channels of each layer (the same in the encoder and the forecaster).
        kernel_size: odd kernel of each layer (an int repeats).
        patch_size: side of the square patches; frame sides must be multiples of it.
        frames_out: frames to predict.
        peephole: use the cells' peephole terms.

    ``forward(frames)`` maps ``(N, T_in, in_channels, H, W)`` to logits ``(N, frames_out, in_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: Sequence[int],
        kernel_size: Union[int, Sequence[int]] = 3,
        patch_size: int = 4,
        frames_out: int = 10,
        peephole: bool = False,
    ) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        kernels = _per_layer(kernel_size, len(hidden), "kernel sizes")
        patch_channels = in_channels * patch_size**2
        self.in_channels, self.patch_size, self.frames_out = in_channels, patch_size, frames_out
        self.patchify = nn.PixelUnshuffle(patch_size)
        self.unpatchify = nn.PixelShuffle(patch_size)
        self.encoder = ConvLSTM(patch_channels, hidden, kernels, batch_first=True, peephole=peephole)
        self.forecaster = nn.ModuleList(
            ConvLSTM(fan_in, width, k, batch_first=True, peephole=peephole)
            for fan_in, width, k in zip([0, *hidden[:-1]], hidden, kernels)
        )
        self.output = nn.Conv2d(sum(hidden), patch_channels, kernel_size=1)

    def forward(self, frames: Tensor) -> Tensor:
        n, steps, channels, height, width = frames.shape
        if channels != self.in_channels or height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"ConvLSTMEncoderForecaster expects frames (N, T, {self.in_channels}, H, W) with H and W multiples "
                f"of patch_size={self.patch_size}, got {tuple(frames.shape)}"
            )
        patches = self.patchify(frames.flatten(0, 1)).unflatten(0, (n, steps))
        _, states = self.encoder(patches)
        rows, cols = patches.shape[-2:]
        layer_input = patches.new_zeros(n, self.frames_out, 0, rows, cols)
        hidden_sequences = []
        for layer, state in zip(self.forecaster, states):
            layer_input, _ = layer(layer_input, [state])
            hidden_sequences.append(layer_input)
        logits = self.output(torch.cat(hidden_sequences, dim=2).flatten(0, 1))
        return self.unpatchify(logits).unflatten(0, (n, self.frames_out))
