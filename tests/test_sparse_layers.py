"""k-winners and sparse weights of "How Can We Be So Dense?" (zoo.layers.sparse): hand-built tensors with known
winners, boosting, duty cycles and the inference k.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo import registry
from zoo.layers import KWinners, KWinners2d, SparseWeights2d, k_winners, k_winners2d
from zoo.layers import sparse
from zoo.layers.sparse import boost_factors, updated_duty_cycles, winner_indices, winner_mask, wins_per_unit
from zoo.models import SparseCNN

from tests.helpers.models import untrained_model_of


def in_order(winners: torch.Tensor) -> list[list[int]]:
    """Winner indices of each row in ascending order (k-winners return them in no particular order)."""
    return winners.sort(dim=1).values.tolist()


@pytest.fixture(params=["argpartition", "topk"])
def selection(request, monkeypatch):
    """Run a test with each way of selecting the k + 1 largest: numpy's argpartition (CPU) and torch.topk (GPU)."""
    monkeypatch.setattr(sparse, "CPU_SELECTION", request.param)
    return request.param


# ------------------------------------------------------------------------------------------------ winners
def test_known_winners_keep_their_values_and_zero_the_rest(selection):
    x = torch.tensor([[0.1, 0.5, -1.0, 2.0], [3.0, 1.0, 2.0, 0.0]])
    out, winners = k_winners(x, k=2)
    assert torch.equal(out, torch.tensor([[0.0, 0.5, 0.0, 2.0], [3.0, 0.0, 2.0, 0.0]]))
    assert in_order(winners) == [[1, 3], [0, 2]]


def test_ties_give_exactly_k_winners_lowest_index_first(selection):
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [5.0, 5.0, 5.0, 5.0, 5.0], [2.0, 2.0, 9.0, 2.0, 1.0]])
    mask = winner_mask(scores, k=2)
    assert mask.tolist() == [
        [False, True, True, False, False],
        [True, True, False, False, False],
        [True, False, True, False, False],
    ]
    assert in_order(winner_indices(scores, k=2)) == [[1, 2], [0, 1], [0, 2]]
    # a tie at the k-th place in one row only; the other rows keep their plain top-k
    scores = torch.tensor([[4.0, 1.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    assert in_order(winner_indices(scores, k=2)) == [[0, 2], [2, 3]]
    # ties along the channels of maps (dim=1), the local k-winners case
    maps = torch.tensor([[[[1.0]], [[7.0]], [[7.0]], [[7.0]]]])  # (1, 4 channels, 1, 1)
    assert winner_indices(maps, k=2, dim=1).flatten().tolist() == [1, 2]


def test_nan_ranks_first_as_in_topk_with_and_without_ties(selection):
    nan = float("nan")
    scores = torch.tensor([[1.0, nan, 1.0, 0.0], [0.0, 3.0, nan, 2.0]])  # row 0 has a tie at the 2nd place
    assert in_order(winner_indices(scores, k=2)) == [[0, 1], [1, 2]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_argpartition_and_topk_pick_the_same_winners(dtype, monkeypatch):
    monkeypatch.setattr(sparse, "CPU_SELECTION", "argpartition")
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(-4, 5, (200, 40), generator=g).to(dtype)  # small integers: many ties at the k-th place
    scores[::7, 3] = float("inf")
    scores[::5, 11] = float("nan")
    scores[::3] = torch.randn(len(scores[::3]), 40, generator=g).to(dtype)  # and rows without ties
    for k in (1, 7, 20, 39):
        by_argpartition = in_order(winner_indices(scores, k))
        with monkeypatch.context() as patch:
            patch.setattr(sparse, "CPU_SELECTION", "topk")
            assert in_order(winner_indices(scores, k)) == by_argpartition
    assert winner_indices(scores[:0], 7).shape == (0, 7)
    assert torch.equal(winner_mask(scores, 7).sum(dim=1), torch.full((200,), 7))


def test_topk_path_drops_the_next_value_wherever_topk_puts_it(monkeypatch):
    # On the CPU an unsorted topk happens to put the (k+1)-th last; on a GPU it may be anywhere. Shuffle the
    # columns of every unsorted topk to check the topk path does not rely on the CPU's order.
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(64, 50, generator=g)
    scores[::4] = torch.randint(-2, 3, (16, 50), generator=g).float()  # rows with ties at the k-th place
    expected = {k: in_order(winner_indices(scores, k)) for k in (3, 10, 49)}
    cpu_topk = torch.Tensor.topk

    def shuffled_topk(self, k, dim=-1, largest=True, sorted=True):
        values, indices = cpu_topk(self, k, dim=dim, largest=largest, sorted=sorted)
        if sorted or self.ndim != 2:
            return torch.return_types.topk((values, indices))
        order = torch.randperm(k, generator=g)
        return torch.return_types.topk((values[:, order], indices[:, order]))

    monkeypatch.setattr(sparse, "CPU_SELECTION", "topk")
    monkeypatch.setattr(torch.Tensor, "topk", shuffled_topk)
    for k, winners in expected.items():
        assert in_order(winner_indices(scores, k)) == winners


def test_winners_agree_under_torch_compile():
    scores = torch.tensor([[4.0, 1.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]])  # row 0: tie at the 2nd place
    compiled = torch.compile(winner_indices, backend="eager")  # traced by dynamo: the topk path
    assert in_order(compiled(scores, 2)) == in_order(winner_indices(scores, 2)) == [[0, 2], [2, 3]]


def test_gradient_flows_through_the_winners_only():
    x = torch.tensor([[0.3, -0.2, 0.9, 0.1], [1.0, 2.0, -3.0, 0.5]], requires_grad=True)
    out, winners = k_winners(x, k=2)
    (out * torch.arange(1.0, 5.0)).sum().backward()
    expected = torch.tensor([[1.0, 0.0, 3.0, 0.0], [1.0, 2.0, 0.0, 0.0]])
    assert torch.equal(x.grad, expected)


def test_gradient_of_2d_winners():
    x = torch.zeros(1, 2, 2, 2)
    x[0, 1, 0, 1], x[0, 0, 1, 1] = 5.0, 4.0
    x.requires_grad_(True)
    out, _ = k_winners2d(x, k=2)
    out.sum().backward()
    assert x.grad.sum() == 2 and x.grad[0, 1, 0, 1] == 1 and x.grad[0, 0, 1, 1] == 1


def test_boosting_changes_the_winners_as_the_formula_says():
    x = torch.tensor([[1.0, 0.9, 0.8]])
    duty = torch.tensor([0.9, 0.0, 0.2])
    # boost_i = exp(beta * (1/3 - d_i)): with beta = 1 the scores are 1.0 e^-0.567, 0.9 e^0.333, 0.8 e^0.133
    factors = boost_factors(duty, 1 / 3, 1.0)
    assert torch.allclose(factors, torch.exp(torch.tensor([1 / 3 - 0.9, 1 / 3, 1 / 3 - 0.2])))
    assert k_winners(x, 1, duty, boost_strength=0.0)[1].tolist() == [[0]]
    assert k_winners(x, 1, duty, boost_strength=1.0)[1].tolist() == [[1]]
    # 0.8 e^{beta (1/3 - 0.2)} overtakes 0.9 e^{beta/3} never, and 1.0 e^{beta (1/3 - 0.9)} at beta > ln(1/0.8)/0.7
    beta = math.log(1 / 0.8) / 0.7
    assert in_order(k_winners(x, 2, duty, beta * 0.99)[1]) == [[0, 1]]
    assert in_order(k_winners(x, 2, duty, beta * 1.01)[1]) == [[1, 2]]


def test_boost_scales_the_choice_not_the_values():
    x = torch.tensor([[1.0, 0.9]])
    out, _ = k_winners(x, 1, torch.tensor([1.0, 0.0]), boost_strength=5.0)
    assert torch.equal(out, torch.tensor([[0.0, 0.9]]))


def test_2d_global_winners_span_channels_and_local_winners_each_location():
    x = torch.arange(8.0).view(1, 2, 2, 2)  # channel 1 holds the 4 largest values
    out, winners = k_winners2d(x, k=3)
    assert in_order(winners) == [[5, 6, 7]]  # indices into the flattened C * H * W map
    assert torch.equal(out, x * (x >= 5))
    local_x = torch.tensor([[[[1.0, 5.0]], [[2.0, 0.0]], [[0.5, 1.0]]]])  # (1, 3 channels, 1, 2)
    out, winners = k_winners2d(local_x, k=1, local=True)
    assert winners.shape == (1, 1, 1, 2)  # the winning channel at each location
    assert winners.flatten().tolist() == [1, 0]
    assert torch.equal(out.sum(dim=1), torch.tensor([[[2.0, 5.0]]]))


def test_2d_boost_is_per_channel():
    x = torch.tensor([[[[1.0]], [[0.9]]]])  # (1, 2, 1, 1)
    duty = torch.tensor([1.0, 0.0])
    assert k_winners2d(x, 1, duty, boost_strength=0.0)[1].tolist() == [[0]]
    assert k_winners2d(x, 1, duty, boost_strength=1.0)[1].tolist() == [[1]]


# ------------------------------------------------------------------------------------------------ state
def test_duty_cycle_update_by_hand():
    layer = KWinners(units=3, k=1, boost_strength=0.0, duty_cycle_period=4)
    batch_a = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])  # winners: unit 0, unit 1
    batch_b = torch.tensor([[5.0, 1.0, 0.0], [9.0, 2.0, 1.0]])  # winners: unit 0 twice
    layer(batch_a)
    assert torch.allclose(layer.duty_cycles, torch.tensor([0.5, 0.5, 0.0]))  # T = min(4, 2) = 2
    layer(batch_b)
    assert torch.allclose(layer.duty_cycles, torch.tensor([(0.5 * 2 + 2) / 4, (0.5 * 2) / 4, 0.0]))
    layer(batch_b)  # T = min(4, 6) = 4
    assert torch.allclose(layer.duty_cycles, torch.tensor([(0.75 * 2 + 2) / 4, (0.25 * 2) / 4, 0.0]))
    assert int(layer.samples_seen) == 6
    layer.eval()
    before = layer.duty_cycles.clone()
    layer(batch_a)
    assert torch.equal(layer.duty_cycles, before) and int(layer.samples_seen) == 6


def test_duty_cycles_of_maps_count_wins_per_channel_over_positions():
    layer = KWinners2d(channels=2, k=2, boost_strength=0.0, duty_cycle_period=100)
    x = torch.tensor([[[[9.0, 8.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])  # both winners in channel 0
    layer(x)
    assert torch.allclose(layer.duty_cycles, torch.tensor([2 / 4, 0.0]))
    assert torch.allclose(updated_duty_cycles(torch.tensor([0.5]), torch.tensor([1.0]), 2, 10, 4),
                          torch.tensor([(0.5 * 2 + 1) / 4]))


def test_duty_cycles_count_only_winners_above_zero_as_the_authors_gt0():
    # k = 2 of 3: the second winner of this sample is negative (-1 beats -2), so only unit 0 is active.
    layer = KWinners(units=3, k=2, boost_strength=0.0, duty_cycle_period=4)
    out = layer(torch.tensor([[3.0, -1.0, -2.0], [0.0, 2.0, 1.0]]))
    assert out.tolist() == [[3.0, -1.0, 0.0], [0.0, 2.0, 1.0]]  # the negative winner keeps its value
    # T = min(4, 2) = 2; active once each: unit 0 (3.0), unit 1 (2.0; its -1.0 win does not count), unit 2 (1.0)
    assert torch.allclose(layer.duty_cycles, torch.tensor([1 / 2, 1 / 2, 1 / 2]))
    layer(torch.tensor([[-5.0, -1.0, -9.0], [-5.0, -1.0, -9.0]]))  # winners but none active: duty cycles decay
    assert torch.allclose(layer.duty_cycles, torch.tensor([(0.5 * 2) / 4] * 3))  # T = min(4, 4) = 4
    # maps: 2 channels of 2 x 2, k = 3; winners 9 and 8 (channel 0) and -1 (channel 1): only channel 0 counts
    maps = KWinners2d(channels=2, k=3, boost_strength=0.0, duty_cycle_period=100)
    x = torch.tensor([[[[9.0, 8.0], [-3.0, -4.0]], [[-1.0, -2.0], [-5.0, -6.0]]]])
    assert (maps(x) != 0).sum() == 3
    assert torch.allclose(maps.duty_cycles, torch.tensor([2 / 4, 0.0]))
    assert sparse.active_per_unit(x).tolist() == [2.0, 0.0]


def test_inference_k_rounds_half_up_as_the_authors_python2_round():
    layer = KWinners(units=10, k=3, k_inference_factor=1.5).eval()  # 4.5 -> 5 (Python 3's round gives 4)
    assert layer.active_k(10) == 5
    assert (layer(torch.rand(2, 10) + 1) != 0).sum(dim=1).tolist() == [5, 5]
    assert KWinners(units=10, k=5, k_inference_factor=1.5).eval().active_k(10) == 8  # 7.5 -> 8
    assert KWinners(units=700, k=100, k_inference_factor=1.5).eval().active_k(700) == 150


@pytest.mark.parametrize("entry, authors_lr", [("sparse_cnn2_mnist", 0.02), ("sparse_cnn1_mnist", 0.01),
                                               ("dense_cnn2_mnist", 0.01), ("dense_cnn1_mnist", 0.01)])
def test_table1_recipes_follow_the_authors_harness(entry, authors_lr):
    # htmpapers' mnist_sparse_experiment.py: validation = 1.0 (all 60,000 training images), lr 0.02 / 0.01 and
    # StepLR(gamma 0.8) stepped before each epoch; under torch 1.0.1 that first step gives the base rate, so
    # epoch e trains at lr * 0.8^e: the config's lr (or the class default when it names none) is the authors'.
    config = registry.get(entry).config
    hparams = untrained_model_of(entry).hparams
    assert hparams["lr"] == pytest.approx(authors_lr) and hparams["lr_step_gamma"] == 0.8
    assert config["data"]["init_args"]["val_fraction"] == 0.0
    assert config["trainer"]["limit_val_batches"] == 0 and config.get("checkpoint", {}).get("monitor") is None


def test_wins_are_counted_exactly_for_bfloat16_inputs():
    # bfloat16 holds integers exactly only up to 256: counts are kept in float32 whatever the input's dtype.
    layer = KWinners(units=2, k=1, boost_strength=0.0, duty_cycle_period=2000)
    x = torch.tensor([[1.0, 0.0]]).repeat(1023, 1).to(torch.bfloat16)  # unit 0 wins all 1023 samples
    layer(x)
    assert layer.duty_cycles.dtype == torch.float32 and layer.duty_cycles.tolist() == [1.0, 0.0]
    assert wins_per_unit(torch.zeros(1023, 1, dtype=torch.long), 2).tolist() == [1023.0, 0.0]


def test_k_grows_by_the_inference_factor_in_eval_mode():
    layer = KWinners(units=10, k=2, k_inference_factor=1.5)
    x = torch.randn(5, 10) + 10  # positive, so every winner is non-zero
    assert (layer(x) != 0).sum(dim=1).tolist() == [2] * 5
    layer.eval()
    assert (layer(x) != 0).sum(dim=1).tolist() == [3] * 5
    maps = KWinners2d(channels=3, k=4, k_inference_factor=1.5).eval()
    assert (maps(torch.rand(2, 3, 4, 4) + 1) != 0).flatten(1).sum(dim=1).tolist() == [6, 6]


def test_boost_strength_decays_and_state_is_in_buffers():
    layer = KWinners2d(channels=2, k=1, boost_strength=1.5, boost_strength_factor=0.85)
    layer.decay_boost_strength()
    layer.decay_boost_strength()
    assert float(layer.boost_strength) == pytest.approx(1.5 * 0.85**2)
    assert {"duty_cycles", "boost_strength", "samples_seen"} <= set(layer.state_dict())


@pytest.mark.parametrize("factor", [-1, 1.5])
def test_boost_strength_factor_is_a_decay_factor_in_0_1(factor):
    for layer in (lambda: KWinners(10, 3, boost_strength_factor=factor),
                  lambda: KWinners2d(channels=2, k=1, boost_strength_factor=factor)):
        with pytest.raises(ValueError, match=rf"boost_strength_factor must be in \[0, 1\].*got {factor}"):
            layer()
    assert KWinners(10, 3, boost_strength_factor=0).boost_strength_factor == 0  # boosting for the first epoch only


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 8\), got \(2, 7\)"):
        KWinners(units=8, k=2)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="expects input of shape"):
        KWinners2d(channels=3, k=2)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="k=9 winners asked of only 8 units"):
        KWinners(units=8, k=9)
    with pytest.raises(ValueError, match="wraps a Conv2d, got Linear"):
        SparseWeights2d(nn.Linear(3, 4), 0.5)
    with pytest.raises(ValueError, match="conv_k needs one entry"):
        SparseCNN(channels=[4, 8], conv_k=[10])
    with pytest.raises(ValueError, match="exceeds the 576 units"):
        SparseCNN(channels=[4], conv_k=[600], hidden=[16], hidden_k=[4])


