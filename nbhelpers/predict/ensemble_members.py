"""The extra voters of the prediction path's ensembles, loaded for a named run (``nbhelpers.predict.predictor``
documents how they are averaged): the other runs of its deep ensemble (``nbhelpers.training.runs.ensemble_siblings``)
and the face-descriptor probe saved beside its runs (``nbhelpers.training.face_probe``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nbhelpers.data.images import ImageLoadError
from nbhelpers.explain.base import is_bcos_model
from nbhelpers.models.face_descriptor import DescriptorProbe, describe_chips, describe_faces, load_descriptor_models
from nbhelpers.training.checkpoint import CheckpointError
from nbhelpers.training.face_probe import probe_path
from nbhelpers.training.result import TrainedModel
from nbhelpers.training.runs import ensemble_siblings, load_run

__all__ = ["load_ensemble_members", "find_descriptor_probe", "photo_descriptors"]


def load_ensemble_members(trained: TrainedModel, device: torch.device) -> list[TrainedModel]:
    """The other members of a black-box checkpoint's deep ensemble, loaded (none for a B-cos model or an unsaved
    one). Raises ``CheckpointError`` naming an unusable member, and ``ValueError`` for an unreadable run index
    or a member whose classes or input size differ, each with the way out (``--deep-ensemble off``)."""
    named = trained.checkpoint
    if is_bcos_model(trained.model) or named is None:
        return []
    hint = "; pass --deep-ensemble off (deep_ensemble='off') to answer with the named run alone"
    try:
        paths = ensemble_siblings(named)
    except ValueError as error:
        raise ValueError(f"{error}{hint}") from None
    members = []
    for path in paths:
        try:
            member = load_run(path, device)
        except CheckpointError as error:
            raise CheckpointError(f"ensemble sibling of {named}: {error}{hint}") from None
        if list(member.spec.classes) != list(trained.spec.classes) or member.spec.input_size != trained.spec.input_size:
            raise ValueError(f"{path}: ensemble sibling of {named} has other classes or input size "
                             f"({list(member.spec.classes)}, {member.spec.input_size} px){hint}")
        members.append(member)
    return members


def find_descriptor_probe(trained: TrainedModel) -> tuple[DescriptorProbe, Path] | None:
    """The face-descriptor probe saved in the checkpoint folder of a black-box run (``<checkpoint_dir>/<run>/
    model.pt`` -> ``<checkpoint_dir>/face_descriptor_probe.json``) and its path, or None (a B-cos model, an
    unsaved run, no probe there). Raises ``ValueError`` naming the file for one that is not a probe, or naming
    a dlib model file that is missing (the ``regions`` extra) or unreadable, each with the way out."""
    if is_bcos_model(trained.model) or trained.checkpoint is None:
        return None
    path = probe_path(Path(trained.checkpoint).absolute().parent.parent)
    if not path.is_file():
        return None
    hint = "; or pass --descriptor-probe off (descriptor_probe='off')"
    try:
        probe = DescriptorProbe.load(path)
        load_descriptor_models()  # loaded here, so a missing or damaged model fails once, not once per photo
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise ValueError(f"{path}: the face-descriptor probe cannot vote: {error}{hint}") from None
    return probe, path


def photo_descriptors(name: str, picture: Any, faces: Sequence[Any], crops: bool) -> np.ndarray:
    """float32 descriptors (len(faces), 128) of the ``DetectedFace`` s found in ``picture`` (a PIL image): from
    the photo around each face's ``landmark_box`` (the detector's rectangle, unclipped, as for its chip), or from
    each aligned chip when ``crops`` (the input is itself a face crop, as the probe's training faces were). Raises ``ImageLoadError`` naming the input when dlib fails on it."""
    try:
        if crops:
            return describe_chips(np.stack([face.chip for face in faces]))
        return describe_faces(np.asarray(picture.convert("RGB")), [face.landmark_box for face in faces])
    except (RuntimeError, ValueError) as error:  # dlib raises RuntimeError on what it cannot process
        raise ImageLoadError(name, f"no face descriptor for the probe ({type(error).__name__}: {error}); pass "
                                   "--descriptor-probe off to answer without it") from None
