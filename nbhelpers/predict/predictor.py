"""The prediction core: faces in photos held in memory -> typed results, for every front end.

``Predictor.predict_images`` takes ``(name, image)`` items, where the image is raw file bytes, a path, a
PIL image or a uint8 array, and yields one ``PhotoResult`` per item, in order. Each image is decoded by
``load_rgb`` (EXIF orientation applied, so boxes are in the upright image's pixels), its faces found and
aligned by ``FaceDetector``, and the faces of consecutive images classified in batches, preprocessed
exactly as the run's evaluation data (its ``RunSpec``), with flip test-time augmentation
(``nbhelpers.models.flip_averaged_probabilities``). Any failure while reading or searching one input
becomes that input's error result (its name and the problem in one line); the other inputs go on.
When detection finds no face, the result has no faces and says so: no gender is given. ``detect=False``
classifies the centre crop instead (for inputs that are already face crops).

**Peer ensemble.** By default (``peer_ensemble="auto"``) a black-box model's probabilities are averaged, with
equal weights fixed in advance, with those of the dlib-models peer (``nbhelpers.models.peer``) on the same
aligned chip: the two were trained on different data and err on different faces. Measured on the 270
labelled real photos (an A/B in the README, same checkpoint): accuracy 81.1% -> 81.9% and the female/male
recall gap 8.1 -> 5.2 pp, with UTKFace test 94.2% -> 94.4%. The weights were not fitted on any photos. A B-cos
model answers alone, so that its answer is exactly what its explanation explains; ``"on"`` and ``"off"``
force the choice. ``FaceResult.model_probabilities`` keeps the model's own probabilities; an explanation map
is always the model's evidence for the answer's class (``classify_explained``). The abstention threshold
stays the run's, chosen on UTKFace validation for the model alone (the README gives what it keeps on the
ensemble).

**Deep ensemble.** By default (``deep_ensemble="auto"``) a black-box model recorded in a run index also averages
in the other members of its deep ensemble (``nbhelpers.training.runs.ensemble_siblings``): the runs of the same
recipe trained with other seeds (Lakshminarayanan et al., NeurIPS 2017) or with the context swap (notebook 04's
``TRANSFER_SEEDS`` and ``TRANSFER_CONTEXT_SEEDS``; measured in the README, issue 21). Every member and the peer
weigh the same (fixed in advance, not fitted); ``FaceResult.model_probabilities`` and every explanation stay those of the named
checkpoint alone. ``"off"`` answers with that checkpoint (and the peer) only.

**Face-descriptor probe.** When the run's checkpoint folder holds one (``nbhelpers.training.face_probe``;
notebook 04's ``DESCRIPTOR_PROBE_FACES``), ``descriptor_probe="auto"`` adds it to a black-box model's votes,
with the same weight: a linear probe on dlib's face-recognition descriptor of each face, taken from the photo
around the detected box (from the chip for face crops and for ``classify``, as in training;
``nbhelpers.models.face_descriptor``; README, sixth session). ``"off"`` leaves it out.

The command line (``python -m nbhelpers.predict``), the evaluation command, the upload widget, the web
page and the HTTP API are thin adapters over this class.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image

from nbhelpers.data.images import ImageLoadError, load_rgb
from nbhelpers.explain.base import is_bcos_model
from nbhelpers.explain.bcos import explain as bcos_explain
from nbhelpers.explain.explainers import create_explainer
from nbhelpers.data.manifest import GENDERS
from nbhelpers.models import RunSpec, flip_averaged_probabilities
from nbhelpers.models.peer import PeerGenderClassifier
from nbhelpers.models.face_descriptor import describe_chips
from nbhelpers.predict.ensemble_members import find_descriptor_probe, load_ensemble_members, photo_descriptors
from nbhelpers.predict.faces import DetectedFace, FaceDetector, centre_crop
from nbhelpers.predict.results import NO_FACE, FaceResult, PhotoResult
from nbhelpers.training.result import TrainedModel
from nbhelpers.training.runs import load_run
from nbhelpers.utils.device import get_default_device
from nbhelpers.utils.progress import progress_bar

__all__ = ["Predictor", "ImageInput", "FLIP_TTA", "MIN_IMAGE_SIDE", "PERMISSIVE_SEARCHES", "PEER_ENSEMBLE",
           "PEER_ENSEMBLE_MODES", "DEEP_ENSEMBLE", "DEEP_ENSEMBLE_MODES",
           "DESCRIPTOR_PROBE", "DESCRIPTOR_PROBE_MODES"]

FLIP_TTA = True  # flip test-time augmentation (measured on the labelled real photos: see the README)
# searches whose boxes are often not faces (on images without faces they return a box in 18 of 29; README):
# a face they find is answered "uncertain" whatever the model's confidence (its leaning stays in ``predicted``)
PERMISSIVE_SEARCHES = frozenset({"hog-permissive", "haar"})
PEER_ENSEMBLE = "auto"  # average a black box's probabilities with the dlib peer's (module docstring; README A/B)
PEER_ENSEMBLE_MODES = ("auto", "on", "off")  # auto: black-box models only; on / off: always / never
DEEP_ENSEMBLE = "auto"  # average a black box with its deep ensemble's other members (module docstring; README A/B)
DEEP_ENSEMBLE_MODES = ("auto", "off")  # auto: black-box models recorded in a run index; off: never
DESCRIPTOR_PROBE = "auto"  # average in the face-descriptor probe saved beside the run (module docstring)
DESCRIPTOR_PROBE_MODES = ("auto", "off")  # auto: black-box models whose checkpoint folder holds one; off: never
MIN_IMAGE_SIDE = 16  # smaller images carry no usable face and give an error result
ImageInput = Union[bytes, bytearray, str, os.PathLike, Image.Image, np.ndarray]


@dataclass
class _Found:
    """An input after decoding and detection, before classification."""

    result: PhotoResult
    faces: list[DetectedFace] = field(default_factory=list)
    descriptors: np.ndarray | None = None  # float32 (faces, 128) for the descriptor probe, from the photo


def _decode(name: str, image: ImageInput) -> tuple[Image.Image, tuple[str, ...]]:
    """The upright 8-bit RGB image of one input and the notes of its decoding."""
    if isinstance(image, Image.Image):
        return image.convert("RGB"), ()
    if isinstance(image, np.ndarray):
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (3, 4)):
            raise ImageLoadError(name, f"array of shape {pixels.shape} and dtype {pixels.dtype} is not a uint8 image")
        return Image.fromarray(pixels).convert("RGB"), ()
    loaded = load_rgb(bytes(image) if isinstance(image, bytearray) else image, name=name)
    return loaded.image, tuple(loaded.notes)


class Predictor:
    """A trained run ready to classify the faces in photos.

    ``checkpoint``: a ``model.pt`` path or a ``TrainedModel``; ``detect=False`` skips detection (centre
    crops); ``uncertain_below`` overrides the run's abstention threshold (0: always answer; the run's own
    threshold was chosen on UTKFace validation for the model alone); ``peer_ensemble``: ``"auto"``, ``"on"`` or
    ``"off"``, and ``deep_ensemble`` and ``descriptor_probe``: ``"auto"`` or ``"off"`` (module docstring).
    Raises ``CheckpointError`` (naming the file) for an unusable checkpoint or ensemble sibling, and
    ``ValueError`` for an unknown mode, ``"on"`` with a model whose classes are not (female, male), an
    unreadable run index or probe file beside the checkpoint, or an ensemble sibling whose classes or input
    size differ.
    """

    def __init__(self, checkpoint: str | Path | TrainedModel, device: str | torch.device | None = None,
                 detect: bool = True, detector: FaceDetector | None = None,
                 uncertain_below: float | None = None, flip_tta: bool = FLIP_TTA,
                 peer_ensemble: str = PEER_ENSEMBLE, deep_ensemble: str = DEEP_ENSEMBLE,
                 descriptor_probe: str = DESCRIPTOR_PROBE) -> None:
        if peer_ensemble not in PEER_ENSEMBLE_MODES:
            raise ValueError(f"peer_ensemble must be one of {PEER_ENSEMBLE_MODES}, got {peer_ensemble!r}")
        if deep_ensemble not in DEEP_ENSEMBLE_MODES:
            raise ValueError(f"deep_ensemble must be one of {DEEP_ENSEMBLE_MODES}, got {deep_ensemble!r}")
        if descriptor_probe not in DESCRIPTOR_PROBE_MODES:
            raise ValueError(f"descriptor_probe must be one of {DESCRIPTOR_PROBE_MODES}, got {descriptor_probe!r}")
        device = get_default_device(str(device) if device else None)
        self.trained = checkpoint if isinstance(checkpoint, TrainedModel) else load_run(checkpoint, device)
        self.classes = list(self.spec.classes)
        if peer_ensemble == "on" and tuple(self.classes) != tuple(GENDERS):
            raise ValueError(f"the peer ensemble needs the classes {list(GENDERS)}; {self.spec.model} has {self.classes}")
        use_peer = peer_ensemble == "on" or (peer_ensemble == "auto" and tuple(self.classes) == tuple(GENDERS)
                                             and not is_bcos_model(self.trained.model))
        self.peer = PeerGenderClassifier() if use_peer else None
        self.members = load_ensemble_members(self.trained, device) if deep_ensemble == "auto" else []
        found = find_descriptor_probe(self.trained) if descriptor_probe == "auto" else None
        self.probe, self.probe_path = found if found and list(found[0].classes) == self.classes else (None, None)
        self.flip_tta = flip_tta
        self.uncertain_below = float(self.spec.uncertain_below if uncertain_below is None else uncertain_below)
        self.detector = (detector or FaceDetector()) if detect else None
        self.chip_size = self.detector.chip_size if self.detector else FaceDetector().chip_size

    @property
    def ensemble_note(self) -> str:
        """One line naming the ensemble siblings and the probe averaged in (empty without any), for stderr."""
        voters = [str(member.checkpoint) for member in self.members]
        voters += [f"{self.probe_path} (fitted on {self.probe.provenance})"] if self.probe is not None else []
        return "ensemble: also averaging " + ", ".join(voters) if voters else ""

    @property
    def spec(self) -> RunSpec:
        """The run spec of the model: preprocessing, classes, abstention threshold."""
        return self.trained.spec

    def _find(self, name: str, image: ImageInput, keep_photo: bool) -> _Found:
        """Decode one input and find its faces; an error result when it cannot be read."""
        try:
            picture, notes = _decode(name, image)
            if min(picture.size) < MIN_IMAGE_SIDE:
                raise ImageLoadError(name, f"image too small ({picture.size[0]}x{picture.size[1]}; at least "
                                           f"{MIN_IMAGE_SIDE} px per side needed)")
            faces = self.detector.detect(picture) if self.detector else [centre_crop(picture, self.chip_size)]
            descriptors = photo_descriptors(name, picture, faces, self.detector is None) \
                if self.probe is not None and faces else None
        except ImageLoadError as error:
            return _Found(PhotoResult(name, error=str(error)))
        except Exception as error:  # noqa: BLE001 - one input's failure in a decoder or detector library (any
            # type) must not lose the other inputs' results: it becomes this input's error, named and explained
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
            return _Found(PhotoResult(name, error=f"{name}: cannot read or search this image ({reason})"))
        if not faces:
            notes += (NO_FACE,)
        result = PhotoResult(name, tuple(picture.size), notes=notes, photo=picture if keep_photo else None)
        return _Found(result, faces, descriptors)

    @property
    def answer_source(self) -> str:
        """Who answers, in words: the model's name (with its number of ensemble runs), plus the peer and the
        descriptor probe when they vote."""
        voters = [f"{self.spec.model} x{1 + len(self.members)} runs" if self.members else self.spec.model]
        voters += ["dlib peer"] * (self.peer is not None) + ["descriptor probe"] * (self.probe is not None)
        return " + ".join(voters) + " (mean)" if len(voters) > 1 else voters[0]

    def classify(self, chips: np.ndarray, explain: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 faces (N, H, W, 3) -> probabilities (N, classes) (the ensemble's when other runs, the peer or the
        probe join; the probe then reads the chips, ``describe_chips``) and, with
        ``explain`` (an explainer name, e.g. ``"bcos"``, ``"gradcam"``), float32 maps (N, size, size) of the
        model's evidence for the answer's class. Raises ``ValueError`` for a method that does not apply to
        the model (``bcos`` on a black-box model)."""
        probabilities, _, maps, _ = self.classify_explained(chips, explain)
        return probabilities, maps

    def ensemble(self, chips: np.ndarray, model_probabilities: np.ndarray,
                 descriptors: np.ndarray | None = None) -> np.ndarray:
        """The answer's probabilities (N, classes) float32: the model's own, or the equal-weight mean of those,
        the ensemble members' (flip-averaged like the model's) and the peer's on the same uint8 chips (N, H, W, 3)
        and the descriptor probe's on ``descriptors`` (N, 128) of the faces in their photos (None: of the chips)."""
        if (self.peer is None and not self.members and self.probe is None) or len(chips) == 0:
            return model_probabilities
        votes = [model_probabilities]
        for member in self.members:
            votes.append(flip_averaged_probabilities(member.model, member.preprocess(chips), self.flip_tta)
                         .float().cpu().numpy())
        if self.peer is not None:
            votes.append(self.peer.predict_proba(chips))
        if self.probe is not None:
            votes.append(self.probe.predict_proba(describe_chips(chips) if descriptors is None else descriptors))
        return np.mean(votes, axis=0).astype(np.float32)

    def classify_explained(self, chips: np.ndarray, explain: str | None = None, descriptors: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The answer's probabilities (N, classes), the model's own (N, classes), the maps of ``classify`` and,
        for the ``bcos`` method of a B-cos model, the colour explanations: float32 RGBA (N, size, size, 4) in
        0..1 from the same pass (``nbhelpers.explain.bcos.explain``: the contribution maps and W(x) of one
        forward and backward pass); None for every other method. ``descriptors``: as in ``ensemble``.

        The maps explain the model's evidence for the *answer's* class (the argmax of the answer's
        probabilities: flip-averaged, with the other runs and the peer when they join), so a map always shows the
        evidence for the label it is shown with, even where the model alone leans the other way."""
        if len(chips) == 0:
            empty = np.zeros((0, len(self.classes)), dtype=np.float32)
            return empty, empty, None, None
        inputs, model = self.trained.preprocess(chips), self.trained.model
        own = flip_averaged_probabilities(model, inputs, self.flip_tta).float().cpu().numpy()
        answer = self.ensemble(chips, own, descriptors)
        if not explain:
            return answer, own, None, None
        targets = torch.as_tensor(answer.argmax(axis=1), device=inputs.device)
        colour = None
        if explain == "bcos" and is_bcos_model(model):
            explanation = bcos_explain(model, inputs, targets)  # the bcos explainer's maps, with the colour image
            maps, colour = explanation.contributions.float().cpu().numpy(), explanation.colour.float().cpu().numpy()
        else:
            with create_explainer(explain, model) as explainer:
                maps = explainer(inputs, targets).maps.cpu().numpy()
        return answer, own, maps, colour

    def _face_results(self, faces: Sequence[DetectedFace], probabilities: np.ndarray, own: np.ndarray,
                      maps: np.ndarray | None, colour: np.ndarray | None, explain: str | None,
                      keep_chips: bool) -> list[FaceResult]:
        results = []
        for index, face in enumerate(faces):
            row = probabilities[index]
            ensemble = self.peer is not None or self.members or self.probe is not None
            model_row = dict(zip(self.classes, map(float, own[index]))) if ensemble else None
            uncertain = bool(row.max() < self.uncertain_below) or face.search in PERMISSIVE_SEARCHES
            results.append(FaceResult(
                tuple(int(value) for value in face.box), dict(zip(self.classes, map(float, row))),
                self.classes[int(row.argmax())], uncertain, face.detector, face.search, face.score,
                face.chip if keep_chips else None, None if maps is None else maps[index], explain or "",
                explanation_image=None if colour is None else colour[index], model_probabilities=model_row))
        return results

    def _finish(self, pending: list[_Found], explain: str | None, keep_chips: bool) -> Iterator[PhotoResult]:
        """Classify the faces of ``pending`` inputs in one batch and yield their results in order."""
        faces = [face for found in pending for face in found.faces]
        chips = np.stack([face.chip for face in faces]) if faces else np.zeros((0, self.chip_size, self.chip_size, 3),
                                                                              np.uint8)
        described = [found.descriptors for found in pending if found.descriptors is not None]
        descriptors = np.concatenate(described) if self.probe is not None and described else None
        probabilities, own, maps, colour = self.classify_explained(chips, explain, descriptors)
        results = self._face_results(faces, probabilities, own, maps, colour, explain, keep_chips)
        start = 0
        for found in pending:
            count = len(found.faces)
            yield dataclasses.replace(found.result, faces=tuple(results[start:start + count]))
            start += count

    def predict_images(self, items: Iterable[tuple[str, ImageInput]], batch_size: int = 64,
                       explain: str | None = None, keep_chips: bool = False, keep_photo: bool = False,
                       progress: bool = False) -> Iterator[PhotoResult]:
        """One ``PhotoResult`` per ``(name, image)`` item, in order (see the module docstring).

        ``explain``: also compute each face's explanation map (``FaceResult.attribution``; for ``bcos`` also
        its colour explanation, ``FaceResult.explanation_image``); ``keep_chips``:
        keep the aligned faces; ``keep_photo``: keep the decoded photos. Faces of consecutive inputs are
        classified ``batch_size`` at a time; results are yielded as their batch finishes."""
        pending: list[_Found] = []
        pending_faces = 0
        for name, image in progress_bar(items, desc="predict", unit="image", disable=not progress):
            pending.append(self._find(str(name), image, keep_photo))
            pending_faces += len(pending[-1].faces)
            if pending_faces >= batch_size:
                yield from self._finish(pending, explain, keep_chips)
                pending, pending_faces = [], 0
        if pending:
            yield from self._finish(pending, explain, keep_chips)

    def predict_paths(self, paths: Sequence[str | Path], batch_size: int = 64, explain: str | None = None,
                      progress: bool = True, keep_chips: bool = False, keep_photo: bool = False) -> Iterator[PhotoResult]:
        """``predict_images`` over files, each named by its path as given."""
        items = [(str(path), Path(path)) for path in paths]
        return self.predict_images(items, batch_size, explain, keep_chips, keep_photo, progress)
