"""The classic CNN families of chapter 4.5: ImageNet variants are torchvision's, small variants keep the designs."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from zoo.layers import InceptionBlock
from zoo.models import VGG, AlexNet, GoogLeNet, ResNet


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


STANDARD = [
    (AlexNet, {}, lambda: torchvision.models.alexnet()),
    (VGG, dict(depth=11, batch_norm=False), lambda: torchvision.models.vgg11()),
    (VGG, dict(depth=16), lambda: torchvision.models.vgg16_bn()),
    (GoogLeNet, {}, lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True)),
    (ResNet, dict(depth=18), lambda: torchvision.models.resnet18()),
    (ResNet, dict(depth=34), lambda: torchvision.models.resnet34()),
    (ResNet, dict(depth=50), lambda: torchvision.models.resnet50()),
]


@pytest.mark.parametrize("cls, kwargs, reference", STANDARD, ids=lambda v: getattr(v, "__name__", str(v)))
def test_imagenet_variants_have_torchvisions_parameters(cls, kwargs, reference):
    model = cls(num_classes=1000, in_channels=3, image_size=224, **kwargs)
    assert model.is_imagenet and n_params(model) == n_params(reference())


def test_imagenet_variant_forward_and_new_head():
    model = ResNet(depth=18, num_classes=7, in_channels=3, image_size=224).eval()
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 7)


def test_book_cifar_resnet18_has_torchvisions_parameter_count():
    # Conv 7x7 s2 -> MaxPool 3 s1 -> stages 64, 128, 256, 512 -> pool -> Linear: torchvision's layers, other pooling
    assert n_params(ResNet(depth=18, in_channels=3, image_size=32)) == n_params(torchvision.models.resnet18(num_classes=10))


def test_book_resnet_maps_32x32_images_to_2x2_before_pooling():
    model = ResNet(depth=18, in_channels=3, image_size=32)
    features = model.network[:-3](torch.randn(2, 3, 32, 32))  # up to the global pool
    assert features.shape == (2, 512, 2, 2)
    stem = [type(m) for m in model.network[:4]]
    assert stem == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert model.network[0].kernel_size == (7, 7) and model.network[0].stride == (2, 2)
    assert model.network[3].stride == 1 and model.network[3].kernel_size == 3


SMALL = [
    (AlexNet, {}), (VGG, dict(depth=11)), (VGG, dict(depth=13)), (VGG, dict(depth=16)), (VGG, dict(depth=19)),
    (GoogLeNet, dict(widths=(16,))), (ResNet, dict(depth=18)), (ResNet, dict(depth=34, stem="cifar")),
    (ResNet, dict(depth=50, widths=(8, 16, 32, 64))),
]


@pytest.mark.parametrize("cls, kwargs", SMALL, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("in_channels, size", [(3, 32), (1, 28)])
def test_small_variants_forward_at_cifar_and_mnist_sizes(cls, kwargs, in_channels, size):
    model = cls(num_classes=10, in_channels=in_channels, image_size=size, **kwargs).eval()
    assert not model.is_imagenet
    assert model(torch.randn(2, in_channels, size, size)).shape == (2, 10)


@pytest.mark.parametrize("cls, kwargs", [(AlexNet, dict(widths=(8, 8, 16, 16))), (VGG, dict(depth=11, widths=(4, 8, 8, 16, 16))),
                                         (GoogLeNet, dict(widths=(8,))), (ResNet, dict(depth=18, widths=(4, 8, 8, 8))),
                                         (ResNet, dict(depth=50, widths=(4, 4, 8, 8)))],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_parameter_gets_a_gradient(cls, kwargs):
    model = cls(num_classes=10, in_channels=3, image_size=32, **kwargs)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    model.loss(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_vgg_configurations_follow_table_1():
    for depth, convs in ((11, 8), (13, 10), (16, 13), (19, 16)):
        model = VGG(depth=depth, in_channels=3, image_size=32)
        assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs
    pools = sum(isinstance(m, nn.MaxPool2d) for m in VGG(depth=11, in_channels=1, image_size=28).modules())
    assert pools == 4  # 28 -> 14 -> 7 -> 3 -> 1: the fifth pool would leave nothing


def test_inception_block_concatenates_its_four_branches():
    block = InceptionBlock(32, 8, 4, 12, 2, 6, 5)
    out = block(torch.randn(2, 32, 9, 9))
    assert out.shape == (2, 8 + 12 + 6 + 5, 9, 9) and block.out_channels == 31
    assert block.branch5x5[1][0].kernel_size == (5, 5)
    googlenet = GoogLeNet(in_channels=3, image_size=32)
    assert sum(isinstance(m, InceptionBlock) for m in googlenet.modules()) == 9


class PreActivationResNet(ResNet):
    """A subclass that swaps the residual block through one method."""

    def residual_block(self, in_channels: int, width: int, stride: int) -> nn.Module:
        return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, width, 3, stride, 1))


def test_a_subclass_swaps_the_block_through_one_method():
    model = PreActivationResNet(depth=18, in_channels=3, image_size=32, widths=(8, 8, 16, 16))
    assert not any(isinstance(m, torchvision.models.resnet.BasicBlock) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="VGG depth must be one of"):
        VGG(depth=12)
    with pytest.raises(ValueError, match="ResNet depth must be one of"):
        ResNet(depth=101)
    with pytest.raises(ValueError, match="use variant='small'"):
        ResNet(in_channels=1, image_size=224)
    with pytest.raises(ValueError, match="ImageNet variant only"):
        ResNet(weights="IMAGENET1K_V1", in_channels=3, image_size=32)


def test_offline_weights_name_the_file_and_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError) as info:
        ResNet(depth=18, weights="IMAGENET1K_V1", num_classes=2, in_channels=3, image_size=224)
    assert "resnet18-f37072fd.pth" in str(info.value) and str(tmp_path / "checkpoints") in str(info.value)

