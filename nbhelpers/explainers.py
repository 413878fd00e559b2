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

The three CAM methods wrap the classes of the ``grad-cam`` package (``pytorch_grad_cam``): its hooks
record the target layer's activation, its ``get_cam_image`` computes the channel weights and the map.
Two deliberate differences from ``BaseCAM.__call__``: the gradient is taken from the target logit to
the target layer only (``torch.autograd.grad``, no parameter gradients, no backward pass through the
backbone), and the map is upsampled bilinearly without grad-cam's per-image min-max rescaling, so
shares of attribution (pointing game, face focus) are not distorted. Explainers take the model's own
input (normalised, or B-cos encoded) and own their hooks: ``release()`` or a ``with`` block removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as functional
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, XGradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from nbhelpers.bcos_explain import explain, select_targets
from nbhelpers.models.efficientnet_lite import EfficientNetLite0
from nbhelpers.models.resnet import ResNet
from nbhelpers.models.small import ResNet9, SimpleCNN
from nbhelpers.transforms import bcos_encode

__all__ = ["Attribution", "Targets", "Explainer", "CamExplainer", "GradCamExplainer", "GradCamPlusPlusExplainer",
           "XGradCamExplainer", "BcosExplainer", "RandomExplainer", "EXPLAINERS", "create_explainer",
           "list_explainers", "explainer_supports", "target_layer", "is_bcos_model", "model_probabilities", "random_maps"]

Targets = str | int | torch.Tensor


@dataclass
class Attribution:
    """Explanations of one batch (detached, on the input's device).

    ``maps`` (N, H, W) float32 at input resolution (the positive part is the evidence for the target;
    CAM maps are non-negative, B-cos maps are signed), ``targets`` (N,) the explained classes,
    ``probabilities`` (N, classes) of the unperturbed input, ``predicted`` (N,), ``method`` its name.
    """

    maps: torch.Tensor
    targets: torch.Tensor
    probabilities: torch.Tensor
    predicted: torch.Tensor
    method: str

    @property
    def target_probabilities(self) -> torch.Tensor:
        """Probability of the explained class, (N,)."""
        return self.probabilities.gather(1, self.targets[:, None]).squeeze(1)


def is_bcos_model(model: nn.Module) -> bool:
    """True for models that expect the B-cos 6-channel encoding (``bcos_encoding = True``)."""
    return bool(getattr(model, "bcos_encoding", False))


def model_probabilities(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """The model's own ``probabilities(logits)`` (softmax for every model of the suite)."""
    return model.probabilities(logits) if hasattr(model, "probabilities") else logits.softmax(dim=1)


def target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activation the CAM methods weight, chosen per architecture.

    ResNet-18/50 and B-cos ResNet-18: ``layer4[-1]`` (the last residual block). ResNet-9: ``res2``, the
    last residual branch (its gradient equals that of the block's sum ``res2(x) + x``). Simple CNN: the
    ReLU after the last convolution. EfficientNet-Lite0: ``_bn1``, the head's batch norm; the ReLU6 that
    follows runs in place on its output, so the recorded map is the activated 1280-channel head map.
    """
    if isinstance(model, ResNet):
        return model.layer4[-1]
    if isinstance(model, ResNet9):
        return model.res2
    if isinstance(model, SimpleCNN):
        return [module for module in model.features if isinstance(module, nn.ReLU)][-1]
    if isinstance(model, EfficientNetLite0):
        return model._bn1
    raise ValueError(f"no default CAM target layer for {type(model).__name__}; pass layer=<module>")


class Explainer:
    """Base class: ``explainer(images, targets)`` -> ``Attribution``; subclasses implement ``_explain``.

    ``targets``: ``"predicted"``, ``"other"`` (runner-up class), a class index, or one index per image.
    The model is put in eval mode (explanations use the running batch-norm statistics).
    """

    name: ClassVar[str] = ""

    def __init__(self, model: nn.Module) -> None:
        if not self.supports(model):
            raise ValueError(f"the {self.name!r} explainer does not apply to {type(model).__name__}")
        self.model = model.eval()
        self.released = False

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """Whether this method can explain ``model``."""
        return True

    def __call__(self, images: torch.Tensor, targets: Targets = "predicted") -> Attribution:
        if self.released:
            raise RuntimeError(f"the {self.name!r} explainer was released; create a new one")
        if images.dim() != 4:
            raise ValueError(f"expected a batch of shape (N, C, H, W), got {tuple(images.shape)}")
        device = next(self.model.parameters()).device
        maps, logits, chosen = self._explain(images.detach().to(device), targets)
        if maps.shape != (images.shape[0], *images.shape[-2:]):
            raise RuntimeError(f"{self.name}: map shape {tuple(maps.shape)} does not match the input {tuple(images.shape)}")
        logits = logits.detach()
        return Attribution(maps=maps.detach().float(), targets=chosen, probabilities=model_probabilities(self.model, logits),
                           predicted=logits.argmax(dim=1), method=self.name)

    def _explain(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(maps (N, H, W), logits (N, classes), explained classes (N,)) for a batch on the model's device."""
        raise NotImplementedError

    def release(self) -> None:
        """Remove every hook this explainer registered; calling it twice is harmless."""
        self.released = True

    def __enter__(self) -> "Explainer":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.release()  # returns None: exceptions propagate


class CamExplainer(Explainer):
    """A class-activation-map method of ``pytorch_grad_cam`` (``cam_class``) on ``layer`` (default ``target_layer``)."""

    cam_class: ClassVar[type[BaseCAM]]

    def __init__(self, model: nn.Module, layer: nn.Module | None = None) -> None:
        super().__init__(model)
        self.layer = target_layer(model) if layer is None else layer
        self.cam = self.cam_class(model, [self.layer])
        self.hooks = self.cam.activations_and_grads
        self.hooks.detach = False  # keep the live activation: the gradient is taken with respect to it

    def _explain(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs = images.clone().requires_grad_(True)  # a graph exists even for frozen parameters
        try:
            with torch.enable_grad():
                logits = self.hooks(inputs)
                if len(self.hooks.activations) != 1:
                    raise RuntimeError(f"target layer {type(self.layer).__name__} ran {len(self.hooks.activations)} "
                                       "times in one forward pass; choose a layer the model uses once")
                activation = self.hooks.activations[0]
                chosen = select_targets(logits.detach(), targets)
                (gradient,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), activation)
            categories = [ClassifierOutputTarget(int(category)) for category in chosen]
            cam = self.cam.get_cam_image(inputs, self.layer, categories, activation.detach().float().cpu().numpy(),
                                         gradient.float().cpu().numpy(), False)
        finally:
            self.hooks.activations.clear()
            self.hooks.gradients.clear()
        cam = torch.from_numpy(np.maximum(cam, 0).astype(np.float32)).to(images.device)
        maps = functional.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)
        return maps[:, 0].clamp(min=0), logits.detach(), chosen

    def release(self) -> None:
        self.hooks.release()
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
    """B-cos contribution maps ``(W(x) * x).sum(channels)`` (``nbhelpers.bcos_explain.explain``); B-cos models only."""

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


def _explainer_class(name: str) -> type[Explainer]:
    if name not in EXPLAINERS:
        raise KeyError(f"unknown explainer {name!r}; choose one of {list_explainers()}")
    return EXPLAINERS[name]


def explainer_supports(name: str, model: nn.Module) -> bool:
    """Whether the explainer ``name`` applies to ``model`` (``bcos`` needs a B-cos model)."""
    return _explainer_class(name).supports(model)


def create_explainer(name: str, model: nn.Module, **kwargs: Any) -> Explainer:
    """The explainer registered as ``name`` for ``model``; use it in a ``with`` block or call ``release()``."""
    return _explainer_class(name)(model, **kwargs)
