"""Models looked up by name: ``create_model("resnet18", num_classes=2, pretrained=True)``.

Registered: ``simple_cnn``, ``resnet9``, ``resnet18``, ``resnet50``, ``efficientnet_lite0`` and
``bcos_resnet18`` (B-cos, 6-channel encoded input).
``create_model`` records the name and keyword arguments on the model (``model.model_name``,
``model.model_kwargs``) so that a checkpoint can rebuild it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from nbhelpers.classification_base import ImageClassificationBase

__all__ = ["MODELS", "create_model", "list_models", "register_model"]

MODELS: dict[str, str] = {
    "simple_cnn": "nbhelpers.models.factories:simple_cnn",
    "resnet9": "nbhelpers.models.factories:resnet9",
    "resnet18": "nbhelpers.models.factories:resnet18",
    "resnet50": "nbhelpers.models.factories:resnet50",
    "efficientnet_lite0": "nbhelpers.models.efficientnet_lite:efficientnet_lite0",
    "bcos_resnet18": "nbhelpers.models.bcos_resnet:bcos_resnet18",
}


def register_model(name: str, target: str | Callable[..., ImageClassificationBase]) -> None:
    """Add a model factory under ``name`` (a callable, or ``"module:function"`` imported lazily)."""
    MODELS[name] = target  # type: ignore[assignment]


def list_models() -> list[str]:
    """Names that ``create_model`` accepts."""
    return sorted(MODELS)


def _factory(name: str) -> Callable[..., ImageClassificationBase]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {list_models()}")
    target: Any = MODELS[name]
    if callable(target):
        return target
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def create_model(name: str, num_classes: int = 2, **kwargs: Any) -> ImageClassificationBase:
    """Build the model registered as ``name`` with ``num_classes`` outputs."""
    model = _factory(name)(num_classes=num_classes, **kwargs)
    model.model_name = name
    model.model_kwargs = {"num_classes": num_classes, **kwargs}
    return model
