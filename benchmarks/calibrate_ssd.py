"""Calibration: reproduce the SSD face detector's settings (``nbhelpers.predict.ssd_faces``, ``faces.SSD_THRESHOLD``).

    python benchmarks/calibrate_ssd.py --data ../shared/data/UTKFace.tar.gz --every 193 --faces 120

From UTKFace (the training data) and face-less images only; the FairFace evaluation photos are not read.

1. Box geometry: each crop centred in a 400 x 400 grey canvas (as ``calibrate_chip_padding.py``); where dlib's HOG
   (threshold -0.5) and the SSD (confidence >= 0.7) both find the face, the median HOG-box centre offset (in SSD
   widths and heights) and side (over sqrt(SSD width x height)) are ``BOX_SHIFT`` and ``BOX_SIDE``; then the median
   and mean grey-level correlation of chips cut from HOG boxes, raw SSD boxes and mapped SSD boxes.
2. Threshold: each crop pasted 90-260 px wide at a random place of a 640 x 480 textured canvas; for SSD confidences
   0.3 ... 0.9 the share of pasted faces found (a box centred on them), the boxes elsewhere on the canvases, and the
   boxes on the face-less images of ``bench_detection.faceless_images``.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from bench_detection import faceless_images, textured_background
from nbhelpers.data.datasets import default_utkface_path
from nbhelpers.data.datasets.archive import sample_archive_images
from nbhelpers.predict.faces import CHIP_PADDING, FaceDetector, landmark_model_path
from nbhelpers.predict.ssd_faces import SsdFaces, to_landmark_box

__all__ = ["box_geometry", "pasted_faces", "threshold_sweep", "main"]

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _chip_correlation(landmarks, canvas: np.ndarray, crop: np.ndarray, box: tuple) -> float:
    import dlib

    rectangle = dlib.rectangle(*(int(round(value)) for value in box))
    chip = np.asarray(dlib.get_face_chip(canvas, landmarks(canvas, rectangle), size=crop.shape[0],
                                         padding=CHIP_PADDING), dtype=np.float64)
    return float(np.corrcoef(chip.mean(axis=2).ravel(), crop.astype(np.float64).mean(axis=2).ravel())[0, 1])


def box_geometry(crops: list[np.ndarray], ssd: SsdFaces) -> None:
    """Print the fitted HOG-from-SSD box mapping and the chips' correlation with each box (module docstring)."""
    import dlib

    detector, landmarks = FaceDetector(detector="hog", threshold=-0.5), dlib.shape_predictor(landmark_model_path())
    pairs = []
    for crop in crops:
        canvas = np.full((400, 400, 3), 128, np.uint8)
        canvas[100:300, 100:300] = crop
        (_, hog), ssd_found = detector.search(canvas), ssd.boxes(canvas, 0.7)
        if hog and ssd_found:
            largest = [max((box for box, _ in found), key=lambda box: (box[2] - box[0]) * (box[3] - box[1]))
                       for found in (hog, ssd_found)]
            pairs.append((*largest, canvas, crop))
    hog_boxes, ssd_boxes = np.array([pair[0] for pair in pairs]), np.array([pair[1] for pair in pairs])
    ssd_width, ssd_height = ssd_boxes[:, 2] - ssd_boxes[:, 0], ssd_boxes[:, 3] - ssd_boxes[:, 1]
    shift_x = np.median(((hog_boxes[:, 0] + hog_boxes[:, 2]) - (ssd_boxes[:, 0] + ssd_boxes[:, 2])) / 2 / ssd_width)
    shift_y = np.median(((hog_boxes[:, 1] + hog_boxes[:, 3]) - (ssd_boxes[:, 1] + ssd_boxes[:, 3])) / 2 / ssd_height)
    side = np.median((hog_boxes[:, 2] - hog_boxes[:, 0]) / np.sqrt(ssd_width * ssd_height))
    print(f"{len(pairs)} of {len(crops)} crops found by both: BOX_SHIFT = ({shift_x:.3f}, {shift_y:.3f}), "
          f"BOX_SIDE = {side:.3f}")
    for name, pick in (("HOG box", lambda pair: pair[0]), ("raw SSD box", lambda pair: pair[1]),
                       ("mapped SSD box", lambda pair: to_landmark_box(pair[1]))):
        correlations = [_chip_correlation(landmarks, canvas, crop, pick((hog, found)))
                        for hog, found, canvas, crop in pairs]
        print(f"  chips from the {name}: median correlation {np.median(correlations):.3f}, "
              f"mean {np.mean(correlations):.3f}")


def pasted_faces(crops: list[np.ndarray]) -> list[tuple[np.ndarray, tuple]]:
    """Each crop pasted 90-260 px wide at a random place of a 640 x 480 texture: (canvas, pasted box)."""
    rng, pasted = np.random.default_rng(1), []
    for index, crop in enumerate(crops):
        canvas = textured_background(640, 480, seed=1000 + index)
        side = int(rng.integers(90, 260))
        left, top = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        canvas[top:top + side, left:left + side] = np.asarray(Image.fromarray(crop).resize((side, side)))
        pasted.append((canvas, (left, top, left + side, top + side)))
    return pasted


def centred_in(box: tuple, region: tuple) -> bool:
    return region[0] <= (box[0] + box[2]) / 2 <= region[2] and region[1] <= (box[1] + box[3]) / 2 <= region[3]


def threshold_sweep(pasted: list[tuple[np.ndarray, tuple]], ssd: SsdFaces) -> None:
    """Print recall on pasted faces and false boxes per SSD confidence (module docstring)."""
    found = []
    for canvas, region in pasted:
        found.append([(centred_in(box, region), score) for box, score in ssd.boxes(canvas, min(THRESHOLDS))])
    faceless = {name: ssd.boxes(pixels, min(THRESHOLDS)) for name, pixels in faceless_images().items()}
    for threshold in THRESHOLDS:
        recall = np.mean([any(hit and score >= threshold for hit, score in boxes) for boxes in found])
        elsewhere = sum(not hit and score >= threshold for boxes in found for hit, score in boxes)
        false = {name: sum(score >= threshold for _, score in boxes) for name, boxes in faceless.items()}
        named = " ".join(name for name, count in false.items() if count) or "none"
        print(f"SSD >= {threshold:.1f}: pasted faces found {recall:.1%}, boxes elsewhere {elsewhere}; "
              f"face-less images: {sum(false.values())} boxes on {len(faceless)} images ({named})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="UTKFace archive (default: the project's default path)")
    parser.add_argument("--every", type=int, default=193, help="take every n-th face of the archive")
    parser.add_argument("--faces", type=int, default=120, help="how many faces")
    arguments = parser.parse_args()
    crops = sample_archive_images(arguments.data or default_utkface_path(), arguments.every, arguments.faces)
    ssd = SsdFaces()
    box_geometry(crops, ssd)
    pasted = pasted_faces(crops)
    threshold_sweep(pasted, ssd)


if __name__ == "__main__":
    main()
