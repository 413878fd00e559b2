"""The from-scratch models of the classic tutorials: a plain CNN baseline and ResNet-9.

ResNet-9 follows the DAWNBench / "ResNet-9" design popularised by the Jovian ResNet-9 tutorial
(D. Page, "How to train your ResNet", 2018): conv-BN-ReLU blocks, max-pooling, two residual blocks.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nbhelpers.models.base import ImageClassificationBase

__all__ = ["SimpleCNN", "ResNet9", "conv_block"]


def conv_block(in_channels: int, out_channels: int, pool: bool = False) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU, and optionally a 2x2 max-pool."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                               nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SimpleCNN(ImageClassificationBase):
    """Conv + max-pool stack flattened into a small classifier: the baseline."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 16, 256), nn.ReLU(inplace=True),
                                        nn.Dropout(0.3), nn.Linear(256, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


class ResNet9(ImageClassificationBase):
    """ResNet-9: prep, two pooled stages each followed by a residual block, adaptive max-pool head.

    ``width`` is the channel count of the first block (64 in the tutorial); the later blocks use
    2x, 4x and 8x of it. A narrower ResNet-9 is what a 2-core CPU can train in minutes.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.conv1 = conv_block(in_channels, width)
        self.conv2 = conv_block(width, 2 * width, pool=True)
        self.res1 = nn.Sequential(conv_block(2 * width, 2 * width), conv_block(2 * width, 2 * width))
        self.conv3 = conv_block(2 * width, 4 * width, pool=True)
        self.conv4 = conv_block(4 * width, 8 * width, pool=True)
        self.res2 = nn.Sequential(conv_block(8 * width, 8 * width), conv_block(8 * width, 8 * width))
        self.classifier = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                        nn.Linear(8 * width, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(images))
        out = self.res1(out) + out
        out = self.conv4(self.conv3(out))
        out = self.res2(out) + out
        return self.classifier(out)
