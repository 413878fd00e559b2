"""Faithfulness of explanation maps: deletion and insertion curves, and ROAD.

Deletion and insertion: Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018. Pixels are removed (replaced by a baseline) or inserted (into the
baseline) in the order of the map, most relevant first, in ``steps`` equal parts; the curve tracks
the probability of the explained class. A faithful map has a low deletion AUC and a high insertion
AUC. All perturbed copies of a batch go through the model in a few large forward passes.

ROAD: Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022, with the building blocks of ``pytorch_grad_cam.metrics.road``
(``NoisyLinearImputer`` fills the removed pixels from their neighbours, which avoids the
class-information leak of fixed baselines; ``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst``
pick them). For each percentile p the most relevant (MoRF) or the least relevant (LeRF) 100 - p % of
pixels are imputed; ``road_combined = (road_lerf - road_morf) / 2`` is higher for better maps, as
``ROADCombined`` computes it. The forward passes are batched here (``ROADCombined`` runs the model on
the unperturbed batch again for every percentile), which halves the model time.

Ties (e.g. the zeros of a ReLU'd CAM) are broken in a seeded random order, in both metrics.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms.functional as vision_functional
from pytorch_grad_cam.metrics.perturbation_confidence import (
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from nbhelpers.explain.base import is_bcos_model, model_probabilities

__all__ = ["ROAD_PERCENTILES", "relevance_ranks", "perturbation_baseline", "deletion_insertion", "road_scores"]

ROAD_PERCENTILES: tuple[int, ...] = (20, 40, 60, 80)
Baseline = str | float | torch.Tensor


def relevance_ranks(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Rank of every pixel (N, H, W): 0 for the most relevant; ties in a seeded random order."""
    count, height, width = maps.shape
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.randperm(height * width, generator=generator).to(maps.device)
    flat = maps.detach().reshape(count, -1)[:, shuffle]
    order = shuffle[torch.argsort(flat, dim=1, descending=True, stable=True)]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(height * width, device=maps.device).expand(count, -1))
    return ranks.reshape(count, height, width)


def perturbation_baseline(images: torch.Tensor, baseline: Baseline = "mean") -> torch.Tensor:
    """The replacement values (N, C, H, W) for removed pixels, in the model's input space.

    ``"mean"``: each image's per-channel mean (a flat image); ``"blur"``: a Gaussian blur with sigma
    = size / 8 (RISE's insertion start); ``"zero"``, a number or a tensor: that value. Both named
    baselines act per channel and commute with normalisation and the B-cos encoding; ``"zero"`` is the
    dataset mean for normalised inputs but not a valid B-cos encoding.
    """
    if isinstance(baseline, torch.Tensor):
        return baseline.to(images.device, images.dtype).expand_as(images)
    if isinstance(baseline, (int, float)):
        return torch.full_like(images, float(baseline))
    if baseline == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if baseline == "zero":
        return torch.zeros_like(images)
    if baseline == "blur":
        sigma = max(images.shape[-1], images.shape[-2]) / 8
        kernel = 2 * int(2 * sigma) + 1
        return vision_functional.gaussian_blur(images, [kernel, kernel], [sigma, sigma])
    raise ValueError(f"baseline must be 'mean', 'blur', 'zero', a number or a tensor, not {baseline!r}")


def _target_probabilities(model: nn.Module, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return model_probabilities(model, model(batch)).gather(1, targets[:, None]).squeeze(1)


def _auc(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under curves sampled at equal steps of the fraction 0..1."""
    return ((curves[:, 1:] + curves[:, :-1]) / 2).mean(dim=1)


def deletion_insertion(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                       steps: int = 16, baseline: Baseline = "mean", batch_size: int = 512,
                       seed: int = 0) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves (N, steps + 1) and their AUCs (N,) for ``maps`` of ``images``.

    ``images`` are model inputs (N, C, H, W); ``targets`` the explained classes. Point k of a curve is
    the target probability with the top k / steps of pixels removed (deletion) or kept (insertion).
    ``batch_size`` bounds the number of perturbed images per forward pass. Returns CPU tensors.
    """
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    device = next(model.parameters()).device
    images, maps = images.detach().to(device), maps.detach().to(device)
    targets = torch.as_tensor(targets, device=device).long().reshape(-1)
    count, pixels = images.shape[0], images.shape[-1] * images.shape[-2]
    ranks = relevance_ranks(maps, seed)[:, None]  # (N, 1, H, W)
    fill = perturbation_baseline(images, baseline)
    thresholds = [round(step * pixels / steps) for step in range(1, steps)]  # the two ends are shared
    variants = 2 * len(thresholds) + 2
    per_chunk = max(1, batch_size // variants)
    deletion, insertion = [], []
    with torch.no_grad():
        for start in range(0, count, per_chunk):
            part = slice(start, start + per_chunk)
            image, rank, base = images[part], ranks[part], fill[part]
            chosen = torch.stack([rank < threshold for threshold in thresholds], dim=1)  # (n, steps-1, 1, H, W)
            deleted = torch.where(chosen, base[:, None], image[:, None])
            inserted = torch.where(chosen, image[:, None], base[:, None])
            batch = torch.cat([image[:, None], base[:, None], deleted, inserted], dim=1).flatten(0, 1)
            scores = _target_probabilities(model, batch, targets[part].repeat_interleave(variants))
            scores = scores.reshape(-1, variants).float().cpu()
            original, flat, middle = scores[:, :1], scores[:, 1:2], scores[:, 2:].reshape(-1, 2, len(thresholds))
            deletion.append(torch.cat([original, middle[:, 0], flat], dim=1))
            insertion.append(torch.cat([flat, middle[:, 1], original], dim=1))
    deletion_curves, insertion_curves = torch.cat(deletion), torch.cat(insertion)
    return {"deletion": deletion_curves, "insertion": insertion_curves, "deletion_auc": _auc(deletion_curves),
            "insertion_auc": _auc(insertion_curves)}


def road_scores(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                percentiles: Sequence[int] = ROAD_PERCENTILES, seed: int = 0,
                batch_size: int = 512) -> dict[str, torch.Tensor]:
    """ROAD on ``images`` (model inputs): mean change of the target probability, (N,) CPU tensors each.

    ``road_morf`` (removing the most relevant pixels; lower is better), ``road_lerf`` (removing the
    least relevant; higher is better) and ``road_combined = (road_lerf - road_morf) / 2``, averaged
    over ``percentiles``. B-cos models are given the plain RGB channels (they encode them), so the
    imputation cannot break the [x, 1 - x] encoding. The imputation noise is seeded without touching
    the global random state. The imputer runs on the CPU (about 15 ms per 48 px image and percentile).
    """
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
    device = next(model.parameters()).device
    inputs = images.detach().to(device)
    if is_bcos_model(model) and inputs.shape[1] == 6:
        inputs = inputs[:, :3].contiguous()
    # ROAD thresholds by percentile: ranks keep the order and give every pixel a distinct value
    relevance = 1.0 - relevance_ranks(maps.cpu(), seed).float() / (maps.shape[-1] * maps.shape[-2])
    relevance_array = np.ascontiguousarray(relevance.numpy(), dtype=np.float32)
    targets = torch.as_tensor(targets, device=device).long().reshape(-1)
    imputer = NoisyLinearImputer()
    perturbed = []
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # the imputer's noise uses torch's generator
        torch.manual_seed(seed)
        # grad-cam converts a torch mask with np.float32(), which NumPy 2 deprecates; harmless, and not ours to fix
        warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)
        for percentile in percentiles:
            for removal in (RemoveMostRelevantFirst(percentile=percentile, imputer=imputer),
                            RemoveLeastRelevantFirst(percentile=percentile, imputer=imputer)):
                perturbed.append(torch.stack([removal(input_tensor=image.cpu(), mask=torch.from_numpy(mask))
                                              for image, mask in zip(inputs, relevance_array)]))
    batch = torch.cat([inputs.cpu()[None], torch.stack(perturbed)]).flatten(0, 1).to(device)
    with torch.no_grad():
        scores = torch.cat([_target_probabilities(model, batch[start:start + batch_size],
                                                  targets.repeat(len(perturbed) + 1)[start:start + batch_size])
                            for start in range(0, len(batch), batch_size)]).float().cpu()
    scores = scores.reshape(len(perturbed) + 1, -1)
    changes = (scores[1:] - scores[0]).reshape(len(percentiles), 2, -1)  # (percentile, MoRF / LeRF, N)
    morf, lerf = changes[:, 0].mean(0), changes[:, 1].mean(0)
    return {"road_morf": morf, "road_lerf": lerf, "road_combined": (lerf - morf) / 2}
