"""Batch augmentation pipelines, applied to whole uint8 batches from the cache (fast on CPU and GPU).

Named pipelines (``PIPELINES``: name -> ``Pipeline``, looked up by ``build_pipeline`` and ``pipeline_statistics``):
- ``pad_crop_flip``: pad 4 (reflect) + random crop + horizontal flip + per-channel normalisation
  with the training split's statistics (the classic ResNet-9 recipe);
- ``finetune``: resize to the model's input size + flip + ImageNet normalisation;
- ``bcos``: pad/crop/flip, then the B-cos input encoding [r, g, b, 1-r, 1-g, 1-b] with no mean/std
  normalisation (Böhle, Fritz, Schiele, CVPR 2022 / TPAMI 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as functional

from nbhelpers.utils.registry import lookup

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "PIPELINES", "channel_stats", "to_float", "normalize", "random_crop_flip",
    "random_flip", "resize", "bcos_encode", "Pipeline", "build_pipeline", "pipeline_statistics",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Transform = Callable[[torch.Tensor], torch.Tensor]


def channel_stats(images: np.ndarray, rows: Sequence[int], chunk: int = 2048) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in 0..1) of ``images[rows]``, read in chunks from a memory map."""
    rows = np.sort(np.asarray(rows))
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for start in range(0, len(rows), chunk):
        block = images[rows[start:start + chunk]].astype(np.float64) / 255.0
        total += block.sum(axis=(0, 1, 2))
        total_sq += (block ** 2).sum(axis=(0, 1, 2))
        count += block.shape[0] * block.shape[1] * block.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (as stored in the cache) to float NCHW in 0..1."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Subtract the per-channel mean and divide by the std."""
    mean_t = torch.as_tensor(mean, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
    return batch.sub(mean_t).div_(std_t)


def random_flip(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2."""
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    out = batch.clone()
    out[flip.to(batch.device)] = batch[flip.to(batch.device)].flip(-1)
    return out


def _reflect_index(length: int, padding: int, device: torch.device) -> torch.Tensor:
    index = torch.arange(-padding, length + padding, device=device).abs()
    return torch.where(index >= length, 2 * (length - 1) - index, index)


def random_crop_flip(batch: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reflect-pad by ``padding``, take a random crop of the original size per image, flip half of them.

    Works on NCHW batches of any dtype (uint8 straight from the cache is fastest): padding, crop and
    flip are a single gather per batch.
    """
    count, _, height, width = batch.shape
    device = batch.device
    offsets = torch.randint(0, 2 * padding + 1, (count, 2), generator=generator).to(device)
    flip = (torch.rand(count, generator=generator) < 0.5).to(device)
    columns = torch.arange(width, device=device).expand(count, width)
    columns = torch.where(flip[:, None], columns.flip(-1), columns)
    rows = _reflect_index(height, padding, device)[offsets[:, 0, None] + torch.arange(height, device=device)]
    columns = _reflect_index(width, padding, device)[offsets[:, 1, None] + columns]
    images = torch.arange(count, device=device)[:, None, None]
    channels_last = batch.permute(0, 2, 3, 1)
    return channels_last[images, rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2)


def resize(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize (antialiased) to ``size`` x ``size``; a no-op at the same size."""
    if batch.shape[-1] == size and batch.shape[-2] == size:
        return batch
    return functional.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def bcos_encode(batch: torch.Tensor) -> torch.Tensor:
    """The B-cos input encoding: concatenate the image and its inverse, [r, g, b, 1-r, 1-g, 1-b]."""
    return torch.cat([batch, 1.0 - batch], dim=1)


def _unit_images(batch: torch.Tensor, train: bool, crop: bool, input_size: int | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in 0..1: random crop and flip on the uint8 pixels (``crop``, training only),
    resize to ``input_size``, or a random flip after resizing (training without ``crop``)."""
    images = batch.permute(0, 3, 1, 2)  # a view: uint8 NCHW
    if train and crop:
        images = random_crop_flip(images, 4, generator)
    images = images.contiguous().float().div_(255.0)
    if input_size is not None:
        images = resize(images, input_size)
    if train and not crop:
        images = random_flip(images, generator)
    return images


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline: ``crop`` (random crop + flip of the uint8 pixels in training, else a flip after
    resizing), ``finish`` (float images, mean, std -> model input) and ``statistics`` (images, training rows
    -> the (mean, std) it normalises with). Calling it builds the batch transform."""

    crop: bool
    finish: Callable[[torch.Tensor, Sequence[float] | None, Sequence[float] | None], torch.Tensor]
    statistics: Callable[[np.ndarray, Sequence[int]], tuple[tuple[float, ...] | None, ...]]
    needs_statistics: bool = False  # normalised with the training split's mean and std

    def __call__(self, train: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
                 input_size: int | None, generator: torch.Generator | None) -> Transform:
        return lambda batch: self.finish(_unit_images(batch, train, self.crop, input_size, generator), mean, std)


PIPELINES: dict[str, Pipeline] = {
    "pad_crop_flip": Pipeline(True, normalize, channel_stats, needs_statistics=True),
    "finetune": Pipeline(False, lambda images, mean, std: normalize(images, IMAGENET_MEAN, IMAGENET_STD),
                         lambda images, rows: (IMAGENET_MEAN, IMAGENET_STD)),
    "bcos": Pipeline(True, lambda images, mean, std: bcos_encode(images), lambda images, rows: (None, None)),
}


def build_pipeline(name: str, train: bool, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   input_size: int | None = None, generator: torch.Generator | None = None) -> Transform:
    """The batch transform ``name`` for training (augmenting) or evaluation (deterministic).

    Input: uint8 NHWC from the cache; output: float NCHW ready for the model.
    """
    pipeline = lookup(PIPELINES, "pipeline", name)
    if pipeline.needs_statistics and (mean is None or std is None):
        raise ValueError(f"{name} needs the training split's mean and std (see channel_stats)")
    return pipeline(train, mean, std, input_size, generator)


def pipeline_statistics(name: str, images: np.ndarray, train_rows: Sequence[int]) -> tuple[tuple[float, ...] | None, ...]:
    """The (mean, std) pipeline ``name`` normalises with: the training split's for ``pad_crop_flip``,
    ImageNet's for ``finetune``, none for ``bcos`` (its encoding is not normalised)."""
    return lookup(PIPELINES, "pipeline", name).statistics(images, train_rows)
