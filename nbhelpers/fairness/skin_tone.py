"""Apparent skin tone measured on an aligned face chip: individual typology angle (ITA) and hue angle.

ITA = arctan((L* - 50) / b*) * 180 / pi in CIELAB (Chardon, Cretois and Hourseau, "Skin colour typology and
suntanning pathways", Int. J. Cosmetic Science 13, 1991), with the six categories of Del Bino and Bernerd
(Br. J. Dermatology 169, 2013): very light > 55, light 41-55, intermediate 28-41, tan 10-28, brown -30-10,
dark < -30 degrees. ITA has been used on face datasets by Merler et al. ("Diversity in Faces", 2019); Thong,
Joniak and Xiang ("Beyond Skin Tone: A Multidimensional Measure of Apparent Skin Color", ICCV 2023) add the
hue angle h* = atan2(b*, a*) (larger: yellower, smaller: redder), which ITA alone does not capture.

The binary split ``lighter`` / ``darker`` at ``DARKER_AT_MOST`` = 28 degrees (the intermediate/tan boundary)
approximates Gender Shades' Fitzpatrick I-III vs IV-VI (Buolamwini and Gebru, FAT* 2018) through the rough
correspondence very light/light/intermediate ~ types I/II/III and tan/brown/dark ~ IV/V/VI. It is an
approximation: the Fitzpatrick scale rates a person's skin by its reaction to sun, ITA a colour in a photo.

Skin region: three fixed patches on the chip, given as fractions of its side (``SKIN_PATCHES``): both
cheeks below the eyes and beside the nose, and the middle of the forehead. The alignment is fixed by dlib's
5 landmarks (``nbhelpers.predict.faces``, padding 0.18). Re-running dlib's 5-point predictor on the chips
(landmark positions only, no labels used) puts the outer eye corners at x = 43 and 152 px, the inner ones
at 75 and 121 px, all at y = 58-60, and the base of the nose at (98, 117) on the 200 px chip (189 FairFace
dev chips in which HOG found the face again; 10-90% range within 8 px); UTKFace's own 200 px crops put
them within 2 px of these (204 of 215 crops). ``benchmarks/calibrate_skin_patches.py`` reproduces this. The cheek patches span x 44-78
and 122-156 px, y 84-114 px (a good 20 px below the eye corners, lateral to the nose); the forehead patch
x 72-128 px, y 12-34 px (above the brows). Within the patches, pixels outside the YCrCb skin-colour box of
Chai and Ngan (IEEE TCSVT 9(4), 1999: Cr 133-173, Cb 77-127) are dropped (hair, beard, glasses, hats,
background); the median L*, a*, b* of the rest gives the angles. When fewer than ``MIN_SKIN_FRACTION``
of the patch pixels pass the box, all patch pixels are used and the category is ``"unknown"`` (no skin
where skin should be: a false detection, sunglasses and a hat, a chip that is not aligned such as the
``--no-detect`` centre crops).

Colour conversion: OpenCV's ``cvtColor(RGB2LAB)`` on float32 sRGB in [0, 1] (D65 white, sRGB gamma
undone; L* in 0-100, a* and b* unscaled; the 8-bit variant would scale L* to 0-255 and offset a*, b* by
128). On 5,000 random colours it differs from scikit-image's ``rgb2lab`` by at most 0.33 units.

What it cannot tell: ITA measures the apparent colour of the skin in this photo, not a skin type.
Exposure, lighting colour, shadows, white balance, camera processing, makeup and filters all move it.
On the 270 FairFace dev photos the median ITA orders the race labels plausibly (White 24, Middle
Eastern 21, Latino 15, East Asian 8, Indian -11, Southeast Asian -11, Black -20 degrees) but the
interquartile range within one label spans about 60 degrees, and 54% of the faces labelled White fall at
or below 28 degrees (their median L* is 57, lower than colorimeter readings of such skin usually are); on
the archive's first 1,500 UTKFace crops, brighter photos, the medians run from 52 (asian) and 49 (white)
to 38 (indian) and 18 degrees (black), with 20% of white and 64% of black faces darker.
So the lighter/darker split of a photo set separates dim, warm photos from bright ones as well as skin:
use it to compare groups of photos, beside the labels, never to label a person.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import cv2
import numpy as np
import pandas as pd

__all__ = ["SkinTone", "skin_tone", "skin_tone_columns", "ita_category", "binary_tone", "individual_typology_angle",
           "hue_angle", "ITA_CATEGORIES", "DARKER_AT_MOST", "SKIN_PATCHES", "MIN_SKIN_FRACTION", "SKIN_COLUMNS",
           "UNKNOWN_TONE", "BINARY_TONES"]

# (name, lowest ITA in degrees, exclusive): a face belongs to the first category whose bound its ITA exceeds
ITA_CATEGORIES = (("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0), ("brown", -30.0),
                  ("dark", -math.inf))
DARKER_AT_MOST = 28.0  # ITA <= 28 degrees: "darker" (~ Fitzpatrick IV-VI), above: "lighter" (~ I-III)
BINARY_TONES = ("lighter", "darker")
UNKNOWN_TONE = "unknown"
# (left, top, right, bottom) as fractions of the chip side: left cheek, right cheek, forehead
SKIN_PATCHES = ((0.22, 0.42, 0.39, 0.57), (0.61, 0.42, 0.78, 0.57), (0.36, 0.06, 0.64, 0.17))
MIN_SKIN_FRACTION = 0.25
_CR_RANGE, _CB_RANGE = (133, 173), (77, 127)  # Chai and Ngan 1999
# the per-photo columns that the real-photo evaluation adds (see skin_tone_columns)
SKIN_COLUMNS = ("skin_ita", "skin_hue", "skin_tone", "skin_tone_binary")


def individual_typology_angle(lightness: float, b_star: float) -> float:
    """ITA in degrees from L* (0-100) and b*: arctan((L* - 50) / b*); +-90 when b* is 0."""
    if b_star == 0:
        return math.copysign(90.0, lightness - 50)
    return math.degrees(math.atan((lightness - 50) / b_star))


def hue_angle(a_star: float, b_star: float) -> float:
    """Hue angle h* in degrees (-180 to 180) from a* and b*: atan2(b*, a*); skin lies roughly in 30-90."""
    return math.degrees(math.atan2(b_star, a_star))


def ita_category(ita: float) -> str:
    """One of the six ITA categories (``ITA_CATEGORIES``) for an ITA in degrees; ``"unknown"`` for NaN."""
    if math.isnan(ita):
        return UNKNOWN_TONE
    return next(name for name, lowest in ITA_CATEGORIES if ita > lowest)


def binary_tone(ita: float) -> str:
    """``"darker"`` for ITA <= ``DARKER_AT_MOST`` degrees, ``"lighter"`` above; ``"unknown"`` for NaN."""
    if math.isnan(ita):
        return UNKNOWN_TONE
    return BINARY_TONES[1] if ita <= DARKER_AT_MOST else BINARY_TONES[0]


@dataclass(frozen=True)
class SkinTone:
    """The apparent skin colour of one face chip.

    ``lightness``, ``a_star``, ``b_star``: median CIELAB L* (0-100), a*, b* of the skin pixels; ``ita``:
    individual typology angle in degrees; ``hue``: hue angle h* in degrees; ``skin_fraction``: share (0-1) of
    the patch pixels inside the skin-colour box; ``category``: the ITA category, ``binary``: lighter/darker,
    both ``"unknown"`` when ``skin_fraction`` < ``MIN_SKIN_FRACTION``.
    """

    lightness: float
    a_star: float
    b_star: float
    ita: float
    hue: float
    skin_fraction: float
    category: str
    binary: str

    @property
    def reliable(self) -> bool:
        """True when enough skin-coloured pixels were found for a category."""
        return self.category != UNKNOWN_TONE

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible fields (floats rounded to 0.01)."""
        return {key: round(value, 2) if isinstance(value, float) else value for key, value in asdict(self).items()}


def _patch_pixels(chip: np.ndarray) -> np.ndarray:
    """The uint8 RGB pixels (P, 3) of the skin patches (each at least one pixel, however small the chip)."""
    height, width = chip.shape[:2]
    parts = []
    for left, top, right, bottom in SKIN_PATCHES:
        x0, y0 = int(left * width), int(top * height)
        x1, y1 = max(x0 + 1, math.ceil(right * width)), max(y0 + 1, math.ceil(bottom * height))
        parts.append(chip[y0:y1, x0:x1].reshape(-1, 3))
    return np.concatenate(parts)


def _skin_mask(pixels: np.ndarray) -> np.ndarray:
    """True for the pixels (P, 3 uint8 RGB) inside Chai and Ngan's YCrCb skin box."""
    ycrcb = cv2.cvtColor(pixels[None], cv2.COLOR_RGB2YCrCb)[0]
    red, blue = ycrcb[:, 1], ycrcb[:, 2]
    return (red >= _CR_RANGE[0]) & (red <= _CR_RANGE[1]) & (blue >= _CB_RANGE[0]) & (blue <= _CB_RANGE[1])


def skin_tone(chip: np.ndarray) -> SkinTone:
    """The ``SkinTone`` of an aligned uint8 RGB face chip (H, W, 3), e.g. ``FaceResult.chip`` (200 x 200).

    Raises ``ValueError`` for an array that is not a uint8 RGB image."""
    chip = np.asarray(chip)
    if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3:
        raise ValueError(f"skin tone needs a uint8 RGB chip (H, W, 3), got shape {chip.shape} and dtype {chip.dtype}")
    pixels = np.ascontiguousarray(_patch_pixels(chip))
    mask = _skin_mask(pixels)
    fraction = float(mask.mean())
    chosen = pixels[mask] if fraction >= MIN_SKIN_FRACTION else pixels
    lab = cv2.cvtColor(chosen[None].astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[0]
    lightness, a_star, b_star = (float(value) for value in np.median(lab, axis=0))
    ita = individual_typology_angle(lightness, b_star)
    reliable = fraction >= MIN_SKIN_FRACTION
    return SkinTone(lightness, a_star, b_star, ita, hue_angle(a_star, b_star), fraction,
                    ita_category(ita) if reliable else UNKNOWN_TONE, binary_tone(ita) if reliable else UNKNOWN_TONE)


def skin_tone_columns(chips: Sequence[np.ndarray | None]) -> pd.DataFrame:
    """One row per chip with ``SKIN_COLUMNS``: ITA and hue in degrees, the category and lighter/darker;
    a missing chip (None: no face) gives NaN angles and empty categories."""
    rows = []
    for chip in chips:
        if chip is None:
            rows.append((np.nan, np.nan, "", ""))
            continue
        tone = skin_tone(chip)
        rows.append((tone.ita, tone.hue, tone.category, tone.binary))
    return pd.DataFrame(rows, columns=list(SKIN_COLUMNS))
