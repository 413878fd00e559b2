"""Knowledge distillation: train a model on a trained teacher's class probabilities mixed with the labels.

Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network" (2015): a student trained on the
teacher's soft targets learns the teacher's similarities between classes and its uncertainty, not only the
label. B-cos v2 (Böhle et al., "B-cos Alignment for Inherently Interpretable CNNs and Vision Transformers",
TPAMI 2024) also reports B-cos networks trained by distillation from a conventional teacher. Here the
student (e.g. the B-cos EfficientNet-Lite0) learns from the suite's best model; its B-cos loss, a binary
cross-entropy per class, takes the soft targets in place of the one-hot ones.

The teacher runs once: its flip-averaged probabilities of every decoded cache row are saved beside the
image cache as ``<cache stem>.teacher-<teacher run id or checkpoint hash>.npy`` (float32, NaN for rows that
failed to decode), with a JSON naming the teacher checkpoint (path, size, SHA-256), the cache fingerprint
and the flip setting; a later run with the same teacher and cache reuses the file. The training targets are
``(1 - distillation) * one_hot(label) + distillation * teacher_probabilities`` (``soft_targets``); every loss
of the suite accepts them (``nbhelpers.models.base.target_probabilities``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from nbhelpers.data.cache import ImageCache, build_cache, manifest_fingerprint
from nbhelpers.data.manifest import labels_of
from nbhelpers.models import list_models
from nbhelpers.models.inference import flip_averaged_probabilities
from nbhelpers.training.result import TrainedModel
from nbhelpers.training.runs import find_run, load_run
from nbhelpers.utils.atomic import atomic_path, atomic_write_json
from nbhelpers.utils.progress import progress_bar

__all__ = ["load_teacher", "teacher_probabilities", "teacher_cache_path", "soft_targets"]


def load_teacher(teacher: str, checkpoint_dir: str | Path = "",
                 device: str | torch.device | None = None) -> TrainedModel:
    """The teacher ``TrainedModel`` (eval mode, on ``device``): the newest plain run of the registered model
    ``teacher`` in ``checkpoint_dir``'s run index, or the checkpoint file ``teacher``.

    Raises ``FileNotFoundError`` naming the fix when the file or the run is missing, ``ValueError`` when
    ``teacher`` is neither a file nor a registered model, or names a model without a ``checkpoint_dir``."""
    path = Path(teacher)
    if path.is_file():
        return load_run(path, device)
    if teacher not in list_models():
        raise ValueError(f"teacher={teacher!r} is neither a checkpoint file nor a registered model "
                         f"({', '.join(list_models())}); train the teacher first or pass its model.pt")
    if not checkpoint_dir:
        raise ValueError(f"teacher={teacher!r} names a model, whose newest run is looked up in checkpoint_dir, "
                         "which is empty; set --checkpoint-dir or pass the teacher's checkpoint file")
    entry = find_run(checkpoint_dir, teacher)  # FileNotFoundError naming the index and the training command
    return load_run(entry["checkpoint"], device, entry["run_id"])


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _teacher_identity(teacher: TrainedModel, cache: ImageCache, flip_tta: bool) -> dict:
    """What the cached probabilities depend on: the teacher checkpoint, the cache rows and the flip setting."""
    if teacher.checkpoint is None or not Path(teacher.checkpoint).is_file():
        raise ValueError(f"teacher {teacher.name!r} has no checkpoint file ({teacher.checkpoint}); its probabilities "
                         "are cached under its checkpoint: save it (run_training with checkpoint_dir) first")
    checkpoint = Path(teacher.checkpoint)
    return {"checkpoint": str(checkpoint.resolve()), "checkpoint_bytes": checkpoint.stat().st_size,
            "checkpoint_sha256": _file_sha256(checkpoint), "run_id": teacher.run_id,
            "cache_fingerprint": manifest_fingerprint(cache.frame, cache.size), "flip_tta": bool(flip_tta)}


def teacher_cache_path(cache: ImageCache, identity: dict) -> Path:
    """``<cache stem>.teacher-<run id or first 12 hex digits of the checkpoint hash>.npy`` beside the cache."""
    key = identity["run_id"] or identity["checkpoint_sha256"][:12]
    return cache.path.with_name(f"{cache.path.stem}.teacher-{key}.npy")


def _teacher_images(teacher: TrainedModel, cache: ImageCache) -> ImageCache:
    """The cache at the teacher's input size (the same frame, so the same rows); ``cache`` when it already is."""
    size = teacher.spec.input_size
    if not size or size == cache.size:
        return cache
    dataset = cache.path.stem.removesuffix(f"_{cache.size}")
    return build_cache(cache.frame, dataset, size, cache.path.parent)


def _forward(teacher: TrainedModel, source: ImageCache, rows: np.ndarray, batch_size: int, flip_tta: bool,
             progress: bool) -> np.ndarray:
    teacher.model.eval()
    transform, device = teacher.eval_transform(), next(teacher.model.parameters()).device
    outputs = []
    starts = range(0, len(rows), batch_size)
    for start in progress_bar(starts, desc="teacher", leave=False, disable=not progress):
        images = torch.from_numpy(np.ascontiguousarray(source.images[rows[start:start + batch_size]]))
        inputs = transform(images).to(device)
        outputs.append(flip_averaged_probabilities(teacher.model, inputs, flip_tta).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, len(teacher.spec.classes)), np.float32)


def teacher_probabilities(teacher: TrainedModel, cache: ImageCache, batch_size: int = 256, flip_tta: bool = True,
                          progress: bool = False) -> np.ndarray:
    """float32 (rows of ``cache``, classes) probabilities of ``teacher`` (its own evaluation transform and input
    size, mirrored-image averaged with ``flip_tta``); NaN in the rows that failed to decode (``bad_rows``).

    Computed once and saved beside the cache (``teacher_cache_path``, written atomically with its JSON);
    reused while the teacher checkpoint (path, size, SHA-256), the cache fingerprint and ``flip_tta`` match.
    Raises ``ValueError`` when the teacher has no checkpoint file."""
    identity = _teacher_identity(teacher, cache, flip_tta)
    path = teacher_cache_path(cache, identity)
    meta_path = path.with_suffix(".json")
    classes = len(teacher.spec.classes)
    if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == identity:
        stored = np.load(path)
        if stored.shape == (len(cache.frame), classes):
            return stored
    source = _teacher_images(teacher, cache)
    bad_rows = sorted(set(cache.bad_rows) | set(source.bad_rows))
    rows = np.setdiff1d(np.arange(len(cache.frame)), np.asarray(bad_rows, dtype=int))
    probabilities = np.full((len(cache.frame), classes), np.nan, dtype=np.float32)
    probabilities[rows] = _forward(teacher, source, rows, batch_size, flip_tta, progress)
    with atomic_path(path, suffix=".npy") as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, probabilities)
    atomic_write_json(meta_path, identity)
    return probabilities


def soft_targets(cache: ImageCache, probabilities: np.ndarray, distillation: float) -> np.ndarray:
    """float32 (rows of ``cache``, classes) training targets ``(1 - distillation) * one_hot(label) +
    distillation * probabilities`` (NaN where ``probabilities`` is, i.e. rows that failed to decode).

    Raises ``ValueError`` when ``distillation`` is outside [0, 1] or ``probabilities`` does not fit the cache."""
    if not 0.0 <= distillation <= 1.0:
        raise ValueError(f"distillation={distillation}: the teacher's weight in the targets must lie in [0, 1]")
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2 or len(probabilities) != len(cache.frame):
        raise ValueError(f"teacher probabilities of shape {probabilities.shape} do not fit the cache {cache.path} "
                         f"({len(cache.frame)} rows)")
    one_hot = np.eye(probabilities.shape[1], dtype=np.float32)[labels_of(cache)]
    return ((1.0 - distillation) * one_hot + distillation * probabilities).astype(np.float32)
