"""Calibration: reproduce ``TEMPLATE_LANDMARKS`` (nbhelpers.fairness.face_regions) and check the regions.

    python benchmarks/calibrate_face_regions.py --data ../shared/data/UTKFace.tar.gz --every 237 --faces 100

Needs the ``regions`` extra (dlib's 68-point model). On a deterministic sample of real UTKFace crops (every
``--every``-th image file in archive order, decoded in memory; nothing is written):

1. the 68 landmarks started from the whole chip (as ``chip_landmarks`` does) against those started from the box
   of dlib's HOG detector (where it finds exactly one face): mean distance per face, px;
2. the template: the mean landmarks, printed as the Python constant, and each face's mean distance from it;
3. the fallback's agreement: per region, the median intersection-over-union of the template's mask and the
   face's own, and the median share of pixels given the same region;
4. the real-photo path: each crop pasted on a grey canvas and chipped again by ``FaceDetector`` (HOG, 5-point
   alignment, ``CHIP_PADDING``); the mean landmarks of those chips against the template's.
A few seconds on one core.
"""

from __future__ import annotations

import argparse

import numpy as np

from nbhelpers.data.datasets import default_utkface_path
from nbhelpers.data.datasets.archive import sample_archive_images
from nbhelpers.fairness.face_regions import (
    REGIONS, TEMPLATE_LANDMARKS, TEMPLATE_SIZE, chip_landmarks, landmark_model_68_path, region_labels,
    template_landmarks,
)
from nbhelpers.predict.faces import FaceDetector

__all__ = ["hog_box_landmarks", "template_text", "region_agreement", "rechipped_landmarks", "main"]


def hog_box_landmarks(crop: np.ndarray) -> np.ndarray | None:
    """The 68 landmarks started from dlib's HOG box, (68, 2); None unless HOG finds exactly one face."""
    import dlib

    boxes = dlib.get_frontal_face_detector()(crop, 1)
    if len(boxes) != 1:
        return None
    predictor = dlib.shape_predictor(str(landmark_model_68_path()))
    return np.array([(point.x, point.y) for point in predictor(crop, boxes[0]).parts()], dtype=np.float64)


def template_text(landmarks: np.ndarray) -> str:
    """The mean of (faces, 68, 2) landmarks at TEMPLATE_SIZE px, rounded, as the module's constant."""
    pairs = [f"({x}, {y})" for x, y in np.round(landmarks.mean(axis=0)).astype(int).tolist()]
    rows = [", ".join(pairs[start:start + 10]) + "," for start in range(0, len(pairs), 10)]
    return "TEMPLATE_LANDMARKS = (\n" + "\n".join(f"    {row}" for row in rows) + "\n)"


def region_agreement(landmarks: np.ndarray, size: int) -> tuple[dict[str, float], float]:
    """Median IoU of the template's and each face's own mask per region, and the median share of equal pixels."""
    template = region_labels(template_landmarks(size, size), size, size)
    ious: dict[str, list[float]] = {name: [] for name in REGIONS}
    equal = []
    for points in landmarks:
        own = region_labels(points, size, size)
        equal.append(float((own == template).mean()))
        for index, name in enumerate(REGIONS):
            union = ((own == index) | (template == index)).sum()
            if union:
                ious[name].append(float(((own == index) & (template == index)).sum() / union))
    return {name: float(np.median(values)) for name, values in ious.items()}, float(np.median(equal))


def rechipped_landmarks(crops: list[np.ndarray], canvas: int = 400) -> np.ndarray:
    """68 landmarks of each crop after pasting it on a grey canvas and chipping it like a real photo."""
    detector, found = FaceDetector(chip_size=crops[0].shape[0], detector="hog"), []
    for crop in crops:
        picture = np.full((canvas, canvas, 3), 128, np.uint8)
        top, left = (canvas - crop.shape[0]) // 2, (canvas - crop.shape[1]) // 2
        picture[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
        faces = detector.detect(picture)
        if faces:
            found.append(chip_landmarks(faces[0].chip))
    return np.array(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(default_utkface_path()), help="the UTKFace archive (.tar.gz)")
    parser.add_argument("--every", type=int, default=237, help="take every k-th image file of the archive")
    parser.add_argument("--faces", type=int, default=100, help="how many crops to take")
    args = parser.parse_args(argv)
    crops = [crop for crop in sample_archive_images(args.data, args.every, args.faces)
             if crop.shape[:2] == (TEMPLATE_SIZE, TEMPLATE_SIZE)]
    whole = np.array([chip_landmarks(crop) for crop in crops])
    pairs = [(points, hog) for points, hog in zip(whole, map(hog_box_landmarks, crops)) if hog is not None]
    distances = np.array([np.linalg.norm(points - hog, axis=1).mean() for points, hog in pairs])
    print(f"{len(crops)} crops; HOG finds exactly one face in {len(pairs)}")
    print(f"whole-chip vs HOG-box landmarks, mean px per face: median {np.median(distances):.2f}, "
          f"90th percentile {np.percentile(distances, 90):.2f}, max {distances.max():.2f}")
    print(template_text(whole))
    template = np.asarray(TEMPLATE_LANDMARKS, dtype=np.float64)
    from_template = np.linalg.norm(whole - template, axis=2).mean(axis=1)
    print(f"faces' landmarks vs the code's template, mean px per face: median {np.median(from_template):.2f}, "
          f"90th percentile {np.percentile(from_template, 90):.2f}")
    ious, equal = region_agreement(whole, TEMPLATE_SIZE)
    print("template vs own regions, median IoU: " + ", ".join(f"{name} {iou:.2f}" for name, iou in ious.items()))
    print(f"median share of pixels in the same region: {equal:.3f}")
    rechipped = rechipped_landmarks(crops)
    shift = np.linalg.norm(rechipped.mean(axis=0) - template, axis=1)
    print(f"re-chipped like real photos ({len(rechipped)} found): mean landmarks vs template, px: "
          f"mean {shift.mean():.2f}, max {shift.max():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
