"""Explanations of B-cos models: dynamic linear weights, contribution maps and colour explanations.

Böhle, Fritz, Schiele, "B-cos Networks: Alignment is All We Need for Interpretability", CVPR 2022;
Böhle, Singh, Fritz, Schiele, "B-cos Alignment for Inherently Interpretable CNNs and Vision
Transformers", TPAMI 2024 (B-cos-v2).

In explanation mode a B-cos network computes ``logit = W(x)^T x + logit_bias`` with ``W(x)`` the
gradient of the logit with respect to the encoded input, so ``(W(x) * x).sum(channels)`` is a
contribution map that sums exactly to the logit minus its bias. ``colour_explanation`` renders
``W(x)`` in colour as the papers do (B-cos-v2's ``gradient_to_image``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as functional

from nbhelpers.explain.base import Targets, model_probabilities, select_targets
from nbhelpers.models.bcos_layers import explanation_mode

__all__ = ["BcosExplanation", "explain", "colour_explanation"]


@dataclass
class BcosExplanation:
    """Explanation of one batch (all tensors detached, on the input's device).

    ``predicted`` (N,), ``probabilities`` and ``logits`` (N, classes), ``targets`` (N,) the explained
    classes, ``target_logits`` (N,) their logits, ``weights`` (N, 6, H, W) the dynamic linear weights
    W(x), ``contributions`` (N, H, W) = (W(x) * x).sum(1), ``colour`` (N, H, W, 4) RGBA in 0..1.
    """

    predicted: torch.Tensor
    probabilities: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    target_logits: torch.Tensor
    weights: torch.Tensor
    contributions: torch.Tensor
    colour: torch.Tensor


def colour_explanation(weights: torch.Tensor, image: torch.Tensor, smooth: int = 15,
                       alpha_percentile: float = 99.5) -> torch.Tensor:
    """RGBA explanation (…, H, W, 4) in 0..1 from weights W(x) and the encoded image, both (…, 6, H, W).

    Colour: each pixel's weights divided by their largest magnitude and clamped at 0, then
    ``w_c / (w_c + w_{c+3})`` per colour. Alpha: the L2 norm of the weights, zero where the
    contribution is negative, averaged over ``smooth`` x ``smooth`` windows, divided by its
    ``alpha_percentile`` percentile (per image) and clipped to 1. Accepts one image or a batch.
    """
    if smooth and smooth % 2 == 0:
        raise ValueError(f"smooth must be odd (or 0) to keep the image size, not {smooth}")
    if not 0 < alpha_percentile <= 100:
        raise ValueError(f"alpha_percentile must lie in (0, 100], not {alpha_percentile}")
    single = weights.dim() == 3
    weights, image = (weights[None], image[None]) if single else (weights, image)
    if weights.shape[1] != 6 or weights.shape != image.shape:
        raise ValueError(f"need 6-channel weights and image of one shape, got {tuple(weights.shape)} "
                         f"and {tuple(image.shape)}")
    weights, image = weights.detach(), image.detach()
    contributions = (weights * image).sum(1, keepdim=True)
    rgb = (weights / (weights.abs().amax(1, keepdim=True) + 1e-12)).clamp(min=0)
    rgb = rgb[:, :3] / (rgb[:, :3] + rgb[:, 3:] + 1e-12)
    alpha = torch.linalg.vector_norm(weights, dim=1, keepdim=True)
    alpha = torch.where(contributions < 0, torch.full_like(alpha, 1e-12), alpha)
    if smooth:
        alpha = functional.avg_pool2d(alpha, smooth, stride=1, padding=(smooth - 1) // 2)
    flat = alpha.flatten(1) if alpha.dtype in (torch.float32, torch.float64) else alpha.flatten(1).float()
    cutoff = flat.quantile(alpha_percentile / 100, dim=1).to(alpha.dtype)
    alpha = (alpha / cutoff.clamp(min=1e-12).view(-1, 1, 1, 1)).clamp(0, 1)
    result = torch.cat([rgb, alpha], dim=1).permute(0, 2, 3, 1)
    return result[0] if single else result


def explain(model: nn.Module, images: torch.Tensor, target: Targets = "predicted", smooth: int = 15,
            alpha_percentile: float = 99.5) -> BcosExplanation:
    """Explain ``model``'s logits for ``target`` on a batch of encoded (N, 6, H, W) images.

    One forward and one backward pass in explanation mode; the gradient is taken with respect to the
    input only (no parameter gradients, no hooks), and every layer's explanation flag is restored,
    also when an error is raised. Put the model in eval mode first (batch statistics would otherwise
    be used and updated).
    """
    if images.dim() != 4 or images.shape[1] != 6:
        raise ValueError(f"expected encoded images of shape (N, 6, H, W), got {tuple(images.shape)}; "
                         "use nbhelpers.data.transforms.bcos_encode")
    if model.training:
        warnings.warn("explaining a model in training mode: batch-norm statistics are updated; call model.eval()",
                      stacklevel=2)
    inputs = images.detach().clone().requires_grad_(True)
    with torch.enable_grad(), explanation_mode(model):
        logits = model(inputs)
        targets = select_targets(logits.detach(), target)
        target_logits = logits.gather(1, targets[:, None]).squeeze(1)
        (weights,) = torch.autograd.grad(target_logits.sum(), inputs)
    logits = logits.detach()
    inputs = inputs.detach()
    return BcosExplanation(predicted=logits.argmax(dim=1), probabilities=model_probabilities(model, logits),
                           logits=logits, targets=targets,
                           target_logits=target_logits.detach(), weights=weights,
                           contributions=(weights * inputs).sum(1),
                           colour=colour_explanation(weights, inputs, smooth, alpha_percentile))
