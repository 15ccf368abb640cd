"""How often the k-th place of each k-winners layer is tied, on an entry's clean test set.

Where the k-th largest boosted score of a sample equals the (k+1)-th, the rule that settles the tie picks the
winners. The zoo gives tied places to the lower index (``zoo.layers.sparse.winner_indices``), as CUDA's ``topk``
does (it fills the tied places in index order), so a net trained on a GPU with the authors' code and one trained
here follow the same rule; this script measures how often the rule is used at all.

Counted for each layer, with the duty cycles and boost strength of the model as loaded: the test images whose
k-th place is tied at the inference ``k`` (``k * k_inference_factor``) and at the training ``k``; with ``--init``,
also for a freshly initialised model of the same entry (zero duty cycles). The model comes from the shipped
weights, or from a Lightning checkpoint with ``--ckpt``. Example::

    ZOO_DATA_DIR=<data dir> python -m scripts.reproductions.kwinners_ties sparse_cnn2_mnist --init
"""

from __future__ import annotations

import argparse
import copy
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from scripts.reproductions.noise_robustness import Subject, from_checkpoint, from_shipped, noisy_test_loader
from zoo.layers import sparse


@contextmanager
def counting_ties(model: nn.Module) -> Iterator[dict[str, list[int]]]:
    """While open, ``{layer name: [samples with a tied k-th place, samples]}`` for each k-winners layer of ``model``.

    Counts what ``winner_indices`` itself finds tied (the rows it settles again in index order), so the scores and
    ``k`` are exactly the layer's own.
    """
    names = {layer: name for name, layer in model.named_modules() if isinstance(layer, sparse.KWinnersBase)}
    counts: dict[str, list[int]] = {}
    current: list[str] = []
    select = sparse._top_k_and_next

    def counted_select(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        indices, next_value, tied = select(scores, k)
        if current:
            tally = counts.setdefault(current[-1], [0, 0])
            tally[0] += len(tied)
            tally[1] += len(scores)
        return indices, next_value, tied

    def enter(layer: nn.Module, _inputs: tuple) -> None:
        current.append(names[layer])

    def leave(_layer: nn.Module, _inputs: tuple, _output: torch.Tensor) -> None:
        current.pop()  # a forward hook that returned a value would replace the layer's output

    hooks = [hook for layer in names for hook in (layer.register_forward_pre_hook(enter),
                                                  layer.register_forward_hook(leave))]
    sparse._top_k_and_next = counted_select
    try:
        yield counts
    finally:
        sparse._top_k_and_next = select
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def tie_counts(subject: Subject, inference_k: bool = True) -> dict[str, list[int]]:
    """Tied k-th places per layer over ``subject``'s clean test set, in eval mode at the inference or training k."""
    model = copy.deepcopy(subject.model).eval()
    if not inference_k:
        for layer in sparse.kwinners_layers(model):
            layer.k_inference_factor = 1.0  # eval mode at the training k: no duty-cycle updates
    with counting_ties(model) as counts:
        for x, _ in noisy_test_loader(subject):
            model(x)
    return counts


def freshly_initialised(subject: Subject, seed: int) -> Subject:
    """``subject`` with a new model of the same class and arguments, initialised from ``seed``."""
    torch.manual_seed(seed)
    model = type(subject.model)(**dict(subject.model.hparams))
    return Subject(subject.entry, model.eval(), subject.datamodule_class, subject.datamodule_args)


def report(label: str, counts: dict[str, list[int]]) -> str:
    return "\n".join(f"{label:<28} {name:<12} {tied:>6,} of {total:,} images tied ({100 * tied / total:.1f} %)"
                     for name, (tied, total) in counts.items())


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", help="a zoo entry with k-winners layers, e.g. sparse_cnn2_mnist")
    parser.add_argument("--ckpt", help="a Lightning checkpoint of the entry (default: its shipped weights)")
    parser.add_argument("--init", action="store_true", help="also count for a freshly initialised model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fresh model of --init")
    args = parser.parse_args(argv)
    subject = from_checkpoint(args.entry, args.ckpt) if args.ckpt else from_shipped(args.entry)
    if next(sparse.kwinners_layers(subject.model), None) is None:
        raise SystemExit(f"{args.entry} has no k-winners layers: nothing to count")
    print(report("loaded, inference k", tie_counts(subject)))
    print(report("loaded, training k", tie_counts(subject, inference_k=False)))
    if args.init:
        print(report("initialised, training k", tie_counts(freshly_initialised(subject, args.seed), False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
