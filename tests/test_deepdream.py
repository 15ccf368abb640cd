"""DeepDream (scripts/figures/deepdream.py): the objective rises, the octave sizes, the output's size and value
range."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torchvision
from torchvision.io import encode_jpeg, read_image, write_file

from datamodules import MNISTDataModule
from scripts.figures import deepdream
from tests.helpers import ok, run_script
from zoo import export, registry
from zoo.models import LeNet


@pytest.fixture(scope="module")
def objective():
    torch.manual_seed(0)
    return deepdream.LayerObjective(torchvision.models.mobilenet_v2(), "features.6", deepdream.IMAGENET_MEAN,
                                    deepdream.IMAGENET_STD)


def test_gradient_ascent_raises_the_layer_norm(objective):
    torch.manual_seed(1)
    image = torch.rand(1, 3, 48, 48)
    history: list[float] = []
    result = deepdream.dream(image, objective, iterations=8, lr=0.02, history=history)
    assert len(history) == 8
    assert float(objective(result)) > history[0] * 1.05
    assert sum(b > a for a, b in zip(history, history[1:])) >= 6  # rises on (almost) every step


def test_octave_sizes_shrink_by_the_scale_smallest_first():
    assert deepdream.octave_sizes(100, 70, 1.4, 3) == [(35, 25), (50, 35), (71, 50), (100, 70)]
    assert deepdream.octave_sizes(2, 2, 1.4, 2) == [(1, 1), (1, 1), (2, 2)]  # never under one pixel


def test_deep_dream_visits_the_octaves_and_keeps_size_and_range(objective):
    torch.manual_seed(2)
    image = torch.rand(1, 3, 60, 44)
    sizes: list[tuple[int, int]] = []
    history: list[float] = []
    result = deepdream.deep_dream(image, objective, iterations=2, lr=0.05, octave_scale=1.4, num_octaves=3,
                                  sizes=sizes, history=history)
    assert sizes == deepdream.octave_sizes(60, 44, 1.4, 3)
    assert len(history) == 2 * 4
    assert result.shape == image.shape
    assert 0.0 <= float(result.min()) and float(result.max()) <= 1.0
    assert not torch.equal(result, image)


def test_unknown_layer_lists_the_layers():
    with pytest.raises(ValueError, match="no layer 'features.99'.*features.0"):
        deepdream.LayerObjective(torchvision.models.mobilenet_v2(), "features.99", (0.5,) * 3, (0.5,) * 3)


def test_script_writes_a_png_of_the_input_size(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "mnv2.pth")
    write_file(str(tmp_path / "cat.jpg"), encode_jpeg(torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8)))
    out = tmp_path / "dream.png"
    proc = ok(run_script("figures.deepdream", "--image", str(tmp_path / "cat.jpg"), "--model", "mobilenet_v2",
                         "--weights", str(tmp_path / "mnv2.pth"), "--layer", "features.4", "--iterations", "2",
                         "--octaves", "2", "--out", str(out), env={"OMP_NUM_THREADS": "1"}, timeout=120))
    picture = read_image(str(out))
    assert picture.shape == (3, 40, 50) and picture.dtype == torch.uint8
    assert "octave sizes [(20, 25), (28, 35), (40, 50)]" in proc.stdout


def test_a_shipped_zoo_cnn_dreams_by_entry_and_layer(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path / "shipped"))
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1)
    trainer.fit(LeNet(), datamodule=MNISTDataModule(root=str(mnist_root), batch_size=32))
    trainer.save_checkpoint(tmp_path / "lenet.ckpt")
    export.export("lenet_mnist5k", str(tmp_path / "lenet.ckpt"), fit_command="zoo fit -c lenet_mnist5k")
    objective = deepdream.load_objective("zoo:lenet_mnist5k", None, "0")
    assert objective.channels == 1
    history: list[float] = []
    result = deepdream.dream(torch.rand(1, 3, 28, 28), objective, iterations=4, lr=0.05, history=history)
    assert history[-1] > history[0] and result.shape == (1, 3, 28, 28)
