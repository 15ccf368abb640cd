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
import torch.nn.functional as F
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
        #: the frame size ``(H, W)`` of per-position peephole weights, ``None`` when any size works.
        self.peephole_size = tuple(peephole_size) if peephole and peephole_size is not None else None
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
        if self.peephole_size is not None and tuple(x.shape[2:]) != self.peephole_size:
            raise ValueError(
                f"ConvLSTMCell was built with peephole_size={self.peephole_size} (a peephole weight per position), "
                f"so its frames are {self.peephole_size}, got x of shape {tuple(x.shape)}; build it with "
                f"peephole_size={tuple(x.shape[2:])}, or None to share one peephole weight over all positions"
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
        raise ValueError(
            f"ConvLSTM got {len(values)} {name} for {num_layers} layers; give one per layer or an int (the third "
            f"positional argument is num_layers, as in nn.LSTM: pass kernel_size by keyword)"
        )
    return values


def _is_layer_state(value: object) -> bool:
    """Whether ``value`` is one layer's ``(h, c)``: a pair of 4-D tensors."""
    pair = isinstance(value, (tuple, list)) and len(value) == 2
    return pair and all(isinstance(t, Tensor) and t.ndim == 4 for t in value)


#: the stacked state of the ``nn.LSTM`` form: ``(h, c)``, each ``(num_layers, N, hidden_channels, H, W)``.
StackedState = tuple[Tensor, Tensor]


class ConvLSTM(nn.Module):
    """A stack of :class:`ConvLSTMCell` run over a sequence, like ``nn.LSTM`` (Shi et al., 2015, section 3.2).

    Layer ``l > 0`` reads the hidden states of layer ``l - 1``. The signature follows ``nn.LSTM(input_size,
    hidden_size, num_layers)``, so the seed article's call works as written::

        lstm = ConvLSTM(3, 10, 2, kernel_size=3)          # 3 input channels, 10 hidden, 2 layers
        x = torch.randn(4, 10, 3, 25, 25)                 # (seq, batch, C, H, W)
        h0 = c0 = torch.zeros(2, 10, 10, 25, 25)          # (num_layers, batch, hidden, H, W)
        output, (h_n, c_n) = lstm(x, (h0, c0))            # (4, 10, 10, 25, 25); (2, 10, 10, 25, 25) each

    Args:
        input_channels: channels of each input frame.
        hidden_channels: hidden channels, an int for every layer (the ``nn.LSTM`` form), or one per layer
            (the per-layer form).
        num_layers: number of layers; by default the length of ``hidden_channels`` (1 for an int). For the
            earlier signature ``ConvLSTM(input_channels, hidden_channels, kernel_size)``, a sequence given here
            is read as the per-layer kernel sizes (then ``kernel_size`` must not be given).
            An int here is always ``num_layers``: a kernel size given as an int goes in ``kernel_size=``.
        kernel_size: odd kernel of every layer (an int), or one per layer; 3 when not given.
        batch_first: inputs and outputs are ``(N, T, C, H, W)`` instead of ``(T, N, C, H, W)``.
        bias, peephole, peephole_size: as in :class:`ConvLSTMCell`, for every layer.

    ``forward(x, state=None)`` returns ``(output, state)``: ``output`` holds the last layer's ``h_t`` for every
    step, ``(T, N, hidden_channels[-1], H, W)`` (or batch first); ``state`` is the state after the last step and
    ``None`` starts every layer from zeros. The two forms differ only in how a state is held, never in weights or
    numbers (same parameter names ``cells.<l>.*``, so a state dict loads into either):

    - **nn.LSTM form** (``hidden_channels`` an int): the state is ``(h, c)``, each stacked over layers,
      ``(num_layers, N, hidden_channels, H, W)``, as ``nn.LSTM``'s ``(h_n, c_n)``.
    - **per-layer form** (``hidden_channels`` a sequence, whose widths may differ): the state is a list with one
      ``(h, c)`` per layer, each ``(N, hidden_channels[l], H, W)``; a ``None`` entry starts that layer from
      zeros. With equal widths, ``torch.stack`` over the list gives the stacked form, and
      ``ConvLSTM(3, 10, 2)`` computes exactly what ``ConvLSTM(3, [10, 10])`` does.
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: Union[int, Sequence[int]],
        num_layers: Union[int, Sequence[int], None] = None,
        kernel_size: Union[int, Sequence[int], None] = None,
        batch_first: bool = False,
        bias: bool = True,
        peephole: bool = False,
        peephole_size: Optional[tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        if num_layers is not None and not isinstance(num_layers, int):
            if kernel_size is not None:
                raise ValueError(
                    f"ConvLSTM got the sequence {list(num_layers)} as num_layers and also kernel_size={kernel_size}; "
                    f"num_layers is an int (kernel sizes go in kernel_size)"
                )
            num_layers, kernel_size = None, num_layers  # the earlier signature (input, hidden, kernel_size)
        if kernel_size is None:
            kernel_size = 3
        self.stacked_state = isinstance(hidden_channels, int)
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
        self, x: Tensor, state: Union[StackedState, Sequence[Optional[LayerState]], None] = None
    ) -> tuple[Tensor, Union[StackedState, list[LayerState]]]:
        if x.ndim != 5 or x.shape[2] != self.input_channels:
            layout = "(N, T, C, H, W)" if self.batch_first else "(T, N, C, H, W)"
            raise ValueError(
                f"ConvLSTM expects input {layout} with C={self.input_channels}, got {tuple(x.shape)}; "
                f"check batch_first={self.batch_first} and input_channels"
            )
        if x.shape[1 if self.batch_first else 0] == 0:
            raise ValueError(f"ConvLSTM needs at least one time step, got T=0 in input {tuple(x.shape)} "
                             f"(batch_first={self.batch_first})")
        layer_states = self._unstack(x, state) if self.stacked_state else self._check_per_layer(state)
        steps = x.unbind(1 if self.batch_first else 0)
        states: list[LayerState] = []
        for cell, layer_state in zip(self.cells, layer_states):
            outputs = []
            for step in steps:
                layer_state = cell(step, layer_state)
                outputs.append(layer_state[0])
            states.append(layer_state)
            steps = outputs
        output = torch.stack(steps, dim=1 if self.batch_first else 0)
        if self.stacked_state:
            return output, (torch.stack([h for h, _ in states]), torch.stack([c for _, c in states]))
        return output, states

    def _check_per_layer(self, state: Optional[Sequence[Optional[LayerState]]]) -> Sequence[Optional[LayerState]]:
        if state is None:
            return [None] * self.num_layers
        if (
            isinstance(state, Tensor)
            or len(state) != self.num_layers
            or not all(s is None or _is_layer_state(s) for s in state)
        ):
            raise ValueError(
                f"ConvLSTM with per-layer hidden_channels {self.hidden_channels} expects a list of one (h, c) or None "
                f"per layer ({self.num_layers}), h and c each (N, hidden_channels[l], H, W), as returned by forward; "
                f"for nn.LSTM's stacked (h0, c0), build the ConvLSTM with an int hidden_channels"
            )
        return state

    def _unstack(self, x: Tensor, state: Optional[StackedState]) -> list[Optional[LayerState]]:
        if state is None:
            return [None] * self.num_layers
        batch = x.shape[0] if self.batch_first else x.shape[1]
        expected = (self.num_layers, batch, self.hidden_channels[0], *x.shape[3:])
        if len(state) != 2 or not all(isinstance(t, Tensor) and tuple(t.shape) == expected for t in state):
            got = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in state]
            raise ValueError(
                f"ConvLSTM with hidden_channels={self.hidden_channels[0]} and {self.num_layers} layers expects the "
                f"state (h0, c0), each of shape (num_layers, N, hidden_channels, H, W) = {expected}, like nn.LSTM; "
                f"got {got}. For a list of per-layer (h, c), build the ConvLSTM with a list of hidden_channels"
            )
        return list(zip(state[0].unbind(0), state[1].unbind(0)))


#: the output heads of :class:`ConvLSTMEncoderForecaster`.
OUTPUT_HEADS = ("pixels", "dynamic_filter")
#: how far from 0 and 1 the dynamic-filter forecasts are squeezed before their logits are taken.
DYNAMIC_FILTER_FLOOR = 1e-4


def apply_separable_filters(frame: Tensor, vertical: Tensor, horizontal: Tensor) -> Tensor:
    """Each pixel of ``frame`` ``(N, C, H, W)`` replaced by a weighted sum of its ``k x k`` neighbourhood.

    The weights of output pixel ``(y, x)`` are the outer product of its own vertical and horizontal kernels,
    ``vertical[:, :, y, x]`` and ``horizontal[:, :, y, x]``, each ``(N, k, H, W)`` and shared by the channels:
    ``out(y, x) = sum_ij vertical_i(y, x) horizontal_j(y, x) frame(y + i - k // 2, x + j - k // 2)`` (the
    per-pixel separable kernels of Niklaus et al., 2017, "Video Frame Interpolation via Adaptive Separable
    Convolution", eq. 2). A translation by whole pixels is one one-hot pair. Outside the frame reads zeros.
    """
    size = vertical.shape[1]
    n, channels, height, width = frame.shape
    expected = (n, size, height, width)
    if size % 2 == 0 or tuple(vertical.shape) != expected or tuple(horizontal.shape) != expected:
        raise ValueError(
            f"vertical and horizontal kernels must both be (N, k, H, W) = {expected} with k odd for a frame of "
            f"shape {tuple(frame.shape)}, got {tuple(vertical.shape)} and {tuple(horizontal.shape)}"
        )
    pad = size // 2
    windows = F.pad(frame, (pad, pad, pad, pad)).unfold(3, size, 1).unfold(2, size, 1)  # (N, C, H, W, k_x, k_y)
    rows = (windows * horizontal.permute(0, 2, 3, 1)[:, None, :, :, :, None]).sum(4)  # (N, C, H, W, k_y)
    return (rows * vertical.permute(0, 2, 3, 1)[:, None]).sum(4)


class ConvLSTMEncoderForecaster(nn.Module):
    """The encoding-forecasting network of Shi et al. (2015), section 3.3 and figure 3.

    Frames are first cut into ``patch_size x patch_size`` patches stacked on channels (the paper's 64x64 ->
    16x16x16 reshaping, ``nn.PixelUnshuffle``). An encoding :class:`ConvLSTM` reads the input frames; a forecasting
    stack of ConvLSTM layers with no input starts from the encoder's final states (layer ``l`` from layer ``l``)
    and runs ``frames_out`` steps; at every step a 1x1 convolution maps the concatenated hidden states of all
    forecasting layers to the output, which ``nn.PixelShuffle`` puts back at the frame's resolution:

    - ``output="pixels"`` (the paper's): per-pixel logits of the future frame.
    - ``output="dynamic_filter"``: per-pixel ``filter_size x filter_size`` kernels that move the previous frame's
      pixels into the next (De Brabandere et al., 2016, "Dynamic Filter Networks", section 3.2, their Moving MNIST
      model), each the outer product of a vertical and a horizontal kernel normalized by a softmax
      (:func:`apply_separable_filters`): ``2 k`` numbers per pixel instead of ``k^2``. Step 1 filters the last
      input frame, step ``t`` the forecast of step ``t - 1``. A forecast pixel is a convex combination of pixels
      of the frame before, so the digits keep their strokes instead of fading into the mean of the possible
      futures. The frames, probabilities by construction, are returned as logits like the other head's, of
      ``p' = eps + (1 - 2 eps) p`` with ``eps = DYNAMIC_FILTER_FLOOR`` (1e-4): a pixel the filters leave at
      exactly 0 or 1 still has a finite cross-entropy and a gradient.

    Args:
        in_channels: channels of a frame (1 for Moving MNIST).
        hidden_channels: hidden channels of each layer (the same in the encoder and the forecaster).
        kernel_size: odd kernel of each layer (an int repeats).
        patch_size: side of the square patches; frame sides must be multiples of it.
        frames_out: frames to predict.
        peephole: use the cells' peephole terms.
        output: ``"pixels"`` or ``"dynamic_filter"``.
        filter_size: odd side of the dynamic filters (``output="dynamic_filter"``): the farthest a pixel moves in
            one step is ``filter_size // 2``.

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
        output: str = "pixels",
        filter_size: int = 9,
    ) -> None:
        super().__init__()
        if output not in OUTPUT_HEADS:
            raise ValueError(f"output must be one of {OUTPUT_HEADS}, got {output!r}")
        if filter_size < 1 or filter_size % 2 == 0:
            raise ValueError(f"filter_size must be odd (a centred kernel), got {filter_size}; use {filter_size + 1}")
        hidden = list(hidden_channels)
        kernels = _per_layer(kernel_size, len(hidden), "kernel sizes")
        patch_channels = in_channels * patch_size**2
        self.in_channels, self.patch_size, self.frames_out = in_channels, patch_size, frames_out
        self.output_head, self.filter_size = output, filter_size
        self.patchify = nn.PixelUnshuffle(patch_size)
        self.unpatchify = nn.PixelShuffle(patch_size)
        self.encoder = ConvLSTM(patch_channels, hidden, kernel_size=kernels, batch_first=True, peephole=peephole)
        self.forecaster = nn.ModuleList(
            ConvLSTM(fan_in, [width], kernel_size=k, batch_first=True, peephole=peephole)
            for fan_in, width, k in zip([0, *hidden[:-1]], hidden, kernels)
        )
        out_channels = patch_channels if output == "pixels" else 2 * filter_size * patch_size**2
        self.output = nn.Conv2d(sum(hidden), out_channels, kernel_size=1)

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
        outputs = self.unpatchify(self.output(torch.cat(hidden_sequences, dim=2).flatten(0, 1)))
        outputs = outputs.unflatten(0, (n, self.frames_out))
        if self.output_head == "pixels":
            return outputs
        vertical, horizontal = outputs.float().unflatten(2, (2, self.filter_size)).softmax(dim=3).unbind(2)
        frame, forecast = frames[:, -1].float(), []
        for step in range(self.frames_out):
            frame = apply_separable_filters(frame, vertical[:, step], horizontal[:, step])
            forecast.append(frame)
        floor = DYNAMIC_FILTER_FLOOR
        return torch.logit(floor + (1 - 2 * floor) * torch.stack(forecast, dim=1))
