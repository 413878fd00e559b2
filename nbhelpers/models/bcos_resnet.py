"""B-cos ResNet: the suite's ResNet builder with B-cos convolutions, uncentred batch norm and no ReLU.

Böhle, Fritz, Schiele, "B-cos Networks: Alignment is All We Need for Interpretability", CVPR 2022;
Böhle, Singh, Fritz, Schiele, "B-cos Alignment for Inherently Interpretable CNNs and Vision
Transformers", TPAMI 2024 (B-cos-v2).

As B-cos-v2's ImageNet ResNets: ``BcosConv2d`` (B=2, no MaxOut), bias-free uncentred batch norm,
identity activations, binary cross-entropy on one-hot targets and a fixed logit bias
``-log(num_classes - 1)`` (0 for two classes), no temperature. The input is the 6-channel encoding
``[r, g, b, 1-r, 1-g, 1-b]`` of images in 0..1 (``nbhelpers.data.transforms.bcos_encode``, the ``bcos``
pipeline). The head is a ``BcosLinear`` applied after global average pooling (B-cos-v2 applies a 1x1
B-cos convolution before pooling); both keep the model dynamic linear, so explanations are exact.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from functools import partial
from typing import Type

import torch
import torch.nn as nn
import torch.nn.functional as functional

from nbhelpers.data.transforms import bcos_encode
from nbhelpers.models.base import target_probabilities
from nbhelpers.models.bcos_layers import (
    BatchNormUncentred2d,
    DOWNSAMPLING,
    BcosConv2d,
    BcosHead,
    blur_pool_bcos_conv,
    blur_pooled,
    explanation_mode,
)
from nbhelpers.models.factories import resnet_stages
from nbhelpers.models.registry import register_model
from nbhelpers.models.spec import RunSpec
from nbhelpers.models.resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["BcosResNet", "bcos_resnet18"]


class BcosResNet(ResNet):
    """A ResNet built with B-cos layers; trains with BCE on one-hot targets.

    ``downsampling``: ``"stride"`` (strided convolutions, the default and the layout of earlier
    checkpoints), ``"blur"`` (every strided convolution, stem and 1x1 shortcuts included, at stride 1
    followed by average pooling: ``BlurPoolBcosConv2d``, which removes the pixel-level checkerboard of the
    explanations) or ``"blur_stem"`` (only the 7x7 stem, the one strided layer at input resolution, which
    removes nearly all of it; not with ``small_input``, whose stem has stride 1). Same state-dict keys in
    all three, so checkpoints load into any. Raises ``ValueError`` for another value.

    ``forward`` takes the encoded (N, 6, H, W) input; a 3-channel batch (images in 0..1) is encoded on
    the fly, so generic code that feeds RGB still works. Its registered ``RunSpec`` (pipeline ``bcos``) tells
    checkpoints and inference code which input the model expects.
    """

    def __init__(self, block: Type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 2, b: float = 2.0,
                 max_out: int = 1, logit_bias: float | None = None, logit_temperature: float | None = None,
                 small_input: bool = False, width: int = 64, downsampling: str = "stride") -> None:
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"downsampling must be one of {DOWNSAMPLING}, not {downsampling!r}")
        if downsampling == "blur_stem" and small_input:
            raise ValueError("downsampling='blur_stem' needs the strided stem; with small_input=True use 'blur'")
        if logit_bias is None:
            logit_bias = -math.log(num_classes - 1) if num_classes > 2 else 0.0
        super().__init__(block, layers, num_classes, in_channels=6,
                         conv_layer=partial(blur_pool_bcos_conv if downsampling == "blur" else BcosConv2d, b=b,
                                            max_out=max_out), norm_layer=BatchNormUncentred2d,
                         activation_layer=nn.Identity,
                         head=partial(BcosHead, b=b, max_out=max_out, logit_temperature=logit_temperature,
                                      logit_bias=logit_bias),
                         small_input=small_input, width=width)
        if downsampling == "blur_stem":
            self.conv1 = blur_pooled(self.conv1)
        self.b, self.logit_bias, self.downsampling = float(b), float(logit_bias), downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3:
            x = bcos_encode(x)
        elif x.shape[1] != 6:
            raise ValueError(f"expected 6 encoded channels (or 3 to encode), got input of shape {tuple(x.shape)}")
        return super().forward(x)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of every class's logit against one-hot targets of int64 labels (N,) (as in both
        papers), or against float soft targets (N, classes) as they are (distillation)."""
        targets = target_probabilities(labels, logits.shape[1], logits.dtype)
        return functional.binary_cross_entropy_with_logits(logits, targets)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over classes.

        BCE trains one sigmoid per class; their values need not sum to 1, which the suite's evaluation
        (flip-TTA averaging, reported probability of the predicted class, column-1 scores) assumes. The
        softmax has the same arg-max (so identical predictions) and for two classes equals
        ``sigmoid(z_1 - z_0)``; use ``torch.sigmoid(logits)`` for B-cos's per-class scores.
        """
        return logits.softmax(dim=1)

    def explanation_mode(self) -> AbstractContextManager[nn.Module]:
        """Context manager detaching every dynamic factor (use on a model in eval mode); restores afterwards."""
        return explanation_mode(self)


@register_model(RunSpec("bcos_resnet18", "bcos", 64, "fc.", resnet_stages((2, 2, 2, 2)),
                        description="B-cos ResNet-18, 6-channel B-cos encoding"))
def bcos_resnet18(num_classes: int = 2, small_input: bool = False, width: int = 64, b: float = 2.0,
                  pretrained: bool | str = False, **kwargs) -> BcosResNet:
    """B-cos ResNet-18 from scratch (``max_out``, ``logit_bias``, ``logit_temperature``, ``downsampling`` pass through)."""
    if pretrained:
        raise ValueError("no B-cos ImageNet weights are available offline for bcos_resnet18; use pretrained=False")
    model = BcosResNet(BasicBlock, [2, 2, 2, 2], num_classes, b=b, small_input=small_input, width=width, **kwargs)
    model.pretrained_source = None
    return model
