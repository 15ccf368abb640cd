"""ConvLSTM layers, the Moving MNIST datamodule and the encoder-forecaster (Shi et al., 2015)."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.io import write_png

from datamodules import DatasetNotFoundError, MovingMNISTDataModule
from datamodules.moving_mnist import bouncing_trajectories, render_frames
from tests.helpers import ok, run_script, run_zoo
from zoo import predict
from zoo.layers import ConvLSTM, ConvLSTMCell, ConvLSTMEncoderForecaster, apply_separable_filters
from zoo.layers.convlstm import DYNAMIC_FILTER_FLOOR
from zoo.callbacks import FrameStripCallback
from zoo.models import ConvLSTMForecaster
from zoo.models.convlstm_forecaster import cross_entropy_per_sequence
from zoo.preprocessing import read_image

# ---------------------------------------------------------------------------------------------------- layers


@pytest.mark.parametrize("batch_first", [False, True])
def test_the_seed_articles_call_returns_states_stacked_like_nn_lstm(batch_first):
    """MODELS.md / issue 19: ConvLSTM(3, 10, 2, kernel_size=3) on (seq 4, batch 10, 3, 25, 25) with (h0, c0)."""
    torch.manual_seed(0)
    lstm = ConvLSTM(3, 10, 2, kernel_size=3, batch_first=batch_first)
    assert lstm.num_layers == 2 and lstm.hidden_channels == [10, 10]
    assert [cell.kernel_size for cell in lstm.cells] == [3, 3]
    x = torch.randn(4, 10, 3, 25, 25)
    h0, c0 = torch.randn(2, 10, 10, 25, 25), torch.randn(2, 10, 10, 25, 25)
    output, (h_n, c_n) = lstm(x.transpose(0, 1) if batch_first else x, (h0, c0))
    assert output.shape == ((10, 4, 10, 25, 25) if batch_first else (4, 10, 10, 25, 25))
    assert h_n.shape == c_n.shape == (2, 10, 10, 25, 25)
    last_output = output[:, -1] if batch_first else output[-1]
    torch.testing.assert_close(last_output, h_n[-1])
    # layer l of the stack is the state of cell l, started from h0[l], c0[l]
    h, c = h0[0], c0[0]
    first_layer_outputs = []
    for step in x:
        h, c = lstm.cells[0](step, (h, c))
        first_layer_outputs.append(h)
    torch.testing.assert_close(h_n[0], h)
    torch.testing.assert_close(c_n[0], c)
    h, c = h0[1], c0[1]
    for step in first_layer_outputs:
        h, c = lstm.cells[1](step, (h, c))
    torch.testing.assert_close(h_n[1], h)
    torch.testing.assert_close(c_n[1], c)
    # no state: zeros, as nn.LSTM
    zeros = torch.zeros(2, 10, 10, 25, 25)
    from_none, (h_none, _) = lstm(x[:2] if not batch_first else x[:2].transpose(0, 1))
    from_zeros, (h_zeros, _) = lstm(x[:2] if not batch_first else x[:2].transpose(0, 1), (zeros, zeros))
    torch.testing.assert_close(from_none, from_zeros)
    torch.testing.assert_close(h_none, h_zeros)


def test_the_two_forms_compute_the_same_with_the_same_weights():
    """ConvLSTM(3, 10, 2) (stacked state) and ConvLSTM(3, [10, 10]) (per-layer list): one state dict, one result."""
    torch.manual_seed(0)
    stacked = ConvLSTM(3, 10, 2, kernel_size=[3, 5])
    per_layer = ConvLSTM(3, [10, 10], kernel_size=[3, 5])
    assert stacked.state_dict().keys() == per_layer.state_dict().keys()
    per_layer.load_state_dict(stacked.state_dict())
    x = torch.randn(3, 2, 3, 9, 9)
    h0, c0 = torch.randn(2, 2, 10, 9, 9), torch.randn(2, 2, 10, 9, 9)
    output, (h_n, c_n) = stacked(x, (h0, c0))
    output_list, states = per_layer(x, [(h0[0], c0[0]), (h0[1], c0[1])])
    torch.testing.assert_close(output_list, output)
    torch.testing.assert_close(torch.stack([h for h, _ in states]), h_n)
    torch.testing.assert_close(torch.stack([c for _, c in states]), c_n)
    assert isinstance(states, list) and len(states) == 2


def test_the_earlier_positional_kernel_sizes_still_build_the_same_network():
    """ConvLSTM(input, hidden, kernel_sizes), today's per-layer form, reads a sequence third argument as kernels."""
    torch.manual_seed(0)
    earlier = ConvLSTM(2, [4, 5], [3, 5])
    keyword = ConvLSTM(2, [4, 5], kernel_size=[3, 5])
    assert [cell.kernel_size for cell in earlier.cells] == [3, 5] and earlier.num_layers == 2
    keyword.load_state_dict(earlier.state_dict())
    x = torch.randn(3, 2, 2, 8, 8)
    torch.testing.assert_close(earlier(x)[0], keyword(x)[0])
    with pytest.raises(ValueError, match="also kernel_size=3"):
        ConvLSTM(2, [4, 5], [3, 5], kernel_size=3)
    with pytest.raises(ValueError, match="2 hidden_channels for 3 layers.*pass kernel_size by keyword"):
        ConvLSTM(1, [3, 3], 3)  # an int third argument is num_layers now


def test_batch_first_gives_the_same_numbers():
    torch.manual_seed(0)
    lstm = ConvLSTM(2, [4, 5], [3, 5])
    x = torch.randn(3, 2, 2, 8, 8)
    output, states = lstm(x)
    lstm.batch_first = True
    output_bf, states_bf = lstm(x.transpose(0, 1))
    torch.testing.assert_close(output_bf.transpose(0, 1), output)
    assert output.shape[2] == 5 and states[0][0].shape[1] == 4
    torch.testing.assert_close(states_bf[1][1], states[1][1])


@pytest.mark.parametrize("peephole", [False, True])
def test_cell_step_equals_the_gate_equations(peephole):
    """Shi et al. eq. (3) written out with the cell's own weights."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel_size=3, peephole=peephole, peephole_size=(6, 7) if peephole else None)
    if peephole:
        torch.nn.init.normal_(cell.peephole_weight)
    x, h, c = torch.randn(2, 3, 6, 7), torch.randn(2, 4, 6, 7), torch.randn(2, 4, 6, 7)
    w, b = cell.gates.weight, cell.gates.bias
    w_x, w_h = w[:, :3], w[:, 3:]

    def conv(weights, inputs, gate):
        rows = slice(4 * gate, 4 * gate + 4)
        return F.conv2d(inputs, weights[rows], padding=1)

    def pre(gate):
        return conv(w_x, x, gate) + conv(w_h, h, gate) + b[4 * gate : 4 * gate + 4, None, None]

    w_ci, w_cf, w_co = cell.peephole_weight if peephole else torch.zeros(3, 4, 1, 1)
    i = torch.sigmoid(pre(0) + w_ci * c)
    f = torch.sigmoid(pre(1) + w_cf * c)
    c_next = f * c + i * torch.tanh(pre(2))
    o = torch.sigmoid(pre(3) + w_co * c_next)
    h_next = o * torch.tanh(c_next)

    h_cell, c_cell = cell(x, (h, c))
    torch.testing.assert_close(c_cell, c_next)
    torch.testing.assert_close(h_cell, h_next)


def test_a_given_initial_state_is_used():
    torch.manual_seed(0)
    lstm = ConvLSTM(1, [3, 3], kernel_size=3)
    x = torch.randn(6, 2, 1, 5, 5)
    full, full_states = lstm(x)
    first, middle = lstm(x[:3])
    second, end_states = lstm(x[3:], middle)
    torch.testing.assert_close(torch.cat([first, second]), full)
    for (h, c), (h_ref, c_ref) in zip(end_states, full_states):
        torch.testing.assert_close(h, h_ref)
        torch.testing.assert_close(c, c_ref)
    from_zeros, _ = lstm(x[3:])
    assert not torch.allclose(from_zeros, second)


def test_zero_state_is_the_default():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3)
    x = torch.randn(2, 2, 4, 4)
    zeros = torch.zeros(2, 3, 4, 4)
    torch.testing.assert_close(cell(x), cell(x, (zeros, zeros)))


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="odd kernel_size.*got 4"):
        ConvLSTMCell(1, 2, kernel_size=4)
    with pytest.raises(ValueError, match="odd kernel_size"):
        ConvLSTM(1, [2, 2], [3, 2])
    lstm = ConvLSTM(3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"\(N, T, C, H, W\) with C=3, got \(2, 5, 1, 8, 8\)"):
        lstm(torch.zeros(2, 5, 1, 8, 8))
    with pytest.raises(ValueError, match=r"state \(h0, c0\), each of shape .* = \(1, 2, 4, 8, 8\), like nn.LSTM"):
        lstm(torch.zeros(2, 5, 3, 8, 8), (torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8)))
    per_layer = ConvLSTM(3, [4, 4], batch_first=True)
    with pytest.raises(ValueError, match="one \\(h, c\\) or None per layer \\(2\\)"):
        per_layer(torch.zeros(2, 5, 3, 8, 8), [None])
    with pytest.raises(ValueError, match="one \\(h, c\\) or None per layer"):  # the stacked form given to a list
        per_layer(torch.zeros(2, 5, 3, 8, 8), (torch.zeros(2, 2, 4, 8, 8), torch.zeros(2, 2, 4, 8, 8)))
    cell = ConvLSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"h of shape \(2, 4, 8, 8\)"):
        cell(torch.zeros(2, 3, 8, 8), (torch.zeros(2, 4, 9, 8), torch.zeros(2, 4, 8, 8)))
    with pytest.raises(ValueError, match="2 hidden_channels for 3 layers"):
        ConvLSTM(1, [2, 2], num_layers=3)


def test_per_position_peepholes_name_their_frame_size_and_an_empty_sequence_is_refused():
    cell = ConvLSTMCell(3, 8, peephole=True, peephole_size=(16, 16))
    with pytest.raises(ValueError, match=r"peephole_size=\(16, 16\).*got x of shape \(2, 3, 8, 8\); build it with "
                                         r"peephole_size=\(8, 8\), or None"):
        cell(torch.randn(2, 3, 8, 8))
    assert cell(torch.randn(2, 3, 16, 16))[0].shape == (2, 8, 16, 16)
    with pytest.raises(ValueError, match=r"peephole_size=\(16, 16\)"):
        ConvLSTM(3, 8, peephole=True, peephole_size=(16, 16))(torch.randn(2, 1, 3, 8, 8))
    assert ConvLSTMCell(3, 8, peephole_size=(16, 16))(torch.randn(2, 3, 8, 8))[0].shape == (2, 8, 8, 8)  # no peephole
    for batch_first, x in ((False, torch.randn(0, 2, 3, 8, 8)), (True, torch.randn(2, 0, 3, 8, 8))):
        with pytest.raises(ValueError, match=r"at least one time step, got T=0"):
            ConvLSTM(3, 4, batch_first=batch_first)(x)


def test_encoder_forecaster_shapes_and_gradients():
    torch.manual_seed(0)
    net = ConvLSTMEncoderForecaster(1, [4, 6], [3, 5], patch_size=4, frames_out=3)
    frames = torch.rand(2, 5, 1, 16, 16)
    logits = net(frames)
    assert logits.shape == (2, 3, 1, 16, 16)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with pytest.raises(ValueError, match="multiples of patch_size=4"):
        net(torch.rand(2, 5, 1, 18, 16))


def one_hot_kernels(tap: int, size: int = 5, frame_size: int = 8) -> torch.Tensor:
    """Kernels ``(2, size, frame_size, frame_size)`` that read tap ``tap`` at every pixel."""
    return F.one_hot(torch.full((2, frame_size, frame_size), tap), size).permute(0, 3, 1, 2).float()


def test_separable_filters_move_pixels_by_whole_steps():
    frame = torch.rand(2, 3, 8, 8)
    centre, left, below = one_hot_kernels(2), one_hot_kernels(1), one_hot_kernels(3)
    torch.testing.assert_close(apply_separable_filters(frame, centre, centre), frame, rtol=0, atol=0)
    moved_right = apply_separable_filters(frame, centre, left)  # every pixel reads its left neighbour
    assert torch.equal(moved_right[..., 1:], frame[..., :-1]) and (moved_right[..., 0] == 0).all()
    moved_up = apply_separable_filters(frame, below, centre)  # every pixel reads the pixel below it
    assert torch.equal(moved_up[..., :-1, :], frame[..., 1:, :]) and (moved_up[..., -1, :] == 0).all()
    with pytest.raises(ValueError, match=r"\(N, k, H, W\) = \(2, 5, 8, 8\) with k odd"):
        apply_separable_filters(frame, centre, centre[..., :7])


def test_separable_filters_are_the_outer_product_of_their_kernels():
    torch.manual_seed(0)
    frame = torch.rand(1, 1, 6, 7)
    vertical, horizontal = torch.rand(1, 3, 6, 7), torch.rand(1, 3, 6, 7)
    padded = F.pad(frame, (1, 1, 1, 1))[0, 0]
    by_hand = torch.zeros(6, 7)
    for y in range(6):
        for x in range(7):
            weights = torch.outer(vertical[0, :, y, x], horizontal[0, :, y, x])
            by_hand[y, x] = (weights * padded[y:y + 3, x:x + 3]).sum()
    torch.testing.assert_close(apply_separable_filters(frame, vertical, horizontal)[0, 0], by_hand)


def test_the_dynamic_filter_head_keeps_the_forecast_a_moved_copy_of_the_last_frame():
    torch.manual_seed(0)
    net = ConvLSTMEncoderForecaster(1, [4, 6], [3, 5], patch_size=4, frames_out=3, output="dynamic_filter",
                                    filter_size=5)
    assert net.output.out_channels == 2 * 5 * 4**2
    frames = torch.rand(2, 5, 1, 16, 16)
    logits = net(frames)
    assert logits.shape == (2, 3, 1, 16, 16)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # forced to the centre tap, every forecast is the last input frame (squeezed by the floor)
    with torch.no_grad():
        net.output.weight.zero_()
        net.output.bias.copy_(torch.tensor([0.0, 0, 50, 0, 0] * 2).repeat_interleave(4**2))  # PixelShuffle's order
        probabilities = net(frames).sigmoid()
    floor = DYNAMIC_FILTER_FLOOR
    expected = (floor + (1 - 2 * floor) * frames[:, -1:]).expand(-1, 3, -1, -1, -1)
    torch.testing.assert_close(probabilities, expected)
    with pytest.raises(ValueError, match="output must be one of"):
        ConvLSTMEncoderForecaster(1, [4], output="flow")
    with pytest.raises(ValueError, match="filter_size must be odd"):
        ConvLSTMEncoderForecaster(1, [4], output="dynamic_filter", filter_size=4)


# ---------------------------------------------------------------------------------------------------- data


def test_trajectories_stay_inside_and_bounce():
    generator = torch.Generator().manual_seed(0)
    corners = bouncing_trajectories(200, 2, 40, max_position=36, speed=7.0, generator=generator)
    assert corners.shape == (200, 40, 2, 2)
    assert corners.min() == 0 and corners.max() == 36
    steps = (corners[:, 1:] - corners[:, :-1]).abs()
    assert steps.max() <= 8  # at most one frame's move (7 px) plus rounding
    ones = torch.ones(1, 28, 28)
    frames = torch.stack([render_frames(ones, c[:, :1], 64) for c in corners[:20]])
    assert torch.equal(frames.flatten(2).sum(-1), torch.full((20, 40), 28.0 * 28.0))  # no pixel is cut off


def test_render_keeps_the_maximum_where_digits_overlap():
    digits = torch.stack([torch.full((4, 4), 0.3), torch.full((4, 4), 0.8)])
    frames = render_frames(digits, torch.tensor([[[0, 0], [2, 2]]]), 8)
    assert frames[0, 1, 1] == pytest.approx(0.3)
    assert frames[0, 3, 3] == pytest.approx(0.8)
    assert frames[0, 5, 5] == pytest.approx(0.8) and frames[0, 7, 7] == 0
    with pytest.raises(ValueError, match=r"corners must lie in \[0, 4\]"):
        render_frames(digits, torch.tensor([[[0, 0], [5, 0]]]), 8)


def small_datamodule(root, **overrides):
    settings = dict(root=str(root), num_train=12, num_val=6, num_test=8, batch_size=4, seed=3)
    return MovingMNISTDataModule(**{**settings, **overrides})


def first_sequences(datamodule, split="test"):
    datamodule.setup()
    dataset = getattr(datamodule, f"{split}_set")
    return torch.stack([torch.cat(dataset[i]) for i in range(len(dataset))])


def test_generation_is_deterministic_by_seed(mnist_root):
    a = first_sequences(small_datamodule(mnist_root))
    b = first_sequences(small_datamodule(mnist_root, num_train=30))  # test sequences ignore num_train
    c = first_sequences(small_datamodule(mnist_root, seed=4))
    assert a.shape == (8, 20, 1, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(first_sequences(small_datamodule(mnist_root), "train")[:6],
                           first_sequences(small_datamodule(mnist_root), "val"))


def test_splits_use_their_own_digits(mnist_root):
    datamodule = small_datamodule(mnist_root)
    datamodule.setup()
    train_digits = datamodule.train_set.sequences.digits
    val_digits, test_digits = datamodule.val_set.sequences.digits, datamodule.test_set.sequences.digits
    assert len(train_digits) == 200 and len(val_digits) + len(test_digits) == 100  # the fixture's files
    val_set = {tuple(d.flatten().tolist()) for d in val_digits}
    assert not any(tuple(d.flatten().tolist()) in val_set for d in test_digits)
    inputs, future = next(iter(datamodule.train_dataloader()))
    assert inputs.shape == future.shape == (4, 10, 1, 64, 64)
    assert datamodule.describe()["dataset"] == "Moving MNIST generated from MNIST (200 training images) digits"


def test_options_change_the_sequences(mnist_root):
    datamodule = small_datamodule(mnist_root, digits="fashion_mnist", frames_in=3, frames_out=2, image_size=32,
                                  num_digits=1, digit_size=14, speed=2.0)
    datamodule.setup()
    inputs, future = datamodule.test_set[0]
    assert inputs.shape == (3, 1, 32, 32) and future.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="digit_size"):
        MovingMNISTDataModule(digit_size=80)


def test_missing_digits_name_the_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte"):
        small_datamodule(tmp_path).setup()


def test_torchvision_file_is_split_by_sequences(tmp_path):
    folder = tmp_path / "MovingMNIST"
    folder.mkdir()
    with pytest.raises(DatasetNotFoundError, match="mnist_test_seq.npy"):
        small_datamodule(tmp_path, source="torchvision").setup()
    data = np.arange(20 * 30, dtype=np.int64).reshape(20, 30, 1, 1) % 251 * np.ones((1, 1, 64, 64), np.int64)
    np.save(folder / "mnist_test_seq.npy", data.astype(np.uint8))  # (frames, sequences, 64, 64) as the file
    datamodule = small_datamodule(tmp_path, source="torchvision", num_train=None)
    datamodule.setup()
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (16, 6, 8)
    firsts = {int(round(float(s[0][0, 0, 0, 0]) * 255)) for split in ("train", "val", "test")
              for s in getattr(datamodule, f"{split}_set")}
    assert len(firsts) == 30  # every sequence in exactly one split
    inputs, future = datamodule.test_set[0]
    assert inputs.shape == future.shape == (10, 1, 64, 64)
    assert future[0, 0, 0, 0] * 255 == pytest.approx((inputs[0, 0, 0, 0] * 255 + 10 * 30) % 251)
    with pytest.raises(ValueError, match="not enough"):
        small_datamodule(tmp_path, source="torchvision", num_train=20).setup()


# ---------------------------------------------------------------------------------------------------- model


def tiny_model(**overrides):
    settings = dict(hidden_channels=[4, 4], kernel_size=3, patch_size=8, optimizer="adam", lr=1e-2)
    return ConvLSTMForecaster(**{**settings, **overrides})


def test_cross_entropy_per_sequence_sums_the_paper_units():
    target = torch.rand(2, 10, 1, 64, 64)
    probabilities = torch.rand(2, 10, 1, 64, 64)
    by_hand = -(target * probabilities.log() + (1 - target) * (1 - probabilities).log()).sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(cross_entropy_per_sequence(probabilities, target, 1e-12), by_hand)
    copy = (target > 0.5).float()
    assert torch.isfinite(cross_entropy_per_sequence(copy, target, 1e-4)).all()


def test_fit_test_and_strips(mnist_root, tmp_path):
    L.seed_everything(0)
    datamodule = small_datamodule(mnist_root)
    strips = FrameStripCallback(dirpath=str(tmp_path / "strips"), num_sequences=2)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[strips])
    model = tiny_model()
    trainer.fit(model, datamodule=datamodule)
    assert {"val/ce_per_seq", "val/mse_per_frame", "val/ssim"} <= set(trainer.callback_metrics)
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    for name in ("ce_per_seq", "mse_per_frame", "ssim"):
        for suffix in ("", "_copy_last", "_mean_frame"):
            assert f"test/{name}{suffix}" in metrics
    inputs = torch.stack([datamodule.test_set[i][0] for i in range(8)])
    future = torch.stack([datamodule.test_set[i][1] for i in range(8)])
    copy_last = cross_entropy_per_sequence(inputs[:, -1:].expand_as(future), future, 1e-4).mean()
    assert metrics["test/ce_per_seq_copy_last"] == pytest.approx(float(copy_last), rel=1e-4)
    mean_frame_mse = (inputs.mean(1, keepdim=True) - future).square().sum(dim=(2, 3, 4)).mean()
    assert metrics["test/mse_per_frame_mean_frame"] == pytest.approx(float(mean_frame_mse), rel=1e-4)
    assert sorted(p.name for p in strips.written) == ["test-epoch=001.png", "val-epoch=000.png"]
    from PIL import Image

    width, height = Image.open(strips.written[0]).size
    assert (width, height) == (10 * 66 + 2, 2 * 3 * 66 + 2)  # 10 frames per row; 2 sequences x 3 rows


def test_fast_dev_run_and_checkpoint_round_trip(mnist_root, tmp_path):
    datamodule = small_datamodule(mnist_root)
    trainer = L.Trainer(fast_dev_run=1, accelerator="cpu", enable_progress_bar=False, logger=False,
                        enable_checkpointing=False)
    model = tiny_model(peephole=True)
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = ConvLSTMForecaster.load_from_checkpoint(path, weights_only=True)
    inputs = torch.rand(2, 10, 1, 64, 64)
    torch.testing.assert_close(restored.predict_frames(inputs), model.eval().predict_frames(inputs))
    with pytest.raises(ValueError, match=r"input frames of shape \(N, 10, 1, 64, 64\), got \(2, 9, 1, 64, 64\)"):
        model(torch.rand(2, 9, 1, 64, 64))


def test_subclass_overrides_the_loss(mnist_root):
    class SquaredErrorForecaster(ConvLSTMForecaster):
        def loss(self, logits, target):
            return F.mse_loss(logits.sigmoid(), target)

    model = SquaredErrorForecaster(hidden_channels=[4], patch_size=8, optimizer="adam")
    trainer = L.Trainer(fast_dev_run=1, accelerator="cpu", enable_progress_bar=False, logger=False,
                        enable_checkpointing=False)
    trainer.fit(model, datamodule=small_datamodule(mnist_root))
    assert trainer.callback_metrics["train/loss"] < 0.5  # a squared error of probabilities, not a BCE


def test_cli_fit_with_the_shipped_config(mnist_root, tmp_path):
    result = run_zoo(
        "fit", "-c", "convlstm_moving_mnist5k", "--trainer.fast_dev_run", "1", "--test_after_fit", "false",
        "--data.init_args.root", str(mnist_root), "--data.init_args.num_train", "8",
        "--data.init_args.num_val", "4", "--data.init_args.num_test", "4", "--data.init_args.batch_size", "4",
        "--model.init_args.hidden_channels", "[4, 4]", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.rglob("val-epoch=000.png"))


def test_the_forecast_picture_of_a_run(mnist_root, tmp_path):
    """``scripts/figures/forecast_strip.py`` draws a run's test forecasts: per sequence inputs, truth, forecast."""
    ok(run_zoo(
        "fit", "-c", "convlstm_moving_mnist", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
        "--data.init_args.root", str(mnist_root), "--data.init_args.num_train", "4",
        "--data.init_args.num_val", "4", "--data.init_args.num_test", "4", "--data.init_args.batch_size", "4",
        "--model.init_args.hidden_channels", "[4, 4]", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.callbacks", "[]",
    ))
    (ckpt,) = tmp_path.rglob("last.ckpt")
    out = tmp_path / "strip.png"
    ok(run_script("figures.forecast_strip", "--ckpt_path", str(ckpt), "--sequences", "2", "--out", str(out)))
    from PIL import Image

    assert Image.open(out).size == (10 * 66 + 2, 2 * 3 * 66 + 2)  # 10 frames per row; 2 sequences x 3 rows
    refused = run_script("figures.forecast_strip", "lenet_mnist", "--out", str(tmp_path / "no.png"))
    assert refused.returncode != 0 and "does not forecast frames" in refused.stderr
    frames = tmp_path / "frames"
    frames.mkdir()
    for number in range(10):
        write_png(torch.randint(0, 255, (1, 64, 64), dtype=torch.uint8), str(frames / f"{number}.png"))
    predicted = ok(run_zoo("predict", str(ckpt), str(frames), "--out", str(tmp_path / "next.png")))
    assert predicted.stdout.startswith(f"wrote {tmp_path / 'next.png'}: the 10 input frames")
    assert Image.open(tmp_path / "next.png").size == (10 * 66 + 2, 2 * 66 + 2)


def test_zoo_predict_forecasts_the_frames_after_your_own(tmp_path, capsys):
    """The last ``frames_in`` frames of a folder, in name order with numbers compared as numbers, are fitted to the
    model's frame size; the strip shows them above the forecast."""
    model = ConvLSTMForecaster(image_size=16, frames_in=3, frames_out=2, hidden_channels=[4]).eval()
    for number in range(1, 13):  # frame_10 .. frame_12 come last, not frame_7 .. frame_9
        write_png(torch.full((3, 20, 24), 20 * number, dtype=torch.uint8), str(tmp_path / f"frame_{number}.png"))
    out = tmp_path / "forecast.png"
    assert predict.forecast_frame_files(model, [str(tmp_path)], str(out)) == 0
    assert "the 3 input frames" in capsys.readouterr().out
    expected_inputs = torch.stack([torch.full((1, 16, 16), 20 * n / 255) for n in (10, 11, 12)])
    expected_forecast = model.predict_frames(expected_inputs[None])[0]
    strip = read_image(out, 1).float() / 255
    assert strip.shape == (1, 2 * 18 + 2, 3 * 18 + 2)
    for column in range(3):
        width = slice(2 + 18 * column, 18 + 18 * column)  # 16 pixels a frame, 2 of padding between
        torch.testing.assert_close(strip[:, 2:18, width], expected_inputs[column], atol=0.5 / 255, rtol=0)
        if column < 2:
            torch.testing.assert_close(strip[:, 20:36, width], expected_forecast[column], atol=0.6 / 255, rtol=0)
        else:  # the shorter row is padded with a blank frame
            assert strip[:, 20:36, width].max() == 0
    with pytest.raises(predict.PredictError, match="forecasts from 3 frames, got 2 image file"):
        predict.forecast_frame_files(model, [str(tmp_path / "frame_1.png"), str(tmp_path / "frame_2.png")], str(out))


@pytest.mark.realdata
def test_real_digits_make_moving_mnist(real_data):
    if not (real_data / "mnist-5k" / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST-5k is not in ZOO_DATA_DIR")
    datamodule = MovingMNISTDataModule(root=str(real_data / "mnist-5k"), num_train=4, num_val=4, num_test=4)
    datamodule.setup()
    facts = datamodule.describe()
    assert facts["dataset"] == "Moving MNIST generated from MNIST-5k digits"
    assert len(datamodule.train_set.sequences.digits) == 5000 and len(datamodule.test_set.sequences.digits) == 5000
    json.dumps(facts)
