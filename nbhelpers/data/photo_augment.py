"""Real-photo degradations for training: make UTKFace chips look like the chips the predict path cuts from photos.

UTKFace's chips are clean, well lit, centred by the dataset's own aligner. A chip cut from a user's
photo by ``nbhelpers.predict.FaceDetector`` differs in four ways, each imitated here on whole uint8
batches from the cache (no decoding, no per-image Python except the JPEG round trip):

- **detector jitter**: the HOG box is off by a few percent in scale and position and the alignment
  leaves a small roll, so a random affine map (zoom, shift, rotation; reflected borders) per face;
- **resolution and blur**: faces far from the camera or out of focus, so a Gaussian blur of random
  width per face (a grouped convolution: one kernel per face and channel);
- **JPEG loss**: an encode/decode round trip at a random quality (Pillow's libjpeg);
- **lighting and camera colour**: random brightness, contrast, gamma, saturation, per-channel gain
  (white balance), sensor noise and, rarely, grayscale.

Each degradation is applied to a random share of the faces (``PhotoDegradation`` holds the ranges and
probabilities). This follows the practice of synthetic degradation models for real-world images
(e.g. Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021: blur, resize, noise and JPEG in random order and strength). ``AUGMENTATIONS`` maps names to
batch functions, looked up by ``TrainConfig.augment``: ``photo`` (these degradations), ``context`` and
``context_quarter`` (``nbhelpers.data.context_swap``: the surroundings of the inner face taken from another
face, for half or a quarter of the faces).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as functional
from PIL import Image

from nbhelpers.data.context_swap import ContextSwap, swap_context
from nbhelpers.utils.registry import lookup

__all__ = ["PhotoDegradation", "AUGMENTATIONS", "degrade_photos", "build_augmentation",
           "random_affine", "random_blur", "random_lighting", "jpeg_round_trip"]

MaybeGenerator = torch.Generator | None


@dataclass(frozen=True)
class PhotoDegradation:
    """Ranges and probabilities of the degradations (the defaults are the ones the suite trains with)."""

    jitter_probability: float = 0.8
    zoom: tuple[float, float] = (0.85, 1.2)  # > 1 zooms out (the face gets smaller in the chip)
    shift: float = 0.06  # largest shift, as a fraction of the chip side
    rotation_degrees: float = 8.0
    blur_probability: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.6)  # in pixels of a 96 px chip; scaled with the chip size
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 90)
    lighting_probability: float = 0.8
    brightness: float = 0.3  # factor in 1 +- brightness
    contrast: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.4)
    saturation: float = 0.4
    colour_gain: float = 0.08  # per-channel gain in 1 +- colour_gain (white balance)
    noise_probability: float = 0.3
    noise_sigma: float = 0.03
    grayscale_probability: float = 0.05


def _uniform(count: int, low: float, high: float, generator: MaybeGenerator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def _chosen(count: int, probability: float, generator: MaybeGenerator) -> torch.Tensor:
    return torch.rand(count, generator=generator) < probability


def random_affine(images: torch.Tensor, settings: PhotoDegradation, generator: MaybeGenerator = None) -> torch.Tensor:
    """Zoom, shift and rotate ``jitter_probability`` of the float NCHW images at random, reflecting at borders."""
    count = images.shape[0]
    zoom = _uniform(count, *settings.zoom, generator)
    angle = _uniform(count, -settings.rotation_degrees, settings.rotation_degrees, generator) * math.pi / 180
    # in grid units, where the side is 2
    shift = _uniform(2 * count, -2 * settings.shift, 2 * settings.shift, generator).view(count, 2)
    keep = ~_chosen(count, settings.jitter_probability, generator)
    zoom[keep], angle[keep], shift[keep] = 1.0, 0.0, 0.0
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = zoom * torch.cos(angle), -zoom * torch.sin(angle)
    theta[:, 1, 0], theta[:, 1, 1] = zoom * torch.sin(angle), zoom * torch.cos(angle)
    theta[:, :, 2] = shift
    grid = functional.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return functional.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_blur(images: torch.Tensor, settings: PhotoDegradation, generator: MaybeGenerator = None) -> torch.Tensor:
    """Gaussian blur of random width on ``blur_probability`` of the float NCHW images: one grouped convolution
    (one kernel per image and channel) over the chosen ones."""
    count, channels, height, _ = images.shape
    chosen = torch.nonzero(_chosen(count, settings.blur_probability, generator)).flatten()
    if not len(chosen):
        return images
    scale = height / 96.0
    sigma = _uniform(len(chosen), *settings.blur_sigma, generator).to(images.dtype) * scale
    radius = max(1, int(math.ceil(2.5 * settings.blur_sigma[1] * scale)))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    weights = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0).to(images.device)
    groups = len(chosen) * channels
    flat = functional.pad(images[chosen].reshape(1, groups, *images.shape[2:]), (radius,) * 4, mode="reflect")
    flat = functional.conv2d(flat, weights[:, None, None, :], groups=groups)
    flat = functional.conv2d(flat, weights[:, None, :, None], groups=groups)
    images = images.clone()
    images[chosen] = flat.view(len(chosen), channels, *images.shape[2:])
    return images


def random_lighting(images: torch.Tensor, settings: PhotoDegradation, generator: MaybeGenerator = None) -> torch.Tensor:
    """Gamma, colour gain (white balance), brightness, contrast and saturation on ``lighting_probability`` of the
    float NCHW images in 0..1, sensor noise on ``noise_probability`` of them, grayscale on a few."""
    count = images.shape[0]
    images = images.clamp(0, 1)
    lit = torch.nonzero(_chosen(count, settings.lighting_probability, generator)).flatten()
    if len(lit):
        def factor(spread: float, channels: int = 1) -> torch.Tensor:
            return _uniform(len(lit) * channels, 1 - spread, 1 + spread, generator).view(-1, channels, 1, 1).to(images)

        gamma = _uniform(len(lit), *settings.gamma, generator).view(-1, 1, 1, 1).to(images)
        part = images[lit].pow(gamma) * factor(settings.colour_gain, 3) * factor(settings.brightness)
        mean = part.mean(dim=(1, 2, 3), keepdim=True)
        part = (part - mean) * factor(settings.contrast) + mean
        gray = part.mean(dim=1, keepdim=True)
        images[lit] = ((part - gray) * factor(settings.saturation) + gray).clamp(0, 1)
    noisy = torch.nonzero(_chosen(count, settings.noise_probability, generator)).flatten()
    if len(noisy):
        sigma = _uniform(len(noisy), 0, settings.noise_sigma, generator).view(-1, 1, 1, 1)
        noise = torch.randn((len(noisy), *images.shape[1:]), generator=generator) * sigma
        images[noisy] = (images[noisy] + noise.to(images)).clamp(0, 1)
    gray = torch.nonzero(_chosen(count, settings.grayscale_probability, generator)).flatten()
    images[gray] = images[gray].mean(dim=1, keepdim=True).expand(-1, images.shape[1], -1, -1)
    return images


def jpeg_round_trip(batch: torch.Tensor, settings: PhotoDegradation, generator: MaybeGenerator = None) -> torch.Tensor:
    """JPEG-encode and decode ``jpeg_probability`` of the uint8 NCHW images at a random quality each."""
    chosen = torch.nonzero(_chosen(batch.shape[0], settings.jpeg_probability, generator)).flatten()
    quality = torch.randint(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1, (len(chosen),), generator=generator)
    out = batch.clone()
    for index, level in zip(chosen.tolist(), quality.tolist()):
        buffer = io.BytesIO()
        Image.fromarray(batch[index].permute(1, 2, 0).cpu().numpy()).save(buffer, format="JPEG", quality=level)
        decoded = np.array(Image.open(buffer).convert("RGB"))  # a writable copy
        out[index] = torch.from_numpy(decoded).permute(2, 0, 1).to(batch.device)
    return out


def degrade_photos(batch: torch.Tensor, settings: PhotoDegradation = PhotoDegradation(),
                   generator: MaybeGenerator = None) -> torch.Tensor:
    """uint8 NHWC batch (as the cache stores it) -> the same batch degraded like chips of real photos."""
    images = batch.permute(0, 3, 1, 2).float().div_(255.0)
    images = random_affine(images, settings, generator)
    images = random_blur(images, settings, generator)
    images = random_lighting(images, settings, generator)
    degraded = images.mul_(255.0).round_().to(torch.uint8).contiguous()
    return jpeg_round_trip(degraded, settings, generator).permute(0, 2, 3, 1)


AUGMENTATIONS: dict[str, Callable[[torch.Tensor, MaybeGenerator], torch.Tensor] | None] = {
    "": None,  # the pipeline's own augmentation only
    "photo": lambda batch, generator: degrade_photos(batch, PhotoDegradation(), generator),
    "context": lambda batch, generator: swap_context(batch, ContextSwap(), generator),  # nbhelpers.data.context_swap
    "context_quarter": lambda batch, generator: swap_context(batch, ContextSwap(probability=0.25), generator),
}


def build_augmentation(name: str, seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The batch augmentation ``name`` (uint8 NHWC -> uint8 NHWC) with its own seeded generator, or None."""
    augment = lookup(AUGMENTATIONS, "augmentation", name)
    if augment is None:
        return None
    generator = torch.Generator().manual_seed(seed)
    return lambda batch: augment(batch, generator)
