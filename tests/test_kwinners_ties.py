"""scripts/reproductions/kwinners_ties.py: it counts the samples whose k-th winner is tied, and changes nothing."""

from __future__ import annotations

import re

import torch
from torch import nn

from scripts.reproductions import kwinners_ties
from zoo.layers import sparse
from zoo.layers.sparse import KWinners, KWinners2d


def test_tied_kth_places_are_counted_per_layer_and_the_outputs_are_untouched():
    net = nn.Sequential(KWinners2d(channels=2, k=3, boost_strength=0.0), nn.Flatten(),
                        KWinners(units=8, k=2, boost_strength=0.0)).eval()
    # Each channel of 2 x 2 constant: the top channel's 4 equal values hold the 1st-4th places, so the 3rd is tied.
    constant = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).expand(5, 2, 2, 2).contiguous()
    varied = torch.randn(7, 2, 2, 2)
    expected = net(varied)
    select = sparse._top_k_and_next
    with kwinners_ties.counting_ties(net) as counts:
        net(constant)
        inside = net(varied)
    assert counts == {"0": [5, 12], "2": [5, 12]}  # the 2-D layer's ties reach the 1-D layer (4 equal values again)
    assert torch.equal(inside, expected)
    assert sparse._top_k_and_next is select  # restored on leaving
    with kwinners_ties.counting_ties(net) as counts:
        net(varied)
    assert counts == {"0": [0, 7], "2": [0, 7]}


def test_the_selection_is_restored_after_an_error():
    select = sparse._top_k_and_next
    try:
        with kwinners_ties.counting_ties(nn.Sequential(KWinners(units=4, k=1))):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert sparse._top_k_and_next is select


def test_the_shipped_sparse_cnn2_on_fixture_mnist_at_both_ks_and_at_init(mnist_root, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_DATA_DIR", str(mnist_root))
    subject = kwinners_ties.from_shipped("sparse_cnn2_mnist")
    before = {name: (layer.k_inference_factor, layer.duty_cycles.clone())
              for name, layer in subject.model.named_modules() if isinstance(layer, sparse.KWinnersBase)}
    training_k = kwinners_ties.tie_counts(subject, inference_k=False)
    assert list(training_k) == list(before)  # every k-winners layer, in order
    for name, layer in subject.model.named_modules():  # the measured model is a copy: nothing changed
        if name in before:
            assert layer.k_inference_factor == before[name][0] and torch.equal(layer.duty_cycles, before[name][1])
    assert kwinners_ties.main(["sparse_cnn2_mnist", "--init"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 * len(before)
    for line in lines:
        found = re.fullmatch(r"(loaded|initialised), (inference|training) k +network\.\d+ +([\d,]+) of ([\d,]+) "
                             r"images tied \(\d+\.\d %\)", line)
        assert found, line
        assert int(found[4].replace(",", "")) == sum(training_k[next(iter(training_k))][1:])
