"""Benchmark: variants of the prediction path on labelled real photos, side by side in one run.

    python benchmarks/bench_real_photos.py --checkpoint data/checkpoints/<run>/model.pt \\
        --photos ../shared/data/fairface-dev

For each variant (dlib HOG detection threshold, flip test-time augmentation) it runs the whole path
(decode, detect, align, classify) through ``nbhelpers.predict.real_photos`` and prints the detection
rate, the accuracy with female and male recall, and milliseconds per photo. The labelled photos are an
evaluation and model-selection set: this chooses among fixed settings, it fits nothing to them.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from nbhelpers.predict.real_photos import evaluate_photos, read_labels
from nbhelpers.predict.faces import FaceDetector
from nbhelpers.predict.predictor import Predictor


def measure(predictor: Predictor, labels: pd.DataFrame, photos: str) -> dict[str, float]:
    """Detection rate, accuracy, recalls and ms per photo of one predictor on the labelled photos."""
    start = time.perf_counter()
    frame = evaluate_photos(predictor, labels, photos, progress=False)
    seconds = time.perf_counter() - start
    read = frame[frame["error"] == ""]
    return {"detected": read["detected"].mean(), "accuracy": read["correct"].mean(),
            "female_recall": read.loc[read["gender"] == "female", "correct"].mean(),
            "male_recall": read.loc[read["gender"] == "male", "correct"].mean(),
            "ms_per_photo": 1000 * seconds / len(frame)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (model.pt of a trained run)")
    parser.add_argument("--photos", default="../shared/data/fairface-dev", help="folder with labels.csv and photos")
    parser.add_argument("--thresholds", default="0,-0.5,-0.8,-1.0", help="dlib HOG adjust_threshold values to try")
    arguments = parser.parse_args()
    labels = read_labels(f"{arguments.photos}/labels.csv")
    rows = []
    for threshold in map(float, arguments.thresholds.split(",")):
        for flip in (False, True):
            predictor = Predictor(arguments.checkpoint, "cpu", detector=FaceDetector(threshold=threshold), flip_tta=flip,
                                  peer_ensemble="off", deep_ensemble="off",
                                  descriptor_probe="off")
            rows.append({"hog_threshold": threshold, "flip_tta": flip, **measure(predictor, labels, arguments.photos)})
            print(rows[-1], flush=True)
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
