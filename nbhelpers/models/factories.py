"""Factories of the registered from-scratch and torchvision-layout models, and ImageNet weight loading.

``pretrained`` is optional: ``True`` uses torchvision's ImageNet weights when they are in the torch
hub cache or can be downloaded; a string is a local weights file. Offline without them, a warning
says so and the model trains from scratch (``model.pretrained_source`` is then ``None``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from nbhelpers.datasets.download import is_reachable
from nbhelpers.models.resnet import BasicBlock, Bottleneck, ResNet
from nbhelpers.models.small import ResNet9, SimpleCNN

__all__ = ["simple_cnn", "resnet9", "resnet18", "resnet50", "load_pretrained", "torchvision_weights_file"]


def simple_cnn(num_classes: int = 2, **kwargs) -> SimpleCNN:
    """The plain CNN baseline."""
    model = SimpleCNN(num_classes, **kwargs)
    model.pretrained_source = None
    return model


def resnet9(num_classes: int = 2, **kwargs) -> ResNet9:
    """ResNet-9 of the classic tutorial."""
    model = ResNet9(num_classes, **kwargs)
    model.pretrained_source = None
    return model


def torchvision_weights_file(architecture: str) -> tuple[str, Path]:
    """URL and torch-hub cache path of torchvision's ImageNet weights for ``architecture``."""
    import torchvision

    weights = torchvision.models.get_model_weights(architecture).IMAGENET1K_V1
    return weights.url, Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; name the file instead
        raise ValueError(f"{path}: not a readable weights file ({type(error).__name__}: {error})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_pretrained(model: torch.nn.Module, architecture: str, pretrained: bool | str, head_prefix: str = "fc.") -> str | None:
    """Load ImageNet weights into every layer whose shape matches (not the head); return the source."""
    if not pretrained:
        return None
    if isinstance(pretrained, str):
        path, source = Path(pretrained), str(pretrained)
    else:
        url, path = torchvision_weights_file(architecture)
        source = f"torchvision {architecture} ImageNet ({path.name})"
        if not path.is_file():
            if not is_reachable("download.pytorch.org"):
                warnings.warn(f"no ImageNet weights for {architecture} offline: put {path.name} from {url} into "
                              f"{path.parent} or pass pretrained=<local file>; training from scratch", stacklevel=3)
                return None
            torch.hub.load_state_dict_from_url(url, progress=False)
    state = _read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and not k.startswith(head_prefix) and v.shape == own[k].shape}
    skipped = sorted(k for k in own if k not in usable and not k.startswith(head_prefix))
    if not usable:
        raise ValueError(f"{path}: no tensor matches the {architecture} architecture")
    if skipped:
        warnings.warn(f"{path}: {len(skipped)} tensors not loaded (shape or name differs), e.g. {skipped[:3]}", stacklevel=3)
    model.load_state_dict(usable, strict=False)
    return source


def _resnet(architecture: str, block, layers: list[int], num_classes: int, pretrained: bool | str, **kwargs) -> ResNet:
    model = ResNet(block, layers, num_classes, **kwargs)
    model.pretrained_source = load_pretrained(model, architecture, pretrained)
    return model


def resnet18(num_classes: int = 2, pretrained: bool | str = False, **kwargs) -> ResNet:
    """ResNet-18 with a ``num_classes`` head; ``small_input=True`` removes the first max-pool."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, pretrained, **kwargs)


def resnet50(num_classes: int = 2, pretrained: bool | str = False, **kwargs) -> ResNet:
    """ResNet-50 with a ``num_classes`` head."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, pretrained, **kwargs)
