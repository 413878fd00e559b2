"""Calibration and check of the skin-tone measure (``nbhelpers.fairness.skin_tone``) on real photos.

    python benchmarks/calibrate_skin_patches.py --photos ../shared/data/fairface-dev \\
        --utkface ../shared/data/UTKFace.tar.gz --utkface-count 1500

1. Where the landmarks fall on the aligned chips: dlib's 5-point predictor re-run on each chip (where HOG
   finds the face again), median and 10-90% range per point; the skin patches are placed from these.
   On UTKFace's own 200 px crops (every 7th of the archive's first members) the same, to check that the
   crops are aligned like our chips.
2. Skin tone by race label: per race, median and quartiles of ITA, median hue, share darker (ITA <= 28).
   FairFace dev: the central face of each photo (as the evaluation scores it); UTKFace: the archive's
   first ``--utkface-count`` crops. Labels are only grouped by; nothing is fitted.

Prints the tables; writes nothing (no per-photo output of the evaluation photos is kept).
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from nbhelpers.data.datasets.utkface import parse_utkface_name
from nbhelpers.data.images import load_rgb
from nbhelpers.fairness.audit import skin_tone_by_race_of_chips
from nbhelpers.predict.real_photos import read_labels
from nbhelpers.predict.faces import FaceDetector, landmark_model_path
from nbhelpers.predict.results import FaceResult, PhotoResult


def central_chips(folder: Path, names: list[str]) -> np.ndarray:
    """The aligned chip of each photo's central face (a black chip when none is found)."""
    detector, chips = FaceDetector(), []
    for name in names:
        picture = load_rgb(folder / name).image
        faces = detector.detect(picture)
        results = tuple(FaceResult(face.box, {}, "", False, face.detector, chip=face.chip) for face in faces)
        central = PhotoResult(name, picture.size, results).central_face()
        chips.append(central.chip if central else np.zeros((detector.chip_size,) * 2 + (3,), np.uint8))
    return np.stack(chips)


def landmark_table(chips: np.ndarray) -> pd.DataFrame:
    """Median and 10-90% range (px) of the 5 landmarks re-detected on the chips."""
    import dlib

    hog, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(landmark_model_path())
    points = []
    for chip in chips:
        found = hog(np.ascontiguousarray(chip), 1)
        if len(found):
            shape = predictor(np.ascontiguousarray(chip), found[0])
            points.append([(shape.part(index).x, shape.part(index).y) for index in range(5)])
    points = np.asarray(points, dtype=float)
    names = ["eye corner (outer, image right)", "eye corner (inner, image right)", "eye corner (outer, image left)",
             "eye corner (inner, image left)", "nose base"]
    median, low, high = (np.percentile(points, q, axis=0) for q in (50, 10, 90))
    return pd.DataFrame({"point": names, "x": median[:, 0], "y": median[:, 1], "x_10": low[:, 0], "x_90": high[:, 0],
                         "y_10": low[:, 1], "y_90": high[:, 1]}).assign(chips=len(points), of=len(chips))


def utkface_crops(archive: Path, count: int) -> tuple[np.ndarray, list[str]]:
    """The archive's first ``count`` 200 px crops with a race in their name, and those races."""
    crops, races = [], []
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            try:
                race = parse_utkface_name(Path(member.name).name)["race"]
            except ValueError:
                continue
            pixels = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
            if race is not None and pixels.shape == (200, 200, 3):
                crops.append(pixels)
                races.append(race)
            if len(crops) >= count:
                break
    return np.stack(crops), races


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="labelled folder with labels.csv and a race column")
    parser.add_argument("--utkface", type=Path, default=None, help="UTKFace.tar.gz (optional)")
    parser.add_argument("--utkface-count", type=int, default=1500)
    arguments = parser.parse_args()
    labels = read_labels(arguments.photos / "labels.csv")
    chips = central_chips(arguments.photos, labels["file"].tolist())
    with pd.option_context("display.width", 160, "display.float_format", "{:.2f}".format):
        print(landmark_table(chips).to_string(index=False))
        print(skin_tone_by_race_of_chips(chips, labels["race"].tolist()).to_string(index=False))
        if arguments.utkface:
            crops, races = utkface_crops(arguments.utkface, arguments.utkface_count)
            print(landmark_table(crops[::7]).to_string(index=False))
            print(skin_tone_by_race_of_chips(crops, races).to_string(index=False))


if __name__ == "__main__":
    main()
