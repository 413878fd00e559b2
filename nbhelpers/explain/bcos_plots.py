"""Figures and checks for B-cos explanations of a trained run (notebook 05).

The explanations follow Böhle, Fritz, Schiele, "B-cos Networks: Alignment is All We Need for
Interpretability" (CVPR 2022) and "B-cos Alignment for Inherently Interpretable CNNs and Vision
Transformers" (TPAMI 2024): the colour explanation shows the dynamic linear weights W(x) where they
contribute positively; the contribution map (W(x) * x summed over channels) sums exactly to the logit
minus the logit bias, which ``completeness_table`` checks on real faces.
"""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from nbhelpers.data.loaders import CLASSES
from nbhelpers.training.result import TrainingResult
from nbhelpers.explain.bcos import BcosExplanation, explain
from nbhelpers.explain.checkerboard import checkerboard_index
from nbhelpers.explain.metrics import face_focus

__all__ = ["explain_split", "gallery_rows", "show_bcos_explanations", "describe_gallery", "completeness_table"]


def gallery_rows(probabilities: np.ndarray, labels: np.ndarray, count: int = 8, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` faces for a gallery: for each class in turn, a correctly classified face and a
    misclassified one (drawn with ``seed``), filled up with other faces where a kind runs out; sorted by
    (class, right before wrong). ``probabilities`` (N, classes), ``labels`` (N,) int."""
    rng = np.random.default_rng(seed)
    predicted = np.asarray(probabilities).argmax(1)
    labels = np.asarray(labels)
    pools = {(label, right): list(rng.permutation(np.flatnonzero((labels == label) & ((predicted == labels) == right))))
             for label in np.unique(labels) for right in (True, False)}
    chosen: list[int] = []
    while len(chosen) < min(count, len(labels)) and any(pools.values()):
        for key in sorted(pools, key=lambda key: (key[0], not key[1])):
            if pools[key] and len(chosen) < count:
                chosen.append(int(pools[key].pop()))
    order = sorted(chosen, key=lambda row: (labels[row], predicted[row] != labels[row]))
    return np.asarray(order, dtype=int)


def explain_split(trained: TrainingResult, split: str = "test", count: int = 8, seed: int = 0,
                  target: str | int = "predicted",
                  gallery: bool = False) -> tuple[np.ndarray, np.ndarray, BcosExplanation]:
    """Explain ``count`` faces drawn (seeded) from ``split`` of a ``run_training`` result of a B-cos model;
    with ``gallery``, right and wrong faces of both classes (``gallery_rows``) instead of a random draw.

    Returns the uint8 faces (N, H, W, 3), their labels and the ``BcosExplanation``.
    Raises ``ValueError`` for a run of a model without the B-cos encoding.
    """
    if not trained.spec.is_bcos:
        raise ValueError(f"run of {trained.name!r} does not use the B-cos input encoding")
    predictions = trained.predictions[split]
    rows = predictions.rows
    if gallery:
        pick = gallery_rows(predictions.probabilities, predictions.labels, count, seed)
    else:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=min(count, len(rows)), replace=False))
    faces = np.asarray(trained.cache.images[rows[pick]])
    model = trained.model.eval()
    return faces, predictions.labels[pick], explain(model, trained.trained.preprocess(faces), target)


def _symmetric(values: np.ndarray) -> float:
    return float(np.abs(values).max()) or 1.0


def show_bcos_explanations(faces: np.ndarray, labels: np.ndarray, explanation: BcosExplanation,
                           classes: tuple[str, ...] = CLASSES) -> plt.Figure:
    """Three rows per face: the face (title: prediction, probability, truth), the colour explanation, the contributions."""
    count = len(faces)
    figure, axes = plt.subplots(3, count, figsize=(1.6 * count, 5.2), squeeze=False)
    colour = explanation.colour.cpu().numpy()
    contributions = explanation.contributions.cpu().numpy()
    for column in range(count):
        predicted, target = int(explanation.predicted[column]), int(explanation.targets[column])
        probability = float(explanation.probabilities[column, predicted])
        truth = "" if predicted == labels[column] else f"\n(true {classes[labels[column]]})"
        axes[0, column].imshow(faces[column])
        axes[0, column].set_title(f"{classes[predicted]} {probability:.2f}{truth}", fontsize=8)
        axes[1, column].imshow(np.ones_like(faces[column], dtype=float))
        axes[1, column].imshow(colour[column])
        axes[1, column].set_title(f"why {classes[target]}", fontsize=8)
        limit = _symmetric(contributions[column])
        axes[2, column].imshow(contributions[column], cmap="bwr", vmin=-limit, vmax=limit)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    return figure


def describe_gallery(labels: np.ndarray, explanation: BcosExplanation, classes: tuple[str, ...] = CLASSES) -> str:
    """A few sentences (Markdown) on a gallery's explanations, computed from them: for the right and the wrong
    faces, the mean share of the positive contribution on the inner face (``FACE_BOX``: eyes, nose, mouth;
    a uniform map puts 0.43 there) and the mean explained probability; and the maps' mean ``checkerboard_index``."""
    labels = np.asarray(labels)
    right = explanation.predicted.cpu().numpy() == labels
    focus = face_focus(explanation.contributions.cpu()).numpy()
    confidence = explanation.probabilities.cpu().numpy()[np.arange(len(labels)), explanation.targets.cpu().numpy()]
    lines = []
    for name, rows in (("right", right), ("wrong", ~right)):
        if rows.any():
            lines.append(f"- {rows.sum()} {name} faces: {np.nanmean(focus[rows]):.0%} of the positive contribution "
                         f"on the inner face (a uniform map: 43%), explained class probability {confidence[rows].mean():.2f}")
    by_class = ", ".join(f"{classes[label]} {np.nanmean(focus[labels == label]):.0%}" for label in np.unique(labels))
    checkerboard = float(checkerboard_index(explanation.contributions.cpu()).mean())
    return "\n".join(lines + [f"- inner-face share by true class: {by_class}",
                               f"- checkerboard index of the contribution maps {checkerboard:.4f} (power share near the "
                               "Nyquist frequencies; white noise 0.047)"])


def completeness_table(explanation: BcosExplanation, model: torch.nn.Module) -> pd.DataFrame:
    """Per face: the explained logit, the sum of its contribution map plus the logit bias, and the absolute and
    relative (to |logit|) gaps."""
    bias = float(getattr(model, "logit_bias", 0.0) or 0.0)
    totals = explanation.contributions.flatten(1).sum(1).double().cpu().numpy() + bias
    logits = explanation.target_logits.double().cpu().numpy()
    gap = np.abs(logits - totals)
    return pd.DataFrame({"logit": logits, "contributions + bias": totals, "absolute gap": gap,
                         "relative gap": gap / np.maximum(np.abs(logits), np.finfo(float).tiny)})
