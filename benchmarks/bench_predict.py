"""Benchmark: images/second of the prediction path (``python -m nbhelpers.predict.predictor``), with and without face detection.

    python benchmarks/bench_predict.py --data ../shared/data/UTKFace.tar.gz --images 1000

Extracts ``--images`` UTKFace photos into a temporary directory, then runs exactly what the command
line runs per input (decode with ``load_rgb``, detect and align or centre-crop, batched forward pass,
one JSON line) on the same files twice, side by side: ``detect=True`` and ``detect=False``. Uses the
checkpoint given by ``--checkpoint``, else an untrained model saved to the temporary directory
(prediction speed does not depend on the weights). Process start-up and model loading are timed apart.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import torch

from nbhelpers.models import create_model
import json

from nbhelpers.predict.predictor import Predictor
from nbhelpers.training.checkpoint import save_checkpoint


def extract_images(archive: Path, count: int, target: Path) -> list[Path]:
    """The first ``count`` JPEGs of the archive, written under ``target``."""
    paths = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.lower().endswith(".jpg"):
                path = target / f"{len(paths):06d}.jpg"
                path.write_bytes(tar.extractfile(member).read())
                paths.append(path)
                if len(paths) == count:
                    break
    return paths


def untrained_checkpoint(model_name: str, input_size: int, path: Path) -> Path:
    """A checkpoint of an untrained ``model_name`` with the metadata prediction needs."""
    model = create_model(model_name)
    spec = model.spec.replace(input_size=input_size, pipeline="finetune", mean=(0.5,) * 3, std=(0.25,) * 3)
    return save_checkpoint(path, {"model_state": model.state_dict(), "metadata": spec.to_dict()})


def time_predictions(predictor: Predictor, paths: list[Path], batch_size: int) -> tuple[float, int, int]:
    """(seconds, records, records with a detected face) of one pass over ``paths``, JSON included."""
    start = time.perf_counter()
    detected = records = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for result in predictor.predict_paths(paths, batch_size, progress=False):
            json.dumps(result.to_json())
            records += 1
            detected += result.face_detected
    return time.perf_counter() - start, records, detected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/UTKFace.tar.gz")
    parser.add_argument("--images", type=int, default=1000, help="photos read from the archive")
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint (default: untrained --model)")
    parser.add_argument("--model", default="resnet18", help="model of the untrained checkpoint")
    parser.add_argument("--input-size", type=int, default=64, help="input size of the untrained checkpoint")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        paths = extract_images(Path(args.data), args.images, Path(work))
        checkpoint = args.checkpoint or untrained_checkpoint(args.model, args.input_size, Path(work) / "model.pt")
        start = time.perf_counter()
        predictors = {detect: Predictor(checkpoint, args.device, detect=detect) for detect in (True, False)}
        load_seconds = (time.perf_counter() - start) / 2
        time_predictions(predictors[False], paths[: args.batch_size], args.batch_size)  # warm-up (page cache, kernels)
        results = {detect: time_predictions(predictors[detect], paths, args.batch_size) for detect in (True, False)}
    device = next(predictors[True].trained.model.parameters()).device
    print(f"{len(paths)} UTKFace photos, checkpoint {args.checkpoint or f'untrained {args.model} @ {args.input_size}px'}, "
          f"device {device}, batch {args.batch_size}, torch threads {torch.get_num_threads()}; model load {load_seconds:.2f} s")
    print(f"{'':>28} {'images/s':>9} {'ms/image':>9} {'faces found':>12}")
    for detect, label in ((True, "with detection (dlib)"), (False, "without (--no-detect)")):
        seconds, records, detected = results[detect]
        print(f"{label:>28} {records / seconds:9.1f} {1000 * seconds / records:9.1f} {detected:7d}/{records}")
    print(f"{'detection cost':>28} {1000 * (results[True][0] - results[False][0]) / len(paths):19.1f} ms/image")


if __name__ == "__main__":
    main()
