"""One interface for every explanation method: ``create_explainer(name, model)`` -> ``Attribution``.

Methods (``EXPLAINERS``):
- ``gradcam``: Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual Explanations from
  Deep Networks via Gradient-based Localization", ICCV 2017;
- ``gradcam++``: Chattopadhay, Sarkar, Howlader, Balasubramanian, "Grad-CAM++: Generalized
  Gradient-based Visual Explanations for Deep Convolutional Networks", WACV 2018;
- ``xgradcam``: Fu, Hu, Dong, Zhu, Li, Li, "Axiom-based Grad-CAM: Towards Accurate Visualization and
  Explanation of CNNs", BMVC 2020;
- ``bcos``: the contribution maps ``(W(x) * x).sum(channels)`` of B-cos networks (Böhle, Fritz,
  Schiele, CVPR 2022; Böhle, Singh, Fritz, Schiele, TPAMI 2024), B-cos models only;
- ``random``: uniform random maps, the chance baseline of every metric.

The three CAM methods use the classes of the ``grad-cam`` package (``pytorch_grad_cam``) through its public
API only: each class's ``get_cam_image`` (called with keyword arguments) turns the target layer's
activation and gradient into channel weights and a map. The explainer records the activation with its
own forward hook (``torch.nn.Module.register_forward_hook``; grad-cam's object is built with no target
layers, so it registers none) and takes the gradient from the target logit to that layer only
(``torch.autograd.grad``: no parameter gradients, no backward pass through the backbone). The map is
upsampled bilinearly without the per-image min-max rescaling of ``BaseCAM.__call__``, so shares of
attribution (pointing game, face focus) are not distorted. Explainers take the model's own input
(normalised, or B-cos encoded) and own their hook: ``release()`` or a ``with`` block removes it, and
exceptions always propagate.
The interface (``Explainer``, ``Attribution``, ``select_targets``, ...) lives in ``nbhelpers.explain.base``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as functional
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, XGradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from nbhelpers.data.transforms import bcos_encode
from nbhelpers.explain.base import (
    Attribution,
    Explainer,
    Targets,
    is_bcos_model,
    model_probabilities,
    select_targets,
)
from nbhelpers.explain.bcos import explain
from nbhelpers.models import cam_target_layer
from nbhelpers.utils.registry import lookup

__all__ = ["CamExplainer", "GradCamExplainer", "GradCamPlusPlusExplainer", "XGradCamExplainer", "BcosExplainer",
           "RandomExplainer", "EXPLAINERS", "create_explainer", "list_explainers", "explainer_supports", "target_layer",
           "random_maps",
           # the interface, defined in nbhelpers.explain.base and re-exported here
           "Attribution", "Targets", "Explainer", "select_targets", "model_probabilities", "is_bcos_model"]


def target_layer(model: nn.Module, input_size: int | None = None) -> nn.Module:
    """The layer whose activation the CAM methods weight at ``input_size``: the model's registered CAM
    candidates (``RunSpec.cam_candidates``), the deepest with at least 4 x 4 cells (``cam_target_layer``).

    ResNets (B-cos too): ``layer4[-1]`` from 128 px, ``layer3[-1]`` from 64 px, else ``layer2[-1]``.
    ResNet-9: ``res2``. Simple CNN: the last ReLU. EfficientNet-Lite0: ``_bn1`` (stride 32) from 128 px,
    else the last stride-16 block.
    """
    try:
        return cam_target_layer(model, input_size)
    except KeyError as error:
        raise ValueError(f"no registered CAM target layer for {type(model).__name__} ({error}); pass layer=<module>") from None


class CamExplainer(Explainer):
    """A class-activation-map method of ``pytorch_grad_cam`` (``cam_class``) on ``layer``.

    Without ``layer``, the layer is ``target_layer(model, input_size)``; without ``input_size`` either, it
    is chosen for the size of the first batch explained, and the hook is registered then. Raises
    ``RuntimeError`` when the layer runs more than once in a forward pass (its activation is ambiguous).
    """

    cam_class: ClassVar[type[BaseCAM]]

    def __init__(self, model: nn.Module, layer: nn.Module | None = None, input_size: int | None = None) -> None:
        super().__init__(model)
        # the channel weighting only: with no target layers grad-cam registers no hooks of its own
        self.weighting = self.cam_class(model=self.model, target_layers=[])
        self.layer: nn.Module | None = None
        self.hook: torch.utils.hooks.RemovableHandle | None = None
        self.activations: list[torch.Tensor] = []
        self.recording = False  # the hook keeps activations only while a batch is explained
        if layer is not None or input_size is not None:
            self._hook(layer if layer is not None else target_layer(model, input_size))

    def _hook(self, layer: nn.Module) -> None:
        self.layer = layer
        self.hook = layer.register_forward_hook(self._record)

    def _record(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self.recording:
            self.activations.append(output)  # the live activation: the gradient is taken with respect to it

    def _explain(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.hook is None:
            self._hook(target_layer(self.model, images.shape[-1]))
        inputs = images.clone().requires_grad_(True)  # a graph exists even for frozen parameters
        self.recording = True
        try:
            with torch.enable_grad():
                logits = self.model(inputs)
                if len(self.activations) != 1:
                    raise RuntimeError(f"target layer {type(self.layer).__name__} ran {len(self.activations)} "
                                       "times in one forward pass; choose a layer the model uses once")
                activation = self.activations[0]
                chosen = select_targets(logits.detach(), targets)
                (gradient,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), activation)
        finally:
            self.recording = False
            self.activations.clear()
        cam = self.weighting.get_cam_image(
            input_tensor=inputs.detach(), target_layer=self.layer,
            targets=[ClassifierOutputTarget(category=int(category)) for category in chosen],
            activations=activation.detach().float().cpu().numpy(), grads=gradient.float().cpu().numpy(),
            eigen_smooth=False)
        cam = torch.from_numpy(np.maximum(cam, 0).astype(np.float32)).to(images.device)
        maps = functional.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)
        return maps[:, 0].clamp(min=0), logits.detach(), chosen

    def release(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        super().release()


class GradCamExplainer(CamExplainer):
    """Grad-CAM: channel weights are the spatially averaged gradients (Selvaraju et al., ICCV 2017)."""

    name = "gradcam"
    cam_class = GradCAM


class GradCamPlusPlusExplainer(CamExplainer):
    """Grad-CAM++: positive gradients weighted by higher-order terms (Chattopadhay et al., WACV 2018)."""

    name = "gradcam++"
    cam_class = GradCAMPlusPlus


class XGradCamExplainer(CamExplainer):
    """XGrad-CAM: gradients weighted by normalised activations (Fu et al., BMVC 2020)."""

    name = "xgradcam"
    cam_class = XGradCAM


class BcosExplainer(Explainer):
    """B-cos contribution maps ``(W(x) * x).sum(channels)`` (``nbhelpers.explain.bcos.explain``); B-cos models only."""

    name = "bcos"

    def __init__(self, model: nn.Module) -> None:
        if not self.supports(model):
            raise ValueError(f"the 'bcos' explainer needs a B-cos model (bcos_encoding = True), not "
                             f"{type(model).__name__}; use gradcam, gradcam++ or xgradcam for it")
        super().__init__(model)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        return is_bcos_model(model)

    def _explain(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        encoded = bcos_encode(images) if images.shape[1] == 3 else images
        explanation = explain(self.model, encoded, targets, smooth=0)
        return explanation.contributions, explanation.logits, explanation.targets


class RandomExplainer(Explainer):
    """Uniform random maps: the chance level of every metric.

    ``cells=None`` draws one value per pixel; ``cells=k`` draws a k x k grid and upsamples it
    bilinearly (a random map as coarse as a CAM). Seeded: the same seed gives the same sequence of maps.
    """

    name = "random"

    def __init__(self, model: nn.Module, seed: int = 0, cells: int | None = None) -> None:
        super().__init__(model)
        self.cells = cells
        self.generator = torch.Generator().manual_seed(seed)

    def _explain(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits = self.model(images)
        maps = random_maps(images.shape[0], *images.shape[-2:], seed=self.generator, cells=self.cells)
        return maps.to(images.device), logits, select_targets(logits, targets)


def random_maps(count: int, height: int, width: int, seed: int | torch.Generator = 0,
                cells: int | None = None) -> torch.Tensor:
    """Uniform random maps (N, H, W) on the CPU: one value per pixel, or a ``cells`` x ``cells`` grid upsampled."""
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    if cells is None:
        return torch.rand(count, height, width, generator=generator)
    grid = torch.rand(count, 1, cells, cells, generator=generator)
    return functional.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[:, 0]


EXPLAINERS: dict[str, type[Explainer]] = {
    "gradcam": GradCamExplainer,
    "gradcam++": GradCamPlusPlusExplainer,
    "xgradcam": XGradCamExplainer,
    "bcos": BcosExplainer,
    "random": RandomExplainer,
}


def list_explainers() -> list[str]:
    """Names that ``create_explainer`` accepts."""
    return sorted(EXPLAINERS)


def explainer_supports(name: str, model: nn.Module) -> bool:
    """Whether the explainer ``name`` applies to ``model`` (``bcos`` needs a B-cos model)."""
    return lookup(EXPLAINERS, "explainer", name).supports(model)


def create_explainer(name: str, model: nn.Module, **kwargs: Any) -> Explainer:
    """The explainer registered as ``name`` for ``model``; use it in a ``with`` block or call ``release()``."""
    return lookup(EXPLAINERS, "explainer", name)(model, **kwargs)
