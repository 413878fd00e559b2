"""Pretrained weights: one loader for every model, reading a state dict and copying the backbone.

The classifier (the state-dict prefix named by the model's ``RunSpec.classifier``) is never
loaded: the suite's heads have two outputs. ``strict=True`` demands that every backbone tensor is
present with the right shape (EfficientNet-Lite0's packaged weights); ``strict=False`` loads what
fits and warns about the rest (torchvision's ImageNet ResNets into the suite's ResNet layout).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn

__all__ = ["read_state_dict", "load_backbone"]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored at ``path`` (a bare state dict or ``{"state_dict": ...}``); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a foreign file; name the file instead
        raise ValueError(f"{path}: not a readable weights file ({type(error).__name__}: {error})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{path}: does not hold a state dict of tensors (found {type(state).__name__})")
    return state


def load_backbone(model: nn.Module, path: str | Path, classifier: str, strict: bool = True) -> None:
    """Copy every tensor of the weights at ``path`` except the ``classifier`` head into ``model``."""
    state = read_state_dict(path)
    own = {key: value for key, value in model.state_dict().items() if not key.startswith(classifier)}
    backbone = {key: value for key, value in state.items() if not key.startswith(classifier)}
    usable = {key: value for key, value in backbone.items() if key in own and value.shape == own[key].shape}
    missing = sorted(set(own) - set(usable))
    unexpected = sorted(set(backbone) - set(own))
    if not usable:
        raise ValueError(f"{path}: no tensor matches the {type(model).__name__} architecture")
    if strict and (missing or unexpected):
        raise ValueError(f"{path} does not match {type(model).__name__}: missing or mismatched {missing[:5]} "
                         f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    if missing:
        warnings.warn(f"{path}: {len(missing)} tensors not loaded (shape or name differs), e.g. {missing[:3]}",
                      stacklevel=3)
    model.load_state_dict(usable, strict=False)
