"""Predict the gender of the faces in arbitrary photos with a trained checkpoint; also a command line.

    python -m nbhelpers.predict --checkpoint data/checkpoints/<run>/model.pt photo.jpg photos/

prints one JSON line per input to stdout (progress bar and warnings on stderr)::

    {"path": "photo.jpg", "image_size": [w, h], "face_detected": true, "faces": [{"box": [l, t, r, b],
     "label": "female", "predicted": "female", "uncertain": false,
     "probabilities": {"female": 0.91, "male": 0.09}, "detector": "dlib"}]}
    {"path": "broken.jpg", "error": "broken.jpg: truncated or corrupt image data (...)"}

Images are decoded by ``load_rgb`` (EXIF orientation applied, so boxes are in the upright image's
pixels), faces found and aligned by ``FaceDetector`` (a centre crop with a warning when none is
found), and preprocessed exactly like the checkpoint's evaluation data (``TrainedModel.preprocess``).
Faces are batched across images. Exit code 0 when every input was read, 1 when any could not be, 2
for an unusable checkpoint.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from nbhelpers.data.images import ImageLoadError, load_rgb
from nbhelpers.data.loaders import CLASSES
from nbhelpers.explain.explainers import create_explainer
from nbhelpers.predict.faces import FaceDetector, centre_crop
from nbhelpers.training.checkpoint import CheckpointError
from nbhelpers.training.evaluation import predict_faces
from nbhelpers.training.runs import load_run
from nbhelpers.utils.device import get_default_device
from nbhelpers.utils.progress import progress_bar

__all__ = ["Predictor", "UNCERTAIN", "IMAGE_SUFFIXES", "MIN_IMAGE_SIDE", "expand_inputs", "record_to_json"]

FLIP_TTA = True  # flip test-time augmentation (measured on the labelled real photos: see the README)
UNCERTAIN = "uncertain"  # the label when the confidence is below the run's abstention threshold
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MIN_IMAGE_SIDE = 16  # smaller images carry no usable face and give an error record


def expand_inputs(arguments: Iterable[str | Path]) -> list[Path]:
    """Paths as given, with each directory replaced by its image files (sorted, not recursive)."""
    paths: list[Path] = []
    for argument in map(Path, arguments):
        if argument.is_dir():
            paths.extend(sorted(p for p in argument.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(argument)
    return paths


class Predictor:
    """A checkpoint ready to classify faces in photos (``detect=False`` skips detection: centre crops)."""

    def __init__(self, checkpoint_path: str | Path, device: str | torch.device | None = None,
                 detect: bool = True, detector: FaceDetector | None = None,
                 uncertain_below: float | None = None, flip_tta: bool = FLIP_TTA) -> None:
        device = get_default_device(str(device) if device else None)
        self.trained = load_run(checkpoint_path, device)
        metadata = self.trained.metadata
        missing = [key for key in ("pipeline", "input_size", "mean", "std") if key not in metadata]
        if missing:
            raise CheckpointError(f"{checkpoint_path}: metadata lacks {missing}, needed to preprocess photos")
        self.classes = list(metadata.get("classes", CLASSES))
        self.flip_tta = flip_tta
        # the abstention threshold chosen on UTKFace validation data when the run was trained (0: always answer)
        self.uncertain_below = float(metadata.get("uncertain_below", 0.0) if uncertain_below is None else uncertain_below)
        self.detector = (detector or FaceDetector()) if detect else None
        self.chip_size = self.detector.chip_size if self.detector else FaceDetector().chip_size

    def _faces(self, path: Path) -> dict[str, Any]:
        """Decode one file and find its faces; a record with ``error`` when it cannot be read."""
        try:
            image = load_rgb(path).image
        except ImageLoadError as error:
            return {"path": str(path), "error": str(error)}
        if min(image.size) < MIN_IMAGE_SIDE:
            return {"path": str(path), "error": f"{path}: image too small ({image.size[0]}x{image.size[1]}; "
                                                f"at least {MIN_IMAGE_SIDE} px per side needed)"}
        if self.detector is None:
            faces, found = [centre_crop(image, self.chip_size)], False
        else:
            faces, found = self.detector.faces_or_centre(image)
            if not found:
                warnings.warn(f"{path}: no face found; predicting on the centre crop", stacklevel=3)
        return {"path": str(path), "image_size": list(image.size), "face_detected": found,
                "faces": [{"box": list(map(int, face.box)), "detector": face.detector, "chip": face.chip} for face in faces]}

    def classify(self, chips: np.ndarray, explain: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 faces (N, H, W, 3) -> probabilities (N, classes) and, with ``explain``, maps (N, h, w)."""
        maps = None
        if explain:
            with create_explainer(explain, self.trained.model) as explainer:
                attribution = explainer(self.trained.preprocess(chips))
            probabilities, maps = attribution.probabilities.cpu().numpy(), attribution.maps.cpu().numpy()
        else:
            probabilities = predict_faces(self.trained, chips, batch_size=max(len(chips), 1))  # the caller sizes the batch
        if self.flip_tta:  # average with the mirrored faces, as the test-split evaluation does
            mirrored = np.ascontiguousarray(np.asarray(chips)[:, :, ::-1])
            probabilities = (probabilities + predict_faces(self.trained, mirrored, batch_size=max(len(chips), 1))) / 2
        return probabilities, maps

    def _finish(self, records: list[dict[str, Any]], explain: str | None, keep_chips: bool) -> Iterator[dict[str, Any]]:
        faces = [face for record in records for face in record.get("faces", [])]
        if faces:
            chips = np.stack([face["chip"] if keep_chips else face.pop("chip") for face in faces])
            probabilities, maps = self.classify(chips, explain)
            for index, face in enumerate(faces):
                face["predicted"] = self.classes[int(probabilities[index].argmax())]
                face["uncertain"] = bool(probabilities[index].max() < self.uncertain_below)
                face["label"] = UNCERTAIN if face["uncertain"] else face["predicted"]
                face["probabilities"] = {name: float(p) for name, p in zip(self.classes, probabilities[index])}
                if maps is not None:
                    face["attribution"] = maps[index]
        yield from records

    def predict_paths(self, paths: Sequence[str | Path], batch_size: int = 64, explain: str | None = None,
                      progress: bool = True, keep_chips: bool = False) -> Iterator[dict[str, Any]]:
        """One result per path, in order: ``{"path", "face_detected", "faces": [...]}`` or ``{"path", "error"}``.

        Each face: ``box`` (left, top, right, bottom), ``label``, ``probabilities`` per class, ``detector``
        and, when ``explain`` names an explainer (``"gradcam"``, ...), ``attribution``: a float32 map at
        the model's input size; with ``keep_chips`` also ``chip``, the aligned uint8 face. Faces of
        consecutive images are classified in batches of ``batch_size``.
        """
        pending: list[dict[str, Any]] = []
        pending_faces = 0
        for path in progress_bar(list(paths), desc="predict", unit="image", disable=not progress, file=sys.stderr):
            record = self._faces(Path(path))
            pending.append(record)
            pending_faces += len(record.get("faces", []))
            if pending_faces >= batch_size:
                yield from self._finish(pending, explain, keep_chips)
                pending, pending_faces = [], 0
        yield from self._finish(pending, explain, keep_chips)


def record_to_json(record: dict[str, Any]) -> str:
    """One JSON line for a result record (attribution maps and chips, being arrays, are left out)."""
    faces = [{key: value for key, value in face.items() if key not in {"attribution", "chip"}}
             for face in record.get("faces", [])]
    return json.dumps({**record, "faces": faces} if "faces" in record else record)
