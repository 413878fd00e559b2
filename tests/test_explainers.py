"""Every registered model x every explainer on tiny inputs: shapes, targets, released hooks, B-cos refusal."""

import os

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from nbhelpers.explain.explainers import (
    EXPLAINERS,
    create_explainer,
    explainer_supports,
    is_bcos_model,
    list_explainers,
    random_maps,
    target_layer,
)
from nbhelpers.models import create_model, list_models

DEVICE = torch.device(os.environ.get("NBHELPERS_DEVICE", "cpu"))
SIZE = 40
NARROW = {"simple_cnn", "resnet9", "resnet18", "resnet50", "bcos_resnet18"}  # models with a ``width`` argument


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **({"width": 8} if name in NARROW else {})).to(DEVICE).eval()


def model_inputs(model: torch.nn.Module, count: int = 2, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator)
    return (torch.cat([images, 1 - images], 1) if is_bcos_model(model) else (images - 0.45) / 0.25).to(DEVICE)


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
               for module in model.modules())


@pytest.mark.parametrize("method", list_explainers())
@pytest.mark.parametrize("model_name", list_models())
def test_every_model_with_every_explainer(model_name, method):
    model = tiny_model(model_name)
    images = model_inputs(model)
    if not explainer_supports(method, model):
        assert method == "bcos" and not is_bcos_model(model)
        with pytest.raises(ValueError, match="needs a B-cos model"):
            create_explainer(method, model)
        assert hook_count(model) == 0
        return
    with create_explainer(method, model) as explainer:
        chosen = explainer(images, targets=torch.tensor([0, 1]))
        constant = explainer(images, targets=1)
        predicted = explainer(images)
        mosaic = explainer(images.repeat(1, 1, 2, 2), targets=0)  # the pointing game feeds 2x inputs
    assert hook_count(model) == 0
    assert chosen.maps.shape == (2, SIZE, SIZE) and chosen.maps.dtype == torch.float32
    assert mosaic.maps.shape == (2, 2 * SIZE, 2 * SIZE)
    for attribution in (chosen, constant, predicted, mosaic):
        assert torch.isfinite(attribution.maps).all() and attribution.method == method
        assert attribution.probabilities.shape == (2, 2)
        assert torch.allclose(attribution.probabilities.sum(1), torch.ones(2, device=attribution.probabilities.device))
    if method != "bcos":
        assert (chosen.maps >= 0).all()
    assert chosen.targets.tolist() == [0, 1] and constant.targets.tolist() == [1, 1]
    assert torch.equal(predicted.targets, predicted.predicted)
    with pytest.raises(RuntimeError, match="released"):
        explainer(images)


def test_release_removes_hooks_and_exceptions_propagate():
    model = tiny_model("resnet18")
    explainer = create_explainer("gradcam", model, input_size=SIZE)
    assert hook_count(model) == 1  # the explainer's own activation hook; grad-cam registers none
    model(model_inputs(model))  # a forward pass outside an explanation: nothing is kept
    assert explainer.activations == []
    explainer.release()
    explainer.release()
    assert hook_count(model) == 0
    with create_explainer("gradcam", model) as lazy:  # no size given: hooks go on at the first batch
        assert hook_count(model) == 0
        lazy(model_inputs(model))
        assert hook_count(model) == 1 and lazy.layer is target_layer(model, SIZE)
    assert hook_count(model) == 0
    with pytest.raises(IndexError, match="boom"):  # grad-cam's own context manager swallows this one
        with create_explainer("xgradcam", model):
            raise IndexError("boom")
    assert hook_count(model) == 0


def test_cam_matches_grad_cam_package():
    """Our gradient-to-layer path gives grad-cam's map up to its per-image min-max rescaling."""
    model = tiny_model("resnet18", seed=3)
    images = model_inputs(model, count=3, size=96)  # layer4 is 3 x 3 (1 x 1 at 32 px: a constant map)
    with create_explainer("gradcam++", model) as explainer:
        ours = explainer(images, targets=1).maps.cpu().numpy()
    with GradCAMPlusPlus(model=model, target_layers=[target_layer(model, 96)]) as package:
        theirs = package(input_tensor=images, targets=[ClassifierOutputTarget(category=1)] * 3)
    assert hook_count(model) == 0
    low, high = ours.min(axis=(1, 2), keepdims=True), ours.max(axis=(1, 2), keepdims=True)
    assert (high > low).all()
    np.testing.assert_allclose((ours - low) / (high - low), theirs, atol=2e-3)


def test_cam_takes_no_parameter_gradients():
    """The gradient goes from the target logit to the target layer only: parameters get no ``.grad``."""
    model = tiny_model("resnet9")
    with create_explainer("xgradcam", model) as explainer:
        explainer(model_inputs(model), targets="other")
    assert all(parameter.grad is None for parameter in model.parameters())


def test_registry_and_target_layers():
    assert {"gradcam", "gradcam++", "xgradcam", "bcos", "random"} <= set(EXPLAINERS)
    with pytest.raises(KeyError, match="unknown explainer"):
        create_explainer("lime", tiny_model("simple_cnn"))
    for name, size, layer in [("bcos_resnet18", 128, "layer4.1"), ("resnet50", 64, "layer3.5"), ("resnet9", 40, "res2"),
                              ("simple_cnn", 40, "features.7"), ("efficientnet_lite0", 128, "_bn1")]:
        model = tiny_model(name)
        assert target_layer(model, size) is dict(model.named_modules())[layer]
    with pytest.raises(ValueError, match="no registered CAM target layer"):
        target_layer(torch.nn.Linear(2, 2))


def test_random_maps_are_seeded():
    assert torch.equal(random_maps(2, 8, 8, seed=5), random_maps(2, 8, 8, seed=5))
    assert random_maps(3, 10, 12, cells=4).shape == (3, 10, 12)
    model = tiny_model("simple_cnn")
    with create_explainer("random", model, seed=1, cells=3) as first, create_explainer("random", model, seed=1) as second:
        images = model_inputs(model)
        coarse, fine = first(images), second(images)
    assert coarse.maps.shape == fine.maps.shape and not torch.equal(coarse.maps, fine.maps)


def test_gradcam_and_xgradcam_coincide_on_a_pooled_linear_head():
    """After ResNet-18's target layer come only average pooling and a linear map, so the gradient is the same at
    every position and the activations are non-negative (ReLU): Grad-CAM's and XGrad-CAM's channel weights are
    then proportional and both maps equal CAM. Grad-CAM++ weights differ."""
    model = tiny_model("resnet18")
    images = model_inputs(model, count=3)
    layer = model.layer4[-1]  # followed only by average pooling and the linear head
    with create_explainer("gradcam", model, layer=layer) as gradcam, create_explainer("xgradcam", model, layer=layer) as xgradcam:
        first, second = gradcam(images, targets=torch.tensor([0, 1, 1])), xgradcam(images, targets=torch.tensor([0, 1, 1]))
    assert torch.allclose(torch.as_tensor(first.maps), torch.as_tensor(second.maps), atol=1e-5)
    with create_explainer("gradcam++", model) as plus:
        assert not torch.allclose(torch.as_tensor(plus(images, targets=torch.tensor([0, 1, 1])).maps),
                                  torch.as_tensor(first.maps), atol=1e-3)
