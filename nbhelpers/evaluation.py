"""Evaluation: predicted probabilities (with optional flip test-time augmentation) and metrics.

Accuracy, per-class accuracy, balanced accuracy and the confusion matrix; the probabilities are
kept for calibration and the bias study.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from nbhelpers.classification_base import ImageClassificationBase
from nbhelpers.manifest import GENDERS

__all__ = ["predict_probabilities", "classification_metrics"]


@torch.no_grad()
def predict_probabilities(model: ImageClassificationBase, loader: Iterable, device: torch.device | None = None,
                          flip_tta: bool = False, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N x classes) and labels (N) over ``loader``; ``flip_tta`` averages with the mirrored image."""
    device = device or next(model.parameters()).device
    model.eval()
    probabilities, labels = [], []
    for images, targets in tqdm(loader, desc="predict", leave=False, disable=not progress):
        images = images.to(device)
        batch = model.probabilities(model(images).float())
        if flip_tta:
            batch = (batch + model.probabilities(model(images.flip(-1)).float())) / 2
        probabilities.append(batch.cpu())
        labels.append(targets.cpu())
    return torch.cat(probabilities).numpy(), torch.cat(labels).numpy()


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
