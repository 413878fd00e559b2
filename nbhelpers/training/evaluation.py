"""Evaluation: predicted probabilities and metrics.

``predict_probabilities`` runs a model over a loader (with optional flip test-time augmentation);
``predict_faces`` is the one batched path from uint8 faces to probabilities, used by the explanation
report, the predictor and the explanation report. Metrics: accuracy, per-class accuracy, balanced accuracy and
the confusion matrix; the probabilities are kept for calibration and the bias study.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from nbhelpers.data.manifest import GENDERS
from nbhelpers.models.base import ImageClassificationBase
from nbhelpers.models.inference import flip_averaged_probabilities
from nbhelpers.utils.progress import progress_bar

__all__ = ["predict_probabilities", "predict_faces", "classification_metrics"]


@torch.no_grad()
def predict_probabilities(model: ImageClassificationBase, loader: Iterable, device: torch.device | None = None,
                          flip_tta: bool = False, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N x classes) and labels (N) over ``loader``; ``flip_tta`` averages with the mirrored image."""
    device = device or next(model.parameters()).device
    model.eval()
    probabilities, labels = [], []
    for images, targets in progress_bar(loader, desc="predict", leave=False, disable=not progress):
        probabilities.append(flip_averaged_probabilities(model, images.to(device), flip_tta).cpu())
        labels.append(targets.cpu())
    return torch.cat(probabilities).numpy(), torch.cat(labels).numpy()


def _batch_predictor(model: Any, preprocess: Callable[[Any], torch.Tensor] | None,
                     flip_tta: bool = False) -> Callable[[Any], Any]:
    """uint8 batch -> probabilities for a ``TrainedModel``, a module with ``preprocess``, or a callable as it is."""
    if preprocess is None and hasattr(model, "preprocess") and hasattr(model, "model"):  # a TrainedModel
        model, preprocess = model.model, model.preprocess
    if isinstance(model, nn.Module):
        if preprocess is None:
            raise ValueError(f"predict_faces needs preprocess (uint8 faces -> input of {type(model).__name__})")
        return lambda batch: flip_averaged_probabilities(model, preprocess(batch), flip_tta)
    return model


@torch.no_grad()
def predict_faces(model: Any, faces: np.ndarray | torch.Tensor, batch_size: int = 128,
                  preprocess: Callable[[Any], torch.Tensor] | None = None, flip_tta: bool = False) -> np.ndarray:
    """Class probabilities (N, classes) of uint8 faces (N, H, W, 3), ``batch_size`` faces per forward pass.

    ``model``: a ``TrainedModel`` (its model and ``preprocess``), a torch module with ``preprocess`` (uint8
    faces -> the model's input), or any callable from a uint8 batch to probabilities (e.g. an ONNX session's).
    ``flip_tta``: average with the mirrored faces (``flip_averaged_probabilities``; torch modules only).
    """
    predict = _batch_predictor(model, preprocess, flip_tta)
    parts = [predict(faces[start:start + batch_size]) for start in range(0, len(faces), batch_size)]
    parts = [part.float().cpu().numpy() if isinstance(part, torch.Tensor) else np.asarray(part) for part in parts]
    return np.concatenate(parts) if parts else np.zeros((0, len(GENDERS)), dtype=np.float32)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           classes: Sequence[str] = GENDERS) -> dict[str, object]:
    """Accuracy, per-class accuracy (recall), balanced accuracy and confusion matrix (rows: truth)."""
    labels = np.asarray(labels)
    predictions = np.asarray(probabilities).argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (labels, predictions), 1)
    per_class = {name: float(confusion[index, index] / confusion[index].sum()) if confusion[index].sum() else float("nan")
                 for index, name in enumerate(classes)}
    return {"accuracy": float((predictions == labels).mean()) if len(labels) else float("nan"),
            "per_class_accuracy": per_class,
            "balanced_accuracy": float(np.nanmean(list(per_class.values()))),
            "confusion_matrix": confusion.tolist(), "count": int(len(labels))}
