"""The model registry: every model is registered by decorator next to its definition with its default
``RunSpec`` (in the manner of timm's ``pretrained_cfg``), and every consumer reads the spec.

The registered spec says how a model is fed and explained: the input pipeline and its normalisation
(training-split statistics, ImageNet statistics, or the B-cos encoding), the default input size, the
state-dict prefix of its classifier (left out when pretrained weights are loaded), the default
pretrained weights and the candidate CAM target layers (module names), from which ``cam_target_layer``
picks the deepest that still has ``MIN_CAM_CELLS`` x ``MIN_CAM_CELLS`` cells at a given input size.
``create_model`` attaches the spec, with the factory's arguments, to the model as ``model.spec``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from nbhelpers.models.spec import NORMALISATIONS, CamLayer, RunSpec

__all__ = ["RunSpec", "NORMALISATIONS", "MIN_CAM_CELLS", "register_model", "model_spec", "create_model",
           "list_models", "cam_target_layer", "cam_layer_spec", "layer_cells"]

MIN_CAM_CELLS = 4
_BUILTIN_MODULES = ("nbhelpers.models.factories", "nbhelpers.models.efficientnet_lite", "nbhelpers.models.bcos_resnet",
                    "nbhelpers.models.bcos_efficientnet_lite")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    spec: RunSpec


_REGISTRY: dict[str, _Entry] = {}


def register_model(spec: RunSpec) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register the decorated factory ``(num_classes=..., **kwargs) -> model`` as ``spec.model``."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[spec.model] = _Entry(factory, spec)
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


def model_spec(name_or_model: str | nn.Module) -> RunSpec:
    """The registered default ``RunSpec`` of a name, or the spec attached to a model built by ``create_model``.

    Raises ``KeyError`` for an unknown name or a model not built by ``create_model``."""
    if isinstance(name_or_model, str):
        return _entry(name_or_model).spec
    spec = getattr(name_or_model, "spec", None)
    if not isinstance(spec, RunSpec):
        raise KeyError(f"{type(name_or_model).__name__} was not built by create_model: no run spec attached")
    return spec


def create_model(name: str | RunSpec, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` (or described by a ``RunSpec``), with its spec's ``model_kwargs``
    as default arguments (``kwargs`` override them), and attach its spec as ``model.spec``, with the factory's arguments and the pretrained source it loaded."""
    if isinstance(name, RunSpec):
        spec, kwargs = name, {**name.model_kwargs, **kwargs}
        kwargs.pop("num_classes", None)
        num_classes = len(spec.classes)
    else:
        spec = _entry(name).spec
        kwargs = {**{key: value for key, value in spec.model_kwargs.items() if key != "num_classes"}, **kwargs}
        if num_classes != len(spec.classes):  # another task than the suite's two classes: generic class names
            spec = spec.replace(classes=tuple(f"class_{index}" for index in range(num_classes)))
    model = _entry(spec.model).factory(num_classes=num_classes, **kwargs)
    arguments = {key: value for key, value in kwargs.items() if key != "pretrained"}
    model.spec = spec.replace(model_kwargs={"num_classes": num_classes, **arguments},
                              pretrained_source=getattr(model, "pretrained_source", spec.pretrained_source))
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


def cam_layer_spec(model: nn.Module, input_size: int | None = None, min_cells: int = MIN_CAM_CELLS) -> CamLayer:
    """The deepest CAM candidate of ``model`` (``spec.cam_candidates``) whose map has at least ``min_cells``
    cells per side at ``input_size`` (default: the spec's), measured by one forward pass; the shallowest
    candidate when none has. Returned as data: the module name and its reduction (input px per cell)."""
    spec = model_spec(model)
    size = input_size or spec.input_size
    if not spec.cam_candidates:
        raise KeyError(f"{spec.model}: no CAM candidates registered")
    candidates = [model.get_submodule(name) for name in spec.cam_candidates]
    cells = layer_cells(model, candidates, size)
    usable = [index for index, (height, width) in enumerate(cells) if min(height, width) >= min_cells]
    index = usable[-1] if usable else 0
    return CamLayer(spec.cam_candidates[index], max(1, round(size / max(1, min(cells[index])))))


def cam_target_layer(model: nn.Module, input_size: int | None = None, min_cells: int = MIN_CAM_CELLS) -> nn.Module:
    """The CAM target module of ``model`` at ``input_size``: the spec's recorded ``cam_layer`` when it was
    chosen for that size, else ``cam_layer_spec``'s choice."""
    spec = model_spec(model)
    if spec.cam_layer is not None and (input_size in (None, spec.input_size)):
        return model.get_submodule(spec.cam_layer.module)
    return model.get_submodule(cam_layer_spec(model, input_size, min_cells).module)
