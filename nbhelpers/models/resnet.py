"""One ResNet builder with injectable layers (He, Zhang, Ren, Sun, "Deep Residual Learning for
Image Recognition", CVPR 2016).

``conv_layer``, ``norm_layer`` and ``activation_layer`` are arguments, as in B-cos-v2 and timm, so
the B-cos ResNet is this same builder with B-cos convolutions injected. Attribute names match
torchvision's, so torchvision's ImageNet weights load into ``resnet18``/``resnet50`` directly.
"""

from __future__ import annotations

from typing import Callable, Type

import torch
import torch.nn as nn

from nbhelpers.models.base import ImageClassificationBase

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "LayerFactory"]

LayerFactory = Callable[..., nn.Module]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, conv_layer: LayerFactory, norm_layer: LayerFactory,
                 activation_layer: LayerFactory, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv_layer(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = activation_layer()
        self.conv2 = conv_layer(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1, 3x3, 1x1 convolutions with a residual connection (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, conv_layer: LayerFactory, norm_layer: LayerFactory,
                 activation_layer: LayerFactory, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv_layer(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv_layer(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv_layer(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = activation_layer()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class ResNet(ImageClassificationBase):
    """ResNet with torchvision's layout and names, built from injected layer types.

    ``small_input=True`` drops the first max-pool (and uses a 3x3 stride-1 stem) for 32-96 px faces.
    ``head`` builds the classifier from (in_features, num_classes); default ``nn.Linear``.
    """

    def __init__(self, block: Type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 2,
                 in_channels: int = 3, conv_layer: LayerFactory = nn.Conv2d, norm_layer: LayerFactory = nn.BatchNorm2d,
                 activation_layer: LayerFactory = _relu, head: LayerFactory = nn.Linear, small_input: bool = False,
                 width: int = 64) -> None:
        super().__init__()
        self.conv_layer, self.norm_layer, self.activation_layer = conv_layer, norm_layer, activation_layer
        self.in_planes = width
        if small_input:
            self.conv1 = conv_layer(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = conv_layer(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = activation_layer()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = head(8 * width * block.expansion, num_classes)
        self._initialise()

    def _make_layer(self, block: Type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Sequential(
                self.conv_layer(self.in_planes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                self.norm_layer(planes * block.expansion))
        layers = [block(self.in_planes, planes, stride, self.conv_layer, self.norm_layer, self.activation_layer, downsample)]
        self.in_planes = planes * block.expansion
        layers += [block(self.in_planes, planes, 1, self.conv_layer, self.norm_layer, self.activation_layer)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
