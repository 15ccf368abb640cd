"""Batched, epoch-seeded, resumable loaders of the tensor-held datasets (datamodules._batched; issues 20 and 21)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from datamodules import (
    AirlinePassengersDataModule,
    BinarizedMNISTDataModule,
    MNISTDataModule,
    MovingMNISTDataModule,
    ShakespeareTrigramDataModule,
)
from datamodules._batched import EpochBatchSampler, EpochShuffleSampler, TensorBatchDataset, tensor_loader
from datamodules.mnist import random_affine
from datamodules.moving_mnist import render_frames


def epoch_order(loader: DataLoader, epoch: int) -> list[int]:
    loader.batch_sampler.sampler.set_epoch(epoch)
    return [int(i) for (ids,) in loader for i in ids]


def index_loader(n: int = 50, batch_size: int = 8, seed: int = 0, drop_last: bool = False) -> DataLoader:
    return tensor_loader(TensorBatchDataset(torch.arange(n)), batch_size, shuffle=True, seed=seed, drop_last=drop_last)


def test_shuffling_is_a_function_of_seed_and_epoch():
    a, b = index_loader(), index_loader()
    assert epoch_order(a, 3) == epoch_order(b, 3)  # two loaders, same (seed, epoch): same order
    assert sorted(epoch_order(a, 0)) == list(range(50))  # every sample once per epoch
    assert epoch_order(a, 0) != epoch_order(a, 1)
    assert epoch_order(a, 0) != epoch_order(index_loader(seed=1), 0)
    torch.manual_seed(123)  # the global RNG plays no part
    assert epoch_order(a, 3) == epoch_order(b, 3)
    short = index_loader(drop_last=True)
    assert all(len(ids) == 8 for (ids,) in short) and len(short) == 6


def test_seed_everything_changes_the_order(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    first = epoch_order(index_loader(), 0)
    monkeypatch.setenv("PL_GLOBAL_SEED", "1")
    assert epoch_order(index_loader(), 0) != first


def test_iterating_the_loader_draws_nothing_from_the_global_rng():
    state = torch.get_rng_state()
    list(index_loader())
    list(tensor_loader(TensorBatchDataset(torch.arange(9)), 4, shuffle=False))
    assert torch.equal(state, torch.get_rng_state())


def test_a_batch_is_one_gather(monkeypatch):
    def no_single_items(self, index):
        raise AssertionError("per-sample __getitem__ called")

    monkeypatch.setattr(TensorBatchDataset, "__getitem__", no_single_items)
    loader = tensor_loader(TensorBatchDataset(torch.arange(20.0).view(10, 2), torch.arange(10)), 4, shuffle=True)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    for x, y in batches:
        assert torch.equal(x, torch.arange(20.0).view(10, 2)[y])


def test_distributed_samplers_are_batched_by_batch_sampler():
    batches = list(EpochBatchSampler(list(range(10)), batch_size=4, drop_last=False))  # any sampler
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_loader_restored_mid_epoch_continues_with_the_next_batch():
    loader = index_loader()
    loader.batch_sampler.sampler.set_epoch(2)
    iterator = iter(loader)
    seen = [next(iterator)[0].tolist() for _ in range(3)]
    state = loader.state_dict()
    rest = [ids.tolist() for (ids,) in iterator]

    resumed = index_loader()  # a new process: a new loader from the same datamodule
    resumed.load_state_dict(state)
    resumed.batch_sampler.sampler.set_epoch(2)  # Lightning sets the epoch before iterating
    assert [ids.tolist() for (ids,) in resumed] == rest
    assert sorted(sum(seen + rest, [])) == list(range(50))


def test_random_affine_is_torchvisions_jitter_drawn_per_batch():
    images = torch.rand(6, 1, 28, 28)
    assert torch.equal(random_affine(images, degrees=0, translate=0, fill=0.0), images)  # nothing to move
    moved = random_affine(images, degrees=0, translate=0.1, fill=-1.0, generator=torch.Generator().manual_seed(0))
    for original, shifted in zip(images, moved):  # a whole-pixel shift of at most 3 pixels, filled with -1
        matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                   if torch.equal(shifted[:, max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)],
                                  original[:, max(-dy, 0):28 - max(dy, 0), max(-dx, 0):28 - max(dx, 0)])]
        assert matches, "not a pixel shift"
        dy, dx = matches[0]
        assert (dy, dx) == (0, 0) or (shifted == -1.0).any()
    turned = random_affine(torch.ones(1, 1, 28, 28), degrees=10, translate=0.0, fill=0.0,
                           generator=torch.Generator().manual_seed(1))
    angle_bound = 28 * 28 * math.tan(math.radians(10))  # the corners a 10-degree turn can move out, at most
    assert turned[0, 0, 14, 14] == 1 and (turned == 0).sum() <= angle_bound


def test_augment_and_binarization_are_functions_of_seed_epoch_and_step(mnist_root):
    dm = BinarizedMNISTDataModule(root=str(mnist_root), batch_size=8, augment=True)
    dm.setup("fit")
    grey = dm.train_set.images[:8]

    class Trainer:  # what on_after_batch_transfer reads
        training, current_epoch = True, 1

        class fit_loop:
            class epoch_loop:
                class batch_progress:
                    class current:
                        processed = 5

    dm.trainer = Trainer()
    first = dm.on_after_batch_transfer((grey, torch.zeros(8)), 0)[0]
    assert torch.equal(first, dm.on_after_batch_transfer((grey, torch.zeros(8)), 0)[0])
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    Trainer.fit_loop.epoch_loop.batch_progress.current.processed = 6
    assert not torch.equal(first, dm.on_after_batch_transfer((grey, torch.zeros(8)), 0)[0])
    Trainer.training = False  # validation batches pass unchanged
    assert torch.equal(dm.on_after_batch_transfer((grey, torch.zeros(8)), 0)[0], grey)


def test_moving_mnist_batches_are_the_sequences(mnist_root):
    dm = MovingMNISTDataModule(root=str(mnist_root), num_train=12, num_val=6, num_test=8, batch_size=4, seed=3)
    dm.setup()
    inputs, future = dm.train_set.__getitems__(torch.tensor([5, 0, 7]))
    for row, i in enumerate((5, 0, 7)):
        one_in, one_future = dm.train_set[i]
        assert torch.equal(inputs[row], one_in) and torch.equal(future[row], one_future)
    sequences = dm.train_set.sequences
    frames = render_frames(sequences.digits[sequences.digit_index[2]], sequences.corners[2], 64)
    assert torch.equal(torch.cat(dm.train_set[2]), frames.unsqueeze(1))
    assert type(dm.train_dataloader()).__name__ == "StatefulDataLoader"


@pytest.mark.parametrize("make", [
    lambda root: MNISTDataModule(root=str(root), batch_size=16),
    lambda root: AirlinePassengersDataModule(batch_size=16),
    lambda root: ShakespeareTrigramDataModule(sonnet=2, batch_size=16),
])
def test_every_tensor_datamodule_loads_resumable_batches(mnist_root, make):
    dm = make(mnist_root)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert hasattr(loader, "state_dict") and isinstance(loader.batch_sampler.sampler, EpochShuffleSampler)
    x, y = next(iter(loader))
    assert len(x) == len(y) == 16
    x_val, _ = next(iter(dm.val_dataloader()))
    assert x_val.shape[1:] == x.shape[1:]


def test_affine_grid_sampling_matches_the_images_device_and_dtype():
    images = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    out = random_affine(images, degrees=5, translate=0.1, fill=0.0, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == images.shape
    assert not torch.equal(out, images)
