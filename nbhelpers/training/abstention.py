"""The *uncertain* outcome: below a confidence threshold the suite answers "uncertain" instead of a label.

Selective classification (Geifman and El-Yaniv, "Selective Classification for Deep Neural Networks",
NeurIPS 2017): the threshold is the lowest confidence (probability of the predicted class) at which the
faces kept on the UTKFace *validation* split reach ``target_accuracy``. ``run_training`` stores it in the
run's metadata (``uncertain_below``); the predictor, the command line, the widget and the web page use it.
It is never fitted on the real-photo evaluation set.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TARGET_ACCURACY", "abstention_threshold", "selective_accuracy"]

TARGET_ACCURACY = 0.97


def selective_accuracy(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(coverage, accuracy on the kept faces) when faces below ``threshold`` confidence are left unanswered."""
    confidence = np.asarray(probabilities).max(axis=1)
    kept = confidence >= threshold
    correct = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    return float(kept.mean()), float(correct[kept].mean()) if kept.any() else float("nan")


def abstention_threshold(probabilities: np.ndarray, labels: np.ndarray,
                         target_accuracy: float = TARGET_ACCURACY) -> float:
    """The lowest confidence threshold whose kept faces reach ``target_accuracy`` (0.5 when all do already;
    the highest confidence seen when none does)."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if not len(labels):
        raise ValueError("no validation predictions to choose an abstention threshold from")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    order = np.argsort(-confidence, kind="stable")
    accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)  # kept = the k most confident
    reaching = np.flatnonzero(accuracy >= target_accuracy)
    if not len(reaching):
        return float(confidence.max())
    threshold = float(confidence[order][reaching[-1]])
    return max(0.5, threshold)
