"""Chapter 4.5 of "深度学习入门之PyTorch" (Liao Xingyu, 2017): the classic CNN families as configurable classifiers.

- :class:`AlexNet` (Krizhevsky et al., 2012), :class:`VGG` (Simonyan & Zisserman, 2015; configurations 11/13/16/19
  = "A", "B", "D", "E"), :class:`GoogLeNet` (Szegedy et al., 2015, with its Inception block) and :class:`ResNet`
  (He et al., 2016; basic blocks for 18/34, bottlenecks for 50).
- ``variant="imagenet"`` (default when ``image_size >= 64``) builds torchvision's standard network, so parameter
  counts and ``weights=`` names (e.g. ``"IMAGENET1K_V1"``) are torchvision's; a new ``num_classes`` replaces the
  last layer of pretrained weights.
- ``variant="small"`` (CIFAR-10 and MNIST sizes) keeps each family's design at small resolutions, with ``widths``
  to scale it: the book's CIFAR AlexNet (two 5x5 convolutions, 384 -> 192 head), VGG's convolution stacks with the
  pools that still fit, kuangliu's CIFAR GoogLeNet (a 3x3 stem, Inception 3a-5b), and ResNets whose stem is
  ``"book"`` (Conv 7x7 s2 -> MaxPool 3 s1, the book's CIFAR ResNet) or ``"cifar"`` (Conv 3x3 s1, He et al.'s CIFAR
  stem).

Each family builds its repeated unit in one method (``conv_stage``, ``inception_block``, ``residual_block``), so a
subclass swaps the block by overriding that method.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from zoo.layers.backbones import torchvision_model
from zoo.layers.classic import InceptionBlock
from zoo.layers.heads import mlp
from zoo.models.base import ImageClassifier

Variant = Literal["auto", "imagenet", "small"]

#: VGG configurations (Simonyan & Zisserman, 2015, Table 1), as torchvision names them; "M" is a 2x2 max-pool.
VGG_CONFIGS = {11: "A", 13: "B", 16: "D", 19: "E"}
RESNET_BLOCKS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class ClassicCNN(ImageClassifier):
    """Shared arguments of the classic families.

    Args:
        variant: ``"imagenet"`` (torchvision's network), ``"small"`` or ``"auto"`` (ImageNet from 64 pixels).
        weights: a torchvision weights name (e.g. ``"IMAGENET1K_V1"``) for the ImageNet variant.
        widths: channel widths of the small variant (each family documents its own).
        dropout: dropout before the classifier's Linear layers (small variants).
        **kwargs: :class:`~zoo.models.base.ImageClassifier` arguments (``num_classes``, ``in_channels``,
            ``image_size``, optimizer settings).
    """

    torchvision_name: str = ""
    default_widths: tuple[int, ...] = ()

    def __init__(
        self,
        variant: Variant = "auto",
        weights: Optional[str] = None,
        widths: Optional[tuple[int, ...]] = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if variant not in ("auto", "imagenet", "small"):
            raise ValueError(f"variant must be 'auto', 'imagenet' or 'small', got {variant!r}")
        super().__init__(**kwargs)

    @property
    def is_imagenet(self) -> bool:
        hp = self.hparams
        return hp.variant == "imagenet" or (hp.variant == "auto" and hp.image_size >= 64)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.hparams.widths or self.default_widths)

    def build_network(self) -> nn.Module:
        hp = self.hparams
        if not self.is_imagenet:
            if hp.weights is not None:
                raise ValueError(f"weights={hp.weights!r} exist for the ImageNet variant only; set variant='imagenet'")
            return self.build_small()
        if hp.in_channels != 3 or hp.widths is not None:
            raise ValueError(
                f"the ImageNet variant is torchvision's {self.torchvision_name} (3 input channels, standard widths); "
                f"got in_channels={hp.in_channels}, widths={hp.widths}: use variant='small' to change them"
            )
        return torchvision_model(self.torchvision_name, hp.weights, hp.num_classes)

    def build_small(self) -> nn.Module:
        raise NotImplementedError

    def classifier_head(self, sizes: list[int]) -> list[nn.Module]:
        """Linear layers of ``sizes``, ReLU between them and ``dropout`` before each (AlexNet's classifier)."""
        return mlp(sizes, dropout=self.hparams.dropout, dropout_before_linear=True)


class AlexNet(ClassicCNN):
    """AlexNet; the small variant is the book's CIFAR-10 AlexNet: Conv 5x5 (64) -> ReLU -> MaxPool 3 s2 -> Conv 5x5
    (64) -> ReLU -> MaxPool 3 s2 -> Linear 384 -> 192 -> classes. ``widths``: (conv1, conv2, hidden1, hidden2).
    """

    torchvision_name = "alexnet"
    default_widths = (64, 64, 384, 192)

    def build_small(self) -> nn.Module:
        hp = self.hparams
        c1, c2, h1, h2 = self.widths
        features = nn.Sequential(
            nn.Conv2d(hp.in_channels, c1, 5), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        size = features(torch.zeros(1, hp.in_channels, hp.image_size, hp.image_size)).numel()
        return nn.Sequential(features, nn.Flatten(), *self.classifier_head([size, h1, h2, hp.num_classes]))


class VGG(ClassicCNN):
    """VGG-11/13/16/19 (``depth``), with ``batch_norm``. The small variant keeps the configuration's convolution
    stack, skips the max-pools that would shrink the map below 1 pixel, and ends in Linear(512 * w, classes) as the
    book's CIFAR VGG. ``widths``: the five stages' channels (default 64, 128, 256, 512, 512).
    """

    default_widths = (64, 128, 256, 512, 512)

    def __init__(self, depth: int = 16, batch_norm: bool = True, **kwargs: Any) -> None:
        if depth not in VGG_CONFIGS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, got {depth}")
        super().__init__(**kwargs)

    @property
    def torchvision_name(self) -> str:  # type: ignore[override]
        return f"vgg{self.hparams.depth}" + ("_bn" if self.hparams.batch_norm else "")

    def conv_stage(self, in_channels: int, out_channels: int, convs: int) -> list[nn.Module]:
        """``convs`` 3x3 convolutions (with BatchNorm if asked) and ReLU: one stage before a pool."""
        layers: list[nn.Module] = []
        for i in range(convs):
            layers.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1))
            if self.hparams.batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        return layers

    def build_small(self) -> nn.Module:
        hp = self.hparams
        config = torchvision.models.vgg.cfgs[VGG_CONFIGS[hp.depth]]
        convs_per_stage = [len(stage.split()) for stage in " ".join(str(v) for v in config).split("M")[:-1]]
        layers: list[nn.Module] = []
        channels, size = hp.in_channels, hp.image_size
        for width, convs in zip(self.widths, convs_per_stage):
            layers += self.conv_stage(channels, width, convs)
            channels = width
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             *self.classifier_head([channels, hp.num_classes]))


class GoogLeNet(ClassicCNN):
    """GoogLeNet (Inception v1). The small variant is the CIFAR GoogLeNet: Conv 3x3 (192) + BN + ReLU, Inception
    3a, 3b, MaxPool, 4a-4e, MaxPool, 5a, 5b, global average pool, Linear. Inception widths are the paper's Table 1
    scaled by ``widths[0] / 64`` (``widths``: one number, the 1x1 branch of 3a; default 64).
    """

    torchvision_name = "googlenet"
    default_widths = (64,)

    #: Table 1 of Szegedy et al.: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per Inception block.
    TABLE_1 = {
        "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
        "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
        "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
        "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
    }

    def build_network(self) -> nn.Module:
        if self.is_imagenet and self.hparams.weights is None:
            return torchvision.models.googlenet(num_classes=self.hparams.num_classes, aux_logits=False,
                                                init_weights=True)
        return super().build_network()

    def inception_block(self, in_channels: int, widths: tuple[int, ...]) -> nn.Module:
        """One Inception block (four branches concatenated on channels)."""
        return InceptionBlock(in_channels, *widths)

    def build_small(self) -> nn.Module:
        hp = self.hparams
        scale = self.widths[0] / 64

        def scaled(name: str) -> tuple[int, ...]:
            return tuple(max(1, round(w * scale)) for w in self.TABLE_1[name])

        stem_width = max(1, round(192 * scale))
        layers: list[nn.Module] = [nn.Conv2d(hp.in_channels, stem_width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True)]
        channels = stem_width
        for name in self.TABLE_1:
            if name in ("4a", "5a"):
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
            widths = scaled(name)
            layers.append(self.inception_block(channels, widths))
            channels = widths[0] + widths[2] + widths[4] + widths[5]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             *self.classifier_head([channels, hp.num_classes]))


class ResNet(ClassicCNN):
    """ResNet-18/34/50 (``depth``). The small variant uses torchvision's ``BasicBlock``/``Bottleneck`` in four stages
    of ``widths`` (default 64, 128, 256, 512; strides 1, 2, 2, 2) after the ``stem``:

    - ``"book"``: Conv 7x7 s2 -> BN -> ReLU -> MaxPool 3 s1 (the book's CIFAR-10 ResNet; with the default widths it
      has exactly torchvision's ResNet parameters);
    - ``"cifar"``: Conv 3x3 s1 -> BN -> ReLU (He et al., 2016, section 4.2; kuangliu's ResNet-18).

    The stages end in global average pooling (AvgPool 2 on the book's 2x2 map of 32x32 images) and a Linear layer.
    """

    default_widths = (64, 128, 256, 512)

    def __init__(self, depth: int = 18, stem: Literal["book", "cifar"] = "book", **kwargs: Any) -> None:
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
        if stem not in ("book", "cifar"):
            raise ValueError(f"stem must be 'book' or 'cifar', got {stem!r}")
        super().__init__(**kwargs)

    @property
    def torchvision_name(self) -> str:  # type: ignore[override]
        return f"resnet{self.hparams.depth}"

    def residual_block(self, in_channels: int, width: int, stride: int) -> nn.Module:
        """One residual block of ``width`` (a bottleneck outputs ``4 * width``), with a projection shortcut when
        the shape changes."""
        block_class = RESNET_BLOCKS[self.hparams.depth][0]
        out_channels = width * block_class.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                       nn.BatchNorm2d(out_channels))
        return block_class(in_channels, width, stride=stride, downsample=downsample)

    def stem(self, out_channels: int) -> list[nn.Module]:
        in_channels = self.hparams.in_channels
        if self.hparams.stem == "cifar":
            return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                    nn.ReLU(inplace=True)]
        return [nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=1)]

    def build_small(self) -> nn.Module:
        hp = self.hparams
        block_class, blocks_per_stage = RESNET_BLOCKS[hp.depth]
        widths = self.widths
        layers: list[nn.Module] = self.stem(widths[0])
        channels = widths[0]
        for stage, (width, blocks) in enumerate(zip(widths, blocks_per_stage)):
            for i in range(blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(self.residual_block(channels, width, stride))
                channels = width * block_class.expansion
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             *self.classifier_head([channels, hp.num_classes]))
