"""Explanation images of classified faces: one rendering for every front end (command line PNG files, the
upload widget and its web page), so that each shows exactly the same picture.

- ``bcos``: the B-cos colour explanation (Böhle, Fritz, Schiele, "B-cos Networks: Alignment is All We Need
  for Interpretability", CVPR 2022; Böhle, Singh, Fritz, Schiele, TPAMI 2024: B-cos-v2's
  ``gradient_to_image``, here ``nbhelpers.explain.bcos.colour_explanation``), the dynamic weights W(x) in
  colour where they contribute positively, alpha-composited over the face chip dimmed to a dark grey
  (``BACKDROP``): the papers show the RGBA explanation on a plain background; the faint face keeps the
  places of the evidence readable while the explanation's own colours stand out.
- every other method (Grad-CAM, Grad-CAM++, XGrad-CAM, B-cos contribution maps without the colour image,
  random): a heat overlay of the map's positive part (``nbhelpers.explain.plots.overlay``, jet, alpha 0.5).

Images are uint8 RGB at the chip's size; files are PNG, written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as functional
from PIL import Image

from nbhelpers.explain.plots import overlay
from nbhelpers.predict.results import FaceResult
from nbhelpers.utils.atomic import atomic_write_bytes

__all__ = ["BACKDROP", "bcos_image", "heat_image", "explanation_image", "write_explanation_image"]

BACKDROP = 0.35  # brightness of the grey face under the B-cos colour explanation (0: black, 1: the grey face)


def _resized(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float (h, w) or (h, w, C) array resized bilinearly to (height, width[, C]), float32."""
    tensor = torch.as_tensor(np.asarray(array, dtype=np.float32))
    channels = tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor[None]
    resized = functional.interpolate(channels[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return (resized.permute(1, 2, 0) if tensor.dim() == 3 else resized[0]).numpy()


def bcos_image(chip: np.ndarray, colour: np.ndarray, backdrop: float = BACKDROP) -> np.ndarray:
    """The B-cos colour explanation ``colour`` (float RGBA (h, w, 4) in 0..1, any size) composited over the
    uint8 face ``chip`` (H, W, 3) turned grey and dimmed to ``backdrop``; returns uint8 (H, W, 3).

    Raises ``ValueError`` when ``colour`` is not RGBA."""
    chip = np.asarray(chip)
    if np.ndim(colour) != 3 or np.shape(colour)[2] != 4:
        raise ValueError(f"the B-cos colour explanation must be RGBA (h, w, 4), not of shape {np.shape(colour)}")
    rgba = _resized(colour, *chip.shape[:2]).clip(0, 1)
    grey = (chip.astype(np.float32) / 255.0).mean(axis=2, keepdims=True) * backdrop
    alpha = rgba[..., 3:]
    return ((alpha * rgba[..., :3] + (1 - alpha) * grey) * 255).round().clip(0, 255).astype(np.uint8)


def heat_image(chip: np.ndarray, attribution: np.ndarray) -> np.ndarray:
    """The positive part of the (h, w) map ``attribution`` as a jet heat overlay on the uint8 face ``chip``
    (H, W, 3), the map resized to the chip; returns uint8 (H, W, 3)."""
    chip = np.asarray(chip)
    heat = _resized(attribution, *chip.shape[:2])
    return (overlay(chip / 255.0, heat) * 255).round().astype(np.uint8)


def explanation_image(face: FaceResult) -> np.ndarray | None:
    """The explanation of ``face`` drawn over its chip (uint8 (H, W, 3)): the B-cos colour image when the
    face has one, else the heat overlay of its map; None when the face has no explanation.

    Raises ``ValueError`` when the face has an explanation but no chip (predict with ``keep_chips=True``)."""
    if face.attribution is None and face.explanation_image is None:
        return None
    if face.chip is None:
        raise ValueError("the face's chip was not kept: predict with keep_chips=True to draw its explanation")
    if face.explanation_image is not None:
        return bcos_image(face.chip, face.explanation_image)
    return heat_image(face.chip, face.attribution)


def write_explanation_image(face: FaceResult, path: str | Path) -> Path:
    """Write ``explanation_image(face)`` to ``path`` as a PNG, atomically; returns the path.

    Raises ``ValueError`` when the face has no explanation or no chip."""
    image = explanation_image(face)
    if image is None:
        raise ValueError(f"{path}: the face has no explanation to write (predict with explain=<method>)")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
