"""Typed results of the prediction core: ``PhotoResult`` (one input: its faces, or the error that kept it
from being read) and ``FaceResult`` (one face: box, probabilities, label or *uncertain*, optional chip and
explanation). Every front end (command line, evaluation, upload widget, web page, HTTP API) prints or
shows these; ``to_json()`` is the JSON line the command line prints and the HTTP API returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from PIL import Image

__all__ = ["FaceResult", "PhotoResult", "UNCERTAIN", "NO_FACE", "Box"]

UNCERTAIN = "uncertain"  # the label when the confidence is below the run's abstention threshold
NO_FACE = "no face found: no gender given"  # the note of a photo in which the detector found no face
Box = tuple[int, int, int, int]  # (left, top, right, bottom) in the upright photo's pixels


@dataclass(frozen=True)
class FaceResult:
    """One classified face.

    ``box`` in the upright photo's pixels; ``probabilities`` per class (sum 1); ``predicted`` the most
    probable class; ``uncertain`` when the top probability is below the run's threshold; ``detector`` and
    ``search``: what found the face (``centre`` when detection was off) and ``score`` that search's score; a face
    from a permissive search is always uncertain; ``chip``: the aligned uint8 face
    (H, W, 3), kept on request; ``attribution``: a float32 (h, w) explanation map at the model's input size
    (positive = evidence for ``predicted``), with its ``explanation_method``; ``explanation_image``: for the
    ``bcos`` method, the B-cos colour explanation of the dynamic weights W(x), float32 RGBA (h, w, 4) in 0..1
    (``nbhelpers.explain.bcos.colour_explanation``; not serialised); ``explanation_file``: where a front end
    wrote the rendered explanation (``nbhelpers.predict.explanation_images``); ``model_probabilities``: the
    named model's own probabilities when the answer is an ensemble's (``Predictor``'s ``peer_ensemble`` and
    ``deep_ensemble``; None when the model answers alone); the explanation map is still the model's evidence
    for ``predicted``.
    """

    box: Box
    probabilities: Mapping[str, float]
    predicted: str
    uncertain: bool
    detector: str
    search: str = ""
    score: float | None = None  # the search's own score (SSD confidence, HOG score): not comparable across searches
    chip: np.ndarray | None = field(default=None, repr=False, compare=False)
    attribution: np.ndarray | None = field(default=None, repr=False, compare=False)
    explanation_method: str = ""
    explanation_file: str = ""  # where a front end wrote the explanation image, if it did
    explanation_image: np.ndarray | None = field(default=None, repr=False, compare=False)
    model_probabilities: Mapping[str, float] | None = None

    @property
    def label(self) -> str:
        """``predicted``, or ``"uncertain"`` when the model is not confident enough to answer."""
        return UNCERTAIN if self.uncertain else self.predicted

    @property
    def confidence(self) -> float:
        """The probability of the predicted class."""
        return float(self.probabilities[self.predicted])

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible fields (no arrays): box, label, predicted, uncertain, probabilities, detector, and
        ``model_probabilities`` when an ensemble (other runs, the peer) answered."""
        data = {"box": [int(value) for value in self.box], "label": self.label, "predicted": self.predicted,
                "uncertain": self.uncertain, "probabilities": {name: float(p) for name, p in self.probabilities.items()},
                "detector": self.detector}
        if self.search:
            data["search"] = self.search
        if self.score is not None:
            data["score"] = round(float(self.score), 4)
        if self.model_probabilities is not None:
            data["model_probabilities"] = {name: float(p) for name, p in self.model_probabilities.items()}
        if self.explanation_method:
            data["explanation"] = {"method": self.explanation_method, "file": self.explanation_file or None}
        return data


@dataclass(frozen=True)
class PhotoResult:
    """The result of one input: its faces (largest first), or ``error`` (the input's name and the problem).

    ``image_size`` (width, height) of the upright decoded photo; ``notes``: what decoding and detection
    did that a user should know (EXIF ignored, reduced decode, no face found); ``photo``: the decoded
    upright RGB image, kept on request (for showing the face boxes).
    """

    name: str
    image_size: tuple[int, int] | None = None
    faces: tuple[FaceResult, ...] = ()
    error: str = ""
    notes: tuple[str, ...] = ()
    photo: Image.Image | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the input was read (with or without faces)."""
        return not self.error

    @property
    def face_detected(self) -> bool:
        """True when at least one face was found and classified."""
        return bool(self.faces)

    def central_face(self) -> FaceResult | None:
        """The face whose box centre is nearest the photo's centre (the larger on a tie); None without faces."""
        if not self.faces or self.image_size is None:
            return None
        width, height = self.image_size

        def distance(face: FaceResult) -> tuple[float, float]:
            left, top, right, bottom = face.box
            centre = ((left + right) / 2 - width / 2) ** 2 + ((top + bottom) / 2 - height / 2) ** 2
            return centre, -(right - left) * (bottom - top)

        return min(self.faces, key=distance)

    def to_json(self) -> dict[str, Any]:
        """The JSON object the command line prints (one line) and the HTTP API returns."""
        if self.error:
            return {"path": self.name, "error": self.error}
        data: dict[str, Any] = {"path": self.name, "image_size": list(self.image_size or ()),
                                "face_detected": self.face_detected, "faces": [face.to_json() for face in self.faces]}
        if self.notes:
            data["notes"] = list(self.notes)
        return data
