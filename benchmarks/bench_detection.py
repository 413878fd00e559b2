"""Benchmark: face-detection settings on labelled real photos: recall, precision and time, side by side in one run.

    pip install face-recognition-models     # dlib's CNN (MMOD) face detector, the reference (about 100 MB)
    python benchmarks/bench_detection.py --photos ../shared/data/fairface-dev

Each setting runs ``FaceDetector.detect`` (HOG search, landmarks, aligned chip) on every photo:
dlib HOG at thresholds 0, -0.5 and -1.0, and the cascades "0 then -1.0" / "0 then -0.5" (the lower
threshold only where the first search finds nothing); the OpenCV Haar fallback stays on. Reported:

- ``found``: share of photos with at least one face (the rest fall back to a centre crop);
- ``box_precision``: share of all returned boxes that match a box of the reference detector (IoU >= 0.3).
  The reference is dlib's CNN face detector (Davis King's MMOD, ``mmod_human_face_detector.dat`` from
  ``face-recognition-models``), run without upsampling; it is far slower and far more accurate than HOG;
- ``central_agrees``: on the photos where the reference finds a face, the share whose scored face (the
  one nearest the centre, as the predict path chooses) matches the reference's central face;
- ``ms_per_photo``: median wall time of ``detect`` per photo, and the throughput of a fixed matrix
  product measured in the same run (``reference_gflops``), to scale times between machines.

The labelled photos are for evaluation and model selection: this compares fixed settings, it fits nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from nbhelpers.predict.evaluation import central_face, read_labels
from nbhelpers.predict.faces import FaceDetector

SETTINGS = {"hog 0": (0.0, None), "hog -0.5": (-0.5, None), "hog -1.0": (-1.0, None),
            "hog 0 then -0.5": (0.0, -0.5), "hog 0 then -1.0": (0.0, -1.0)}


def iou(first: tuple, second: tuple) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    inter = width * height
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_boxes(model_path: str, photos: list[np.ndarray]) -> tuple[list[list[tuple]], float]:
    """Boxes of dlib's CNN detector on each photo, and its median milliseconds per photo."""
    import dlib

    detector = dlib.cnn_face_detection_model_v1(model_path)
    boxes, times = [], []
    for pixels in photos:
        start = time.perf_counter()
        found = detector(pixels, 0)  # FairFace faces are ~200 px: no upsampling needed
        times.append(1000 * (time.perf_counter() - start))
        boxes.append([(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()) for d in found])
    return boxes, statistics.median(times)


def measure(detector: FaceDetector, photos: list[np.ndarray], reference: list[list[tuple]]) -> dict[str, float]:
    """Found rate, box precision, central-face agreement and median ms per photo of one setting."""
    found = matched = boxes_total = agree = with_reference = 0
    times = []
    for pixels, truth in zip(photos, reference):
        start = time.perf_counter()
        faces = [face for face in detector.detect(pixels)]
        times.append(1000 * (time.perf_counter() - start))
        boxes = [face.box for face in faces]
        found += bool(boxes)
        boxes_total += len(boxes)
        matched += sum(any(iou(box, other) >= 0.3 for other in truth) for box in boxes)
        if truth:
            with_reference += 1
            size = (pixels.shape[1], pixels.shape[0])
            target = truth[central_face([{"box": box} for box in truth], size)]
            if boxes:
                agree += iou(boxes[central_face([{"box": box} for box in boxes], size)], target) >= 0.3
    return {"found": found / len(photos), "boxes": boxes_total, "box_precision": matched / max(boxes_total, 1),
            "central_agrees": agree / max(with_reference, 1), "ms_per_photo": statistics.median(times)}


def reference_gflops() -> float:
    """GFLOP/s of a 512x512 float32 matrix product on this machine now (a speed yardstick)."""
    matrix = torch.randn(512, 512)
    start, repeats = time.perf_counter(), 50
    for _ in range(repeats):
        matrix @ matrix
    return 2 * 512 ** 3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default="../shared/data/fairface-dev", help="folder with labels.csv and photos")
    parser.add_argument("--reference-model", default="", help="mmod_human_face_detector.dat (default: from the "
                        "face-recognition-models package)")
    arguments = parser.parse_args()
    model_path = arguments.reference_model
    if not model_path:  # the package's own locator needs pkg_resources, gone from recent setuptools
        import importlib.util

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or spec.origin is None:
            raise SystemExit("the reference detector needs `pip install face-recognition-models` or --reference-model")
        model_path = str(Path(spec.origin).parent / "models" / "mmod_human_face_detector.dat")
    labels = read_labels(Path(arguments.photos) / "labels.csv")
    photos = [np.asarray(Image.open(Path(arguments.photos) / name).convert("RGB")) for name in labels["file"]]
    reference, reference_ms = reference_boxes(model_path, photos)
    print(f"{len(photos)} photos; CNN reference finds a face in {np.mean([bool(b) for b in reference]):.1%} "
          f"({reference_ms:.0f} ms per photo); {reference_gflops():.1f} GFLOP/s", flush=True)
    rows = []
    for name, (threshold, fallback) in SETTINGS.items():
        detector = FaceDetector(threshold=threshold, fallback_threshold=fallback)
        rows.append({"setting": name, **measure(detector, photos, reference)})
        print(rows[-1], flush=True)
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"{reference_gflops():.1f} GFLOP/s at the end")


if __name__ == "__main__":
    main()
