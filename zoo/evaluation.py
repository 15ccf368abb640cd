"""Measuring a model on its test set: ``trainer.test`` metrics, and the sample quality of generative models.

``zoo evaluate`` and ``zoo export`` use these, so the figures in a manifest and the ones a user re-measures come
from the same code. Sample quality (:func:`sample_quality`) is the Fréchet distance of the samples in the
penultimate features of a shipped zoo classifier (torchmetrics' ``FrechetInceptionDistance`` with that feature
extractor; Heusel et al., 2017, eq. 6), beside a floor (real training images) and a weak reference (noise).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from torchmetrics.image.fid import FrechetInceptionDistance

from zoo import hub, registry
from zoo.errors import ZooError
from zoo.models.generative import GenerativeModel


class SampleShapeError(ZooError, ValueError):
    """A generative model draws images of another shape than its ``quality_classifier`` reads."""


def test_metrics(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """Run ``trainer.test`` on CPU and return the logged metrics as floats."""
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def model_metrics(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """``trainer.test`` metrics plus, for a generative model, its sample quality (:func:`sample_quality` in the
    features of its ``quality_classifier``; left out, with a note on stderr, when the classifier cannot read the
    samples: a run on images of another shape still evaluates and exports the metrics that can be measured)."""
    metrics = test_metrics(model, datamodule)
    if isinstance(model, GenerativeModel):
        try:
            metrics.update(sample_quality(model, datamodule, model.hparams.quality_classifier))
        except SampleShapeError as err:
            print(f"zoo: note: {err}; they are left out", file=sys.stderr)
    return metrics


def agrees(measured: float, recorded: float, tolerance: float) -> bool:
    """``measured`` is within ``tolerance`` of ``recorded``, relative to its size (absolute below 1)."""
    return abs(measured - recorded) <= tolerance * max(1.0, abs(recorded))


def evaluate(entry_name: str, ckpt_path: Optional[str] = None, data_root: Optional[str] = None
             ) -> tuple[dict[str, float], dict[str, float]]:
    """Re-measure an entry's test metrics with its shipped weights, or with the Lightning checkpoint
    ``ckpt_path`` of a run of it (and the datamodule stored there, reading from ``data_root`` if given); return
    (measured, manifest's)."""
    if ckpt_path is None:
        model = hub.load(entry_name)
        datamodule = hub.build_datamodule(entry_name, **({"root": data_root} if data_root is not None else {}))
    else:
        model, datamodule, _ = hub.load_checkpoint(entry_name, ckpt_path, data_root)
    measured = model_metrics(model, datamodule)
    manifest = registry.get(entry_name).manifest()
    return measured, manifest.metrics if manifest is not None else {}


class ClassifierFeatures(nn.Module):
    """The penultimate layer of a zoo classifier whose ``network`` is an ``nn.Sequential`` ending in a Linear,
    on images in [0, 1] (normalized here with the classifier's datamodule mean and std).

    ``num_features`` tells torchmetrics' FrechetInceptionDistance the feature size.
    """

    def __init__(self, classifier: nn.Module, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        network = getattr(classifier, "network", None)
        if not isinstance(network, nn.Sequential) or not isinstance(network[-1], nn.Linear):
            raise ValueError(f"{type(classifier).__name__} has no nn.Sequential `network` ending in nn.Linear; "
                             f"pick a zoo classifier such as lenet_mnist")
        self.body = network[:-1]
        self.head = network[-1]
        self.num_features = network[-1].in_features
        #: the image shape ``(C, H, W)`` the classifier reads (``None``: not known).
        self.image_shape = tuple(classifier.input_shape()[1:]) if hasattr(classifier, "input_shape") else None
        self.mean, self.std = mean, std

    def forward(self, images: Tensor) -> Tensor:
        return self.body((images.float() - self.mean) / self.std)

    def predict(self, images: Tensor) -> Tensor:
        """Predicted classes ``(N,)``."""
        return self.head(self(images)).argmax(dim=1)


def load_feature_classifier(entry_name: str) -> ClassifierFeatures:
    """The shipped classifier ``entry_name`` as a feature extractor on [0, 1] images."""
    classifier = hub.load(entry_name)
    datamodule = hub.build_datamodule(entry_name)
    normalized = getattr(datamodule.hparams, "normalize", False)
    mean, std = (datamodule.mean, datamodule.std) if normalized else (0.0, 1.0)
    return ClassifierFeatures(classifier, mean, std).eval()


def real_images(datamodule: L.LightningDataModule, split: str) -> Tensor:
    """All images of the ``"train"`` or ``"test"`` split, in [0, 1]: the float images an MNIST-family datamodule
    holds, or the uint8 images of a CIFAR-10 or image-folder datamodule (normalized per batch later) / 255."""
    datamodule.setup("fit" if split == "train" else "test")
    dataset = getattr(datamodule, f"{split}_set", None)
    if not isinstance(dataset, TensorDataset):  # every image datamodule of the zoo holds (images, labels, ...)
        raise TypeError(f"{type(datamodule).__name__} holds no tensor of its {split} images, so the sample-quality "
                        f"metrics have no real images to compare with; use a datamodule that holds them (MNIST "
                        f"family, CIFAR-10, image folders)")
    images = dataset.tensors[0]
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if getattr(datamodule.hparams, "normalize", False):
        raise ValueError("generative models read images in [0, 1]: build the datamodule with normalize=False")
    return images


@torch.no_grad()
def sample_quality(model: GenerativeModel, datamodule: L.LightningDataModule, classifier_entry: str,
                   num_samples: int = 10000, seed: int = 0, batch_size: int = 500) -> dict[str, float]:
    """Fréchet distance and class statistics of ``num_samples`` samples (seed ``seed``).

    The Fréchet distance (torchmetrics' FrechetInceptionDistance with the classifier's penultimate layer as
    the feature) is measured against the real test images. Beside it, as a floor, the distance of the first
    ``num_samples`` real training images, and as a weak reference, Gaussian noise with the test images'
    per-pixel mean and std (clipped to [0, 1]). Keys, with ``<c>`` the classifier's name (``lenet`` for
    ``lenet_mnist``): ``test/fd_<c>``, ``test/fd_<c>_train_floor``, ``test/fd_<c>_noise``; unconditional
    models: ``test/class_share_<k>`` (share of samples the classifier puts in class k), ``test/class_share_min``,
    ``test/class_share_max``; conditional models (``num_samples / num_classes`` per label):
    ``test/label_acc`` and ``test/label_acc_<k>``. :class:`SampleShapeError` when the classifier reads images of
    another shape than the model draws.
    """
    features = load_feature_classifier(classifier_entry).to(model.device)
    tag = classifier_entry.split("_")[0]
    if features.image_shape is not None and tuple(model.image_shape) != features.image_shape:
        raise SampleShapeError(
            f"the sample-quality metrics (test/fd_{tag}, ...) measure samples in the features of {classifier_entry}, "
            f"which reads images of shape {features.image_shape}; {type(model).__name__} draws "
            f"{tuple(model.image_shape)}, so they cannot be measured")
    fd = FrechetInceptionDistance(feature=features, reset_real_features=False).to(model.device)
    test_images = real_images(datamodule, "test")
    for chunk in test_images.split(batch_size):
        fd.update(chunk.to(model.device), real=True)

    def distance(images_in_batches: Any) -> float:
        fd.reset()
        for chunk in images_in_batches:
            fd.update(chunk.to(model.device), real=False)
        return float(fd.compute())

    generator = torch.Generator().manual_seed(seed)
    num_classes = model.hparams.num_classes
    labels = None
    if model.hparams.conditional:
        labels = torch.arange(num_classes).repeat_interleave(num_samples // num_classes)
    count = len(labels) if labels is not None else num_samples
    samples = torch.cat([
        model.sample(len(part), labels=None if labels is None else part, generator=generator).cpu()
        for part in (labels.split(batch_size) if labels is not None else torch.arange(count).split(batch_size))
    ])
    metrics = {f"test/fd_{tag}": distance(samples.split(batch_size))}
    train_images = real_images(datamodule, "train")[:num_samples]
    metrics[f"test/fd_{tag}_train_floor"] = distance(train_images.split(batch_size))
    mean, std = test_images.mean(0), test_images.std(0)
    noise_generator = torch.Generator().manual_seed(seed + 1)
    noise = (mean + std * torch.randn(num_samples, *mean.shape, generator=noise_generator)).clamp(0, 1)
    metrics[f"test/fd_{tag}_noise"] = distance(noise.split(batch_size))

    predicted = torch.cat([features.predict(chunk.to(model.device)).cpu() for chunk in samples.split(batch_size)])
    if labels is None:
        shares = torch.bincount(predicted, minlength=num_classes).double() / len(predicted)
        metrics.update({f"test/class_share_{k}": float(s) for k, s in enumerate(shares)})
        metrics["test/class_share_min"] = float(shares.min())
        metrics["test/class_share_max"] = float(shares.max())
    else:
        correct = (predicted == labels).double()
        metrics["test/label_acc"] = float(correct.mean())
        for k in range(num_classes):
            metrics[f"test/label_acc_{k}"] = float(correct[labels == k].mean())
    return metrics
