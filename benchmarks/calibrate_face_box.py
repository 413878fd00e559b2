"""Calibration: reproduce ``FACE_BOX`` (nbhelpers.explain.metrics) from the UTKFace archive.

    python benchmarks/calibrate_face_box.py --data ../shared/data/UTKFace.tar.gz --every 10

Reads a deterministic sample of the archive in memory (every ``--every``-th image file in archive
order, at most ``--images``; nothing is written to disk), runs ``detect_face_boxes`` (OpenCV's Haar
eye and smile cascades; the box spans both eyes and the mouth) with ``return_found=True``, and prints
the number of images, on how many the detectors found two eyes and a mouth (the detection rate), and
per edge the median box of those real detections only (faces where detection failed, which the
package fills with ``FACE_BOX`` itself, are excluded), its bootstrap 95% interval and inter-quartile
range, next to the value the code holds. Boxes are whole pixels, so on 200 px crops every edge moves
in steps of 0.005. About 20 ms per face on one core: the defaults (2,371 faces) take under a minute.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nbhelpers.data.datasets import default_utkface_path
from nbhelpers.data.datasets.archive import sample_archive_images
from nbhelpers.explain.metrics import FACE_BOX, detect_face_boxes

__all__ = ["read_archive_faces", "summarise_boxes", "main"]

EDGES = ("left", "top", "right", "bottom")


def read_archive_faces(archive: str | Path, every: int, limit: int = 0) -> np.ndarray:
    """Every ``every``-th .jpg of the archive (archive order), decoded in memory to uint8 (N, H, W, 3).

    ``limit`` > 0 stops after that many faces. All UTKFace crops are 200 x 200, so they stack.
    """
    return np.stack(sample_archive_images(archive, every, limit))


def summarise_boxes(boxes: np.ndarray, found: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict:
    """Median, bootstrap 95% interval of the median and quartiles per edge, over the ``found`` rows only."""
    detected = boxes[found]
    if len(detected) == 0:
        raise ValueError("the detectors found no face: no box to summarise")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(detected), size=(resamples, len(detected)))
    medians = np.median(detected[picks], axis=1)  # (resamples, 4)
    return {"images": len(boxes), "detected": len(detected), "rate": len(detected) / len(boxes),
            "median": np.median(detected, axis=0), "interval": np.percentile(medians, [2.5, 97.5], axis=0),
            "quartiles": np.percentile(detected, [25, 75], axis=0)}


def report(summary: dict, size: int) -> list[str]:
    """Lines comparing the measured box with ``FACE_BOX``, side by side."""
    lines = [f"images: {summary['images']}   detected (two eyes and a mouth): {summary['detected']}   "
             f"detection rate: {summary['rate']:.3f}",
             f"{'edge':<7}{'FACE_BOX':>9}{'median':>8}{'95% CI of median':>19}{'IQR':>15}{'diff px':>9}"]
    for column, edge in enumerate(EDGES):
        low, high = summary["interval"][:, column]
        q1, q3 = summary["quartiles"][:, column]
        median, code = summary["median"][column], FACE_BOX[column]
        lines.append(f"{edge:<7}{code:>9.3f}{median:>8.3f}{f'{low:.3f}-{high:.3f}':>19}{f'{q1:.3f}-{q3:.3f}':>15}"
                     f"{(median - code) * size:>+9.1f}")
    inside = all(summary["interval"][0, c] - 1e-9 <= FACE_BOX[c] <= summary["interval"][1, c] + 1e-9 for c in range(4))
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    lines.append(f"box area (face focus of a uniform map): FACE_BOX {area(FACE_BOX):.3f}, "
                 f"measured {area(summary['median']):.3f}")
    lines.append("FACE_BOX lies inside the 95% interval of the median on every edge" if inside else
                 "FACE_BOX lies OUTSIDE the 95% interval of the median on some edge")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(default_utkface_path()), help="the UTKFace archive (.tar.gz)")
    parser.add_argument("--every", type=int, default=10, help="take every k-th image file of the archive")
    parser.add_argument("--images", type=int, default=0, help="at most this many faces (0: no limit)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the median")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    faces = read_archive_faces(args.data, args.every, args.images)
    read = time.perf_counter() - start
    boxes, found = detect_face_boxes(faces, return_found=True)
    detect = time.perf_counter() - start - read
    print(f"archive: {args.data}   sample: every {args.every}th file"
          + (f", at most {args.images}" if args.images else "") + f"   face size: {faces.shape[2]} x {faces.shape[1]}")
    for line in report(summarise_boxes(boxes, found, args.resamples, args.seed), faces.shape[2]):
        print(line)
    print(f"time: read {read:.1f} s, detect {detect:.1f} s ({1000 * detect / len(faces):.1f} ms per face)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
