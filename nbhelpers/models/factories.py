"""Factories of the from-scratch and torchvision-layout models, registered with their configurations.

``pretrained`` is optional: ``True`` uses torchvision's ImageNet weights when they are in the torch
hub cache or can be downloaded (``nbhelpers.data.datasets.download.torchvision_weights``); a string
is a local weights file. Offline without them, a warning says so and the model trains from scratch
(``model.pretrained_source`` is then ``None``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch.nn as nn

from nbhelpers.data.datasets.download import DownloadError, torchvision_weights
from nbhelpers.models.pretrained import load_backbone
from nbhelpers.models.registry import register_model
from nbhelpers.models.spec import RunSpec
from nbhelpers.models.resnet import BasicBlock, Bottleneck, ResNet
from nbhelpers.models.small import ResNet9, SimpleCNN

__all__ = ["simple_cnn", "resnet9", "resnet18", "resnet50", "load_pretrained", "resnet_stages"]


def resnet_stages(blocks: tuple[int, int, int, int]) -> tuple[str, ...]:
    """CAM candidates of a ResNet with ``blocks`` per stage: the last block of layer2, layer3 and layer4 (an
    earlier stage where layer4's map would be too coarse to localise anything, e.g. 2 x 2 at 64 px)."""
    return tuple(f"layer{stage}.{blocks[stage - 1] - 1}" for stage in (2, 3, 4))


def _resnet_spec(name: str, blocks: tuple[int, int, int, int]) -> RunSpec:
    return RunSpec(name, "finetune", 64, "fc.", resnet_stages(blocks), pretrained="imagenet",
                   description="torchvision-layout ResNet, ImageNet normalisation, resize + flip")


@register_model(RunSpec("simple_cnn", "pad_crop_flip", 40, "classifier.", ("features.7",),
                        description="plain CNN baseline, pad/crop/flip (CAM layer: the last ReLU)"))
def simple_cnn(num_classes: int = 2, **kwargs) -> SimpleCNN:
    """The plain CNN baseline."""
    model = SimpleCNN(num_classes, **kwargs)
    model.pretrained_source = None
    return model


@register_model(RunSpec("resnet9", "pad_crop_flip", 40, "classifier.", ("res2",),
                        description="ResNet-9 of the classic tutorial, pad/crop/flip"))
def resnet9(num_classes: int = 2, **kwargs) -> ResNet9:
    """ResNet-9 of the classic tutorial (CAM layer ``res2``: its gradient equals that of ``res2(x) + x``)."""
    model = ResNet9(num_classes, **kwargs)
    model.pretrained_source = None
    return model


def load_pretrained(model: nn.Module, architecture: str, pretrained: bool | str, classifier: str = "fc.") -> str | None:
    """Load ImageNet weights into every layer whose shape matches (not the head); return the source."""
    if not pretrained:
        return None
    if isinstance(pretrained, str):
        path, source = Path(pretrained), str(pretrained)
    else:
        try:
            path = torchvision_weights(architecture)
        except DownloadError as error:
            warnings.warn(f"{error}; training from scratch", stacklevel=3)
            return None
        source = f"torchvision {architecture} ImageNet ({path.name})"
    load_backbone(model, path, classifier, strict=False)
    return source


def _resnet(architecture: str, block, layers: list[int], num_classes: int, pretrained: bool | str, **kwargs) -> ResNet:
    model = ResNet(block, layers, num_classes, **kwargs)
    model.pretrained_source = load_pretrained(model, architecture, pretrained, "fc.")
    return model


@register_model(_resnet_spec("resnet18", (2, 2, 2, 2)))
def resnet18(num_classes: int = 2, pretrained: bool | str = False, **kwargs) -> ResNet:
    """ResNet-18 with a ``num_classes`` head; ``small_input=True`` removes the first max-pool."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, pretrained, **kwargs)


@register_model(_resnet_spec("resnet50", (3, 4, 6, 3)))
def resnet50(num_classes: int = 2, pretrained: bool | str = False, **kwargs) -> ResNet:
    """ResNet-50 with a ``num_classes`` head."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, pretrained, **kwargs)
