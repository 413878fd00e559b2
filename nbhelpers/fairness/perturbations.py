"""Controlled changes of aligned face chips, to see which image property moves the model's p(male) for women
and for men (e.g. whether blur or a wider crop pushes women towards "male").

Each entry of ``PERTURBATIONS`` maps a uint8 (H, W, 3) RGB chip to one of the same shape and dtype:
``original`` (unchanged); ``wider_1.25`` / ``tighter_0.8`` re-crop a window 1.25 / 0.8 times the chip's side
around its centre (edge pixels repeated beyond the chip) and resize it back (PIL bilinear, antialiased when
shrinking), so the face looks smaller / larger; ``blur_1`` / ``blur_2`` apply a Gaussian blur of sigma 1 / 2 px
(OpenCV, reflected borders); ``jpeg_20`` re-encodes as JPEG at quality 20 (PIL, libjpeg); ``grayscale`` keeps
the ITU-R BT.601 luma in all three channels; ``darker_0.6`` / ``brighter_1.4`` scale every value by 0.6 / 1.4,
clipped to [0, 255]. The changes mirror common differences between phone photos and dataset crops (framing,
focus, compression, colour, exposure), as in the corruption benchmarks of Hendrycks and Dietterich (ICLR 2019).

``perturbation_table`` runs a prediction function on the original chips and on each change and reports per change
and gender the accuracy, mean p(male) and the mean per-face shift of p(male) from the original, with a
percentile-bootstrap interval (``mean_interval``).
"""

from __future__ import annotations

import functools
import io
import zlib
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image

from nbhelpers.data.manifest import GENDERS
from nbhelpers.fairness.bias import mean_interval
from nbhelpers.models.inference import flip_averaged_probabilities

__all__ = ["PERTURBATIONS", "recrop", "gaussian_blur", "jpeg", "grayscale", "brightness", "perturb",
           "perturbation_table", "predict_male_probability"]

MALE = GENDERS.index("male")


def _check(chip: np.ndarray) -> np.ndarray:
    chip = np.asarray(chip)
    if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3:
        raise ValueError(f"chip must be a uint8 (H, W, 3) RGB array, got {chip.dtype} {chip.shape}")
    return chip


def recrop(chip: np.ndarray, scale: float) -> np.ndarray:
    """The window of ``scale`` times the chip's side around its centre, resized back to the chip's size (uint8
    (H, W, 3)); ``scale`` > 1 widens (edge pixels repeated), < 1 tightens. Raises ``ValueError`` for scale <= 0."""
    chip = _check(chip)
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    height, width = chip.shape[:2]
    pad = int(np.ceil(max(height, width) * max(scale - 1, 0) / 2)) + 1
    padded = Image.fromarray(np.pad(chip, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    centre_x, centre_y = pad + width / 2, pad + height / 2
    box = (centre_x - width * scale / 2, centre_y - height * scale / 2,
           centre_x + width * scale / 2, centre_y + height * scale / 2)
    return np.asarray(padded.resize((width, height), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)


def gaussian_blur(chip: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` px (kernel of OpenCV's default size), uint8 (H, W, 3)."""
    return cv2.GaussianBlur(_check(chip), (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def jpeg(chip: np.ndarray, quality: int) -> np.ndarray:
    """The chip after a JPEG round trip at ``quality`` (1-95, PIL), uint8 (H, W, 3)."""
    buffer = io.BytesIO()
    Image.fromarray(_check(chip)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.uint8)


def grayscale(chip: np.ndarray) -> np.ndarray:
    """The ITU-R BT.601 luma (PIL's "L") repeated in three channels, uint8 (H, W, 3)."""
    return np.asarray(Image.fromarray(_check(chip)).convert("L").convert("RGB"), dtype=np.uint8)


def brightness(chip: np.ndarray, factor: float) -> np.ndarray:
    """Every value times ``factor``, rounded and clipped to [0, 255], uint8 (H, W, 3)."""
    return np.clip(np.round(_check(chip).astype(np.float64) * factor), 0, 255).astype(np.uint8)


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "original": lambda chip: _check(chip).copy(),
    "wider_1.25": functools.partial(recrop, scale=1.25),
    "tighter_0.8": functools.partial(recrop, scale=0.8),
    "blur_1": functools.partial(gaussian_blur, sigma=1.0),
    "blur_2": functools.partial(gaussian_blur, sigma=2.0),
    "jpeg_20": functools.partial(jpeg, quality=20),
    "grayscale": grayscale,
    "darker_0.6": functools.partial(brightness, factor=0.6),
    "brighter_1.4": functools.partial(brightness, factor=1.4),
}


def perturb(chips: np.ndarray | Sequence[np.ndarray], name: str) -> np.ndarray:
    """The change ``name`` of ``PERTURBATIONS`` applied to each uint8 (H, W, 3) chip: uint8 (N, H, W, 3).

    Raises ``KeyError`` naming the known changes for an unknown name, ``ValueError`` for a bad chip."""
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; known: {list(PERTURBATIONS)}")
    return np.stack([PERTURBATIONS[name](chip) for chip in chips])


def _male_probability(predict_fn: Callable[[np.ndarray], np.ndarray], chips: np.ndarray) -> np.ndarray:
    output = np.asarray(predict_fn(chips), dtype=np.float64)
    if output.ndim == 2 and output.shape == (len(chips), len(GENDERS)):
        output = output[:, MALE]
    if output.shape != (len(chips),):
        raise ValueError(f"predict_fn must return p(male) (N,) or probabilities (N, {len(GENDERS)}) for "
                         f"{len(chips)} chips, got shape {output.shape}")
    return output


def _rows(name: str, probability: np.ndarray, original: np.ndarray, labels: np.ndarray, genders: np.ndarray,
          bootstrap: int) -> list[dict]:
    rows = []
    for group in ["all", *sorted(set(genders.tolist()))]:
        chosen = np.ones(len(labels), bool) if group == "all" else genders == group
        shift = probability[chosen] - original[chosen]
        low, high = mean_interval(shift, bootstrap, [0, zlib.crc32(f"{name}\t{group}".encode())])
        rows.append({"perturbation": name, "gender": group, "count": int(chosen.sum()),
                     "accuracy": float(((probability[chosen] > 0.5) == (labels[chosen] == MALE)).mean()),
                     "mean_p_male": float(probability[chosen].mean()), "shift_p_male": float(shift.mean()),
                     "shift_low": low, "shift_high": high,
                     "flipped": float(((probability[chosen] > 0.5) != (original[chosen] > 0.5)).mean())})
    return rows


def perturbation_table(predict_fn: Callable[[np.ndarray], np.ndarray], chips: np.ndarray, labels: Sequence[int],
                       genders: Sequence[str], names: Sequence[str] | None = None,
                       bootstrap: int = 1000) -> pd.DataFrame:
    """Accuracy and p(male) of ``predict_fn`` on the chips under each change, per gender and for "all".

    ``predict_fn``: uint8 (N, H, W, 3) chips -> p(male) (N,) or probabilities (N, 2) in ``GENDERS`` order;
    ``chips``: uint8 (N, H, W, 3); ``labels``: (N,) true class indices (0 female, 1 male); ``genders``: (N,)
    group of each face (e.g. the gender label as text); ``names``: keys of ``PERTURBATIONS`` (default all).
    A face counts as predicted male when p(male) > 0.5 (the arg-max of two classes, ties to female).
    Columns: perturbation, gender, count, accuracy, mean_p_male, shift_p_male (mean of p(male) minus the
    original's), shift_low / shift_high (its bootstrap interval), flipped (share whose prediction changed).
    Raises ``ValueError`` when the lengths differ, ``KeyError`` for an unknown change."""
    chips = np.asarray(chips)
    labels, genders = np.asarray(labels), np.asarray(genders).astype(str)
    if not len(chips) == len(labels) == len(genders):
        raise ValueError(f"{len(chips)} chips, {len(labels)} labels and {len(genders)} genders: need one each")
    names = list(PERTURBATIONS) if names is None else list(names)
    unknown = [name for name in names if name not in PERTURBATIONS]
    if unknown:
        raise KeyError(f"unknown perturbations {unknown}; known: {list(PERTURBATIONS)}")
    original = _male_probability(predict_fn, perturb(chips, "original"))
    rows = []
    for name in names:
        probability = original if name == "original" else _male_probability(predict_fn, perturb(chips, name))
        rows.extend(_rows(name, probability, original, labels, genders, bootstrap))
    return pd.DataFrame(rows)


def predict_male_probability(model: torch.nn.Module, preprocess: Callable[[np.ndarray], torch.Tensor],
                             batch_size: int = 128, flip_tta: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """A ``predict_fn`` for ``perturbation_table`` from a model and its preprocessing (e.g. a ``TrainedModel``'s
    ``.model`` and ``.preprocess``: uint8 (N, H, W, 3) -> float model input on its device): p(male) (N,) float,
    through the suite's inference path (``flip_averaged_probabilities``; ``flip_tta`` as the predictor's)."""

    @torch.no_grad()
    def predict(chips: np.ndarray) -> np.ndarray:
        model.eval()
        parts = [flip_averaged_probabilities(model, preprocess(chips[start:start + batch_size]), flip_tta)
                 for start in range(0, len(chips), batch_size)]
        return torch.cat(parts)[:, MALE].float().cpu().numpy()

    return predict
