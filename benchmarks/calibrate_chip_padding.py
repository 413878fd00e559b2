"""Calibration: reproduce ``CHIP_PADDING`` (nbhelpers.predict.faces) from the UTKFace archive.

    python benchmarks/calibrate_chip_padding.py --data ../shared/data/UTKFace.tar.gz --every 237 --faces 100

Takes a deterministic sample of real UTKFace crops (every ``--every``-th image file in archive order,
``--faces`` of them, decoded in memory; nothing is written), pastes each into the middle of a
``--canvas`` px square grey canvas, and for each padding of the sweep re-detects and chips it with
``FaceDetector(padding=...)`` exactly as the prediction path does (dlib HOG, 5-point landmarks,
``dlib.get_face_chip`` at the crop's own size; the Haar fallback is off, so only HOG detections count).
The score of a face is the Pearson correlation of the grey levels of its chip and its original crop.
The sweep runs over ``--start`` ... ``--stop`` in steps of ``--step``, then again in steps of ``--refine``
within one coarse step either side of the coarse peak (highest mean). Prints per padding how many faces
HOG found and the mean, median, lowest and highest correlation over them, then the padding with the
highest mean and the one with the highest median, next to the value the code holds. About 40 ms per face
and padding on one core: the defaults (100 crops, 0.00 ... 0.70 by 0.05, refined by 0.01) take under two minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nbhelpers.data.datasets import default_utkface_path
from nbhelpers.data.datasets.archive import sample_archive_images
from nbhelpers.predict.faces import CHIP_PADDING, FaceDetector

__all__ = ["read_archive_crops", "on_canvas", "grey_correlation", "sweep", "padding_grid", "main"]


def read_archive_crops(archive: str | Path, every: int, count: int) -> list[np.ndarray]:
    """``count`` crops: every ``every``-th .jpg of the archive (archive order), decoded in memory to uint8 RGB."""
    if count < 1:
        raise ValueError(f"--faces must be at least 1, got {count}")
    return sample_archive_images(archive, every, count)


def on_canvas(crop: np.ndarray, size: int, grey: int = 128) -> np.ndarray:
    """``crop`` pasted into the middle of a ``size`` x ``size`` uniform grey RGB canvas."""
    height, width = crop.shape[:2]
    if size < max(height, width):
        raise ValueError(f"canvas {size} px is smaller than the crop ({width} x {height})")
    canvas = np.full((size, size, 3), grey, dtype=np.uint8)
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top:top + height, left:left + width] = crop
    return canvas


def grey_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation of the grey levels (ITU-R 601 luma) of two RGB images of the same size."""
    grey = [np.asarray(Image.fromarray(image).convert("L"), dtype=np.float64).ravel() for image in (first, second)]
    return float(np.corrcoef(grey[0], grey[1])[0, 1])


def sweep(crops: list[np.ndarray], paddings: np.ndarray, canvas: int) -> np.ndarray:
    """Correlations (paddings, faces); NaN where HOG found no face. Chips are cut at the crops' own size."""
    pictures = [on_canvas(crop, canvas) for crop in crops]
    scores = np.full((len(paddings), len(crops)), np.nan)
    for row, padding in enumerate(paddings):
        detector = FaceDetector(chip_size=crops[0].shape[0], padding=float(padding), detector="hog")
        for column, (crop, picture) in enumerate(zip(crops, pictures)):
            faces = detector.detect(picture)  # largest first
            if faces:
                scores[row, column] = grey_correlation(faces[0].chip, crop)
    return scores


def padding_grid(start: float, stop: float, step: float) -> np.ndarray:
    """``start`` ... ``stop`` (both included when on the grid) in steps of ``step``, rounded to 1e-6."""
    return np.round(np.arange(start, stop + step / 2, step), 6)


def refined_sweep(crops: list[np.ndarray], coarse: np.ndarray, step: float, refine: float,
                  canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """The coarse sweep, then ``refine`` steps within ``step`` of its peak; paddings sorted, scores alongside."""
    scores = sweep(crops, coarse, canvas)
    if refine <= 0:
        return coarse, scores
    peak = coarse[int(np.nanargmax(np.nanmean(scores, axis=1)))]
    fine = padding_grid(max(0.0, peak - step), peak + step, refine)
    fine = fine[~np.isin(fine, coarse)]
    paddings = np.concatenate([coarse, fine])
    scores = np.concatenate([scores, sweep(crops, fine, canvas)])
    order = np.argsort(paddings)
    return paddings[order], scores[order]


def report(paddings: np.ndarray, scores: np.ndarray) -> list[str]:
    """The per-padding table and the best paddings, next to ``CHIP_PADDING``."""
    found = (~np.isnan(scores)).sum(axis=1)
    means, medians = np.nanmean(scores, axis=1), np.nanmedian(scores, axis=1)
    lines = [f"{'padding':>8}{'HOG found':>11}{'mean':>8}{'median':>8}{'min':>8}{'max':>8}"]
    for padding, count, mean, median, row in zip(paddings, found, means, medians, scores):
        lines.append(f"{padding:>8.2f}{f'{count}/{scores.shape[1]}':>11}{mean:>8.3f}{median:>8.3f}"
                     f"{np.nanmin(row):>8.3f}{np.nanmax(row):>8.3f}")
    best_mean, best_median = int(np.argmax(means)), int(np.argmax(medians))
    lines.append(f"best padding by mean correlation: {paddings[best_mean]:.2f} (mean {means[best_mean]:.3f}, "
                 f"median {medians[best_mean]:.3f}, {found[best_mean]} faces HOG found)")
    lines.append(f"best padding by median correlation: {paddings[best_median]:.2f} (median {medians[best_median]:.3f})")
    code = int(np.argmin(np.abs(paddings - CHIP_PADDING)))
    if abs(paddings[code] - CHIP_PADDING) < 1e-9:
        lines.append(f"CHIP_PADDING in the code: {CHIP_PADDING:.2f} "
                     f"(mean {means[code]:.3f}, median {medians[code]:.3f})")
    else:
        lines.append(f"CHIP_PADDING in the code: {CHIP_PADDING:.2f} (not on this grid)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(default_utkface_path()), help="the UTKFace archive (.tar.gz)")
    parser.add_argument("--every", type=int, default=237, help="take every k-th image file of the archive")
    parser.add_argument("--faces", type=int, default=100, help="how many crops to take")
    parser.add_argument("--canvas", type=int, default=400, help="side of the grey canvas the crops are pasted on, px")
    parser.add_argument("--start", type=float, default=0.0, help="first padding of the sweep")
    parser.add_argument("--stop", type=float, default=0.70, help="last padding of the sweep (included)")
    parser.add_argument("--step", type=float, default=0.05, help="step of the coarse sweep")
    parser.add_argument("--refine", type=float, default=0.01,
                        help="step of the second sweep around the coarse peak (0: no second sweep)")
    args = parser.parse_args(argv)
    if args.step <= 0 or args.stop < args.start or args.start < 0:
        parser.error("need --step > 0 and 0 <= --start <= --stop")
    start = time.perf_counter()
    crops = read_archive_crops(args.data, args.every, args.faces)
    paddings, scores = refined_sweep(crops, padding_grid(args.start, args.stop, args.step), args.step, args.refine,
                                     args.canvas)
    print(f"archive: {args.data}   sample: every {args.every}th file, {len(crops)} crops of "
          f"{crops[0].shape[1]} x {crops[0].shape[0]} on a {args.canvas} x {args.canvas} grey canvas")
    for line in report(paddings, scores):
        print(line)
    print(f"time: {time.perf_counter() - start:.1f} s for {len(paddings)} paddings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
