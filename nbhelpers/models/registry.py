"""The model registry: every model is registered by decorator next to its definition with a
``ModelConfig`` (in the manner of timm's ``pretrained_cfg``), and every consumer reads it.

``ModelConfig`` says how a model is fed and explained: the input pipeline and its normalisation
(training-split statistics, ImageNet statistics, or the B-cos encoding), the default input size, the
state-dict prefix of its classifier (left out when pretrained weights are loaded) and the candidate
CAM target layers, from which ``cam_target_layer`` picks the deepest that still has
``MIN_CAM_CELLS`` x ``MIN_CAM_CELLS`` cells at a given input size. A caller may still override any
of these explicitly (``TrainConfig(pipeline=...)``, ``create_explainer(..., layer=...)``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

__all__ = ["ModelConfig", "NORMALISATIONS", "MIN_CAM_CELLS", "register_model", "model_config", "create_model",
           "list_models", "cam_target_layer", "layer_cells"]

# pipeline -> how its input is normalised (nbhelpers.data.transforms.build_pipeline implements each)
NORMALISATIONS = {"pad_crop_flip": "training-split mean/std", "finetune": "ImageNet mean/std",
                  "bcos": "B-cos encoding [r, g, b, 1-r, 1-g, 1-b], no mean/std"}
MIN_CAM_CELLS = 4
_BUILTIN_MODULES = ("nbhelpers.models.factories", "nbhelpers.models.efficientnet_lite", "nbhelpers.models.bcos_resnet")


@dataclass(frozen=True)
class ModelConfig:
    """How a registered model is fed, initialised and explained."""

    pipeline: str  # key of NORMALISATIONS
    input_size: int  # default input size in px
    classifier: str  # state-dict prefix of the head, e.g. "fc."
    cam_layers: Callable[[nn.Module], Sequence[nn.Module]]  # CAM candidates, shallow to deep
    pretrained: str = ""  # default weights: "imagenet" or "" (random)
    description: str = field(default="", compare=False)

    @property
    def normalisation(self) -> str:
        """What the pipeline does to pixel values."""
        return NORMALISATIONS[self.pipeline]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    config: ModelConfig


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, config: ModelConfig) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register the decorated factory ``(num_classes=..., **kwargs) -> model`` as ``name``."""
    if config.pipeline not in NORMALISATIONS:
        raise ValueError(f"{name}: unknown pipeline {config.pipeline!r}; choose one of {sorted(NORMALISATIONS)}")

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = _Entry(factory, config)
        return factory

    return decorate


def _load_builtin_models() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)  # the built-in models register themselves on import


def _entry(name: str) -> _Entry:
    _load_builtin_models()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose one of {list_models()}")
    return _REGISTRY[name]


def list_models() -> list[str]:
    """Names that ``create_model`` accepts."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def model_config(name_or_model: str | nn.Module) -> ModelConfig:
    """The ``ModelConfig`` of a registered name, or of a model built by ``create_model``."""
    name = name_or_model if isinstance(name_or_model, str) else getattr(name_or_model, "model_name", None)
    if name is None:
        raise KeyError(f"{type(name_or_model).__name__} was not built by create_model: no registered configuration")
    return _entry(name).config


def create_model(name: str, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``; records ``model_name`` and ``model_kwargs`` for checkpoints."""
    model = _entry(name).factory(num_classes=num_classes, **kwargs)
    model.model_name = name
    model.model_kwargs = {"num_classes": num_classes, **kwargs}
    return model


def layer_cells(model: nn.Module, layers: Sequence[nn.Module], input_size: int) -> list[tuple[int, int]]:
    """Spatial size (H, W) of each layer's output for one ``input_size`` x ``input_size`` image."""
    sizes: dict[int, tuple[int, int]] = {}

    def recorder(index: int) -> Callable[..., None]:
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            sizes.setdefault(index, tuple(output.shape[-2:]))
        return record

    hooks = [layer.register_forward_hook(recorder(index)) for index, layer in enumerate(layers)]
    training = model.training
    parameter = next(model.parameters())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size, device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return [sizes[i] for i in range(len(layers))]


def cam_target_layer(model: nn.Module, input_size: int | None = None, min_cells: int = MIN_CAM_CELLS) -> nn.Module:
    """The deepest CAM candidate of ``model`` whose map has at least ``min_cells`` cells per side at
    ``input_size`` (default: the registered size); the shallowest candidate when none has."""
    config = model_config(model)
    candidates = list(config.cam_layers(model))
    cells = layer_cells(model, candidates, input_size or config.input_size)
    usable = [layer for layer, (height, width) in zip(candidates, cells) if min(height, width) >= min_cells]
    return usable[-1] if usable else candidates[0]
