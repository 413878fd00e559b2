"""Photos framed wider than the training crops, made from test faces, to measure the predict path.

Each aligned 200x200 test face is placed, scaled to ``face_width`` of the photo's width, at a seeded
random position on a wider canvas whose background is a blurred, enlarged copy of the same photo
(so colours and textures around the face are plausible, not a flat colour that makes detection
trivial). The predict path must then find, align and classify the face; its accuracy is compared
with classifying the aligned crops directly.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from nbhelpers.data.images import load_rgb
from nbhelpers.predict.predictor import Predictor

__all__ = ["wide_photo", "example_uploads", "wide_photo_accuracy", "textured_background"]


def wide_photo(face: Image.Image, face_width: float, rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """``face`` scaled to ``face_width`` of a ``size`` photo, on a blurred enlargement of itself."""
    width, height = size
    background = face.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(12))
    side = max(16, int(round(face_width * width)))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    background.paste(face.resize((side, side), Image.Resampling.LANCZOS), (left, top))
    return background


def example_uploads(paths: Sequence[str | Path], face_width: float = 0.3, seed: int = 0) -> list[tuple[str, bytes]]:
    """JPEG bytes of wider photos made from ``paths``, named ``example_<i>.jpg`` (as an upload would be)."""
    rng, uploads = np.random.default_rng(seed), []
    for index, path in enumerate(paths):
        uploads.append((f"example_{index}.jpg", _jpeg(wide_photo(load_rgb(path).image, face_width, rng))))
    return uploads


def wide_photo_accuracy(predictor: Predictor, paths: Sequence[str | Path], labels: Sequence[int],
                        face_widths: Sequence[float] = (0.4, 0.25, 0.15), seed: int = 0) -> pd.DataFrame:
    """Accuracy on the aligned crops vs on wider photos at each ``face_width`` (and the detection rate);
    a wide photo in which no face is found counts as wrong."""
    classes = predictor.classes
    labels = np.asarray(labels)
    faces = [load_rgb(path).image for path in paths]
    crops = np.stack([np.asarray(face.resize((predictor.chip_size, predictor.chip_size))) for face in faces])
    probabilities, _ = predictor.classify(crops)
    rows = [{"framing": "aligned crop", "face_width": 1.0, "accuracy": float((probabilities.argmax(1) == labels).mean()),
             "detected": 1.0, "faces": len(labels)}]
    rng = np.random.default_rng(seed)
    for face_width in face_widths:
        photos = [(f"{face_width:.2f}_{index:05d}.jpg", _jpeg(wide_photo(face, face_width, rng)))
                  for index, face in enumerate(faces)]
        results = list(predictor.predict_images(photos))
        faces_found = [result.faces[0] if result.faces else None for result in results]
        correct = [face is not None and classes.index(face.predicted) == label for face, label in zip(faces_found, labels)]
        rows.append({"framing": "wide photo", "face_width": face_width, "accuracy": float(np.mean(correct)),
                     "detected": float(np.mean([face is not None for face in faces_found])), "faces": len(labels)})
    return pd.DataFrame(rows)


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def textured_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """uint8 (height, width, 3): blurred colour noise (soft blobs) plus fine grain, a face-less texture with
    edges everywhere, for detection tests and benchmarks (a flat colour would make detection trivial)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8))
    blobs = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(4)))
    return np.clip(blobs + rng.normal(0, 8, blobs.shape), 0, 255).astype(np.uint8)
