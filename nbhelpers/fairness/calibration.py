"""Calibration: expected calibration error (ECE) and reliability curves, overall and per group.

Confidence is the probability of the predicted class; a prediction is correct when the
argmax equals the label. Bins are equal-width on [0, 1], right-closed (a confidence of 1.0
falls in the last bin, 0.0 in the first). With two classes confidences are >= 0.5, so the
lower bins stay empty. ECE = sum over bins of (bin count / N) * |accuracy - mean confidence|.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbhelpers.data.groups import Grouping, assign_groups
from nbhelpers.data.manifest import labels_of

__all__ = ["confidence_and_correct", "bin_indices", "expected_calibration_error", "reliability_curve",
           "reliability_by_group"]


def confidence_and_correct(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence (max probability) and correctness (argmax == label) of each prediction."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"probabilities must be N x classes with N = {len(labels)} labels, got {probabilities.shape}")
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == labels


def bin_indices(confidences: np.ndarray, bins: int = 15) -> np.ndarray:
    """Bin of each confidence: equal-width right-closed bins on [0, 1]."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return np.clip(np.ceil(np.asarray(confidences, dtype=np.float64) * bins).astype(np.int64) - 1, 0, bins - 1)


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = 15) -> float | np.ndarray:
    """ECE of 1-D inputs (a float), or of each row of 2-D inputs (an array; used by the bootstrap).

    Returns NaN when there are no predictions.
    """
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidences.shape != correct.shape:
        raise ValueError(f"confidences {confidences.shape} and correct {correct.shape} differ in shape")
    rows = np.atleast_2d(confidences)
    hits = np.atleast_2d(correct)
    count = rows.shape[1]
    if count == 0:
        result = np.full(rows.shape[0], np.nan)
    else:
        flat = bin_indices(rows, bins) + bins * np.arange(rows.shape[0])[:, None]
        size = rows.shape[0] * bins
        correct_sums = np.bincount(flat.ravel(), weights=hits.ravel(), minlength=size).reshape(-1, bins)
        confidence_sums = np.bincount(flat.ravel(), weights=rows.ravel(), minlength=size).reshape(-1, bins)
        result = np.abs(correct_sums - confidence_sums).sum(axis=1) / count
    return float(result[0]) if confidences.ndim <= 1 else result


def reliability_curve(confidences: np.ndarray, correct: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """One row per bin: bin_low, bin_high, bin_mid, accuracy, confidence (mean) and count (NaN if empty)."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = bin_indices(confidences, bins)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
        confidence = np.bincount(index, weights=confidences, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "bin_mid": (edges[:-1] + edges[1:]) / 2,
                         "accuracy": accuracy, "confidence": confidence, "count": count})


def reliability_by_group(frame: pd.DataFrame, probabilities: np.ndarray, grouping: Grouping,
                         bins: int = 10) -> pd.DataFrame:
    """Reliability curves of every group of ``grouping`` stacked, with ``group`` and ``ece`` columns.

    Labels come from ``frame["gender"]`` (female 0, male 1); empty groups are left out.
    """
    labels = labels_of(frame)
    confidences, correct = confidence_and_correct(probabilities, labels)
    groups = assign_groups(frame, grouping)
    curves = []
    for level_index, level in enumerate(groups.levels):
        members = groups.members(level_index)
        if len(members) == 0:
            continue
        curve = reliability_curve(confidences[members], correct[members], bins)
        curve.insert(0, "group", level)
        curve["ece"] = expected_calibration_error(confidences[members], correct[members], bins)
        curves.append(curve)
    columns = ["group", "bin_low", "bin_high", "bin_mid", "accuracy", "confidence", "count", "ece"]
    return pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=columns)
