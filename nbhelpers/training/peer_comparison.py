"""The suite's model against the dlib-models peer (``nbhelpers.models.peer.PeerGenderClassifier``) on the
same faces: accuracy, per-class and balanced accuracy of both, and the paired right / wrong counts
(which images only one of them gets right), the table of notebook 04 and ``benchmarks/bench_peer.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nbhelpers.models.peer import PeerGenderClassifier
from nbhelpers.training.evaluation import classification_metrics

__all__ = ["compare_with_peer", "compare_run_with_peer"]


def compare_with_peer(labels: np.ndarray, ours: np.ndarray, peer: np.ndarray,
                      names: tuple[str, str] = ("ours", "dlib peer")) -> tuple[pd.DataFrame, dict[str, int]]:
    """Accuracy, per-class and balanced accuracy of both on the same images, of their equal-weight mean (the
    prediction path's peer ensemble, ``nbhelpers.predict.predictor``), and the paired disagreement counts.

    ``labels`` (N,) class indices; ``ours`` and ``peer`` (N, classes) probabilities. Returns a table with one row
    per name and a third, ``<first> + <second> (mean)``, and the counts ``both right``, ``only <first> right``,
    ``only <second> right``, ``both wrong``. Raises ``ValueError`` when the two probability arrays differ in shape.
    """
    if np.shape(ours) != np.shape(peer):
        raise ValueError(f"ours {np.shape(ours)} and peer {np.shape(peer)} probabilities differ in shape")
    rows = {}
    ensemble = f"{names[0]} + {names[1]} (mean)"
    for name, probabilities in zip((*names, ensemble), (ours, peer, (ours + peer) / 2)):
        metrics = classification_metrics(labels, probabilities)
        rows[name] = {"accuracy": metrics["accuracy"], **{f"{key} accuracy": value for key, value in
                                                         metrics["per_class_accuracy"].items()},
                      "balanced accuracy": metrics["balanced_accuracy"], "images": metrics["count"]}
    ours_right, peer_right = ours.argmax(1) == labels, peer.argmax(1) == labels
    paired = {"both right": int((ours_right & peer_right).sum()), f"only {names[0]} right": int((ours_right & ~peer_right).sum()),
              f"only {names[1]} right": int((~ours_right & peer_right).sum()), "both wrong": int((~ours_right & ~peer_right).sum())}
    return pd.DataFrame(rows).T, paired


def compare_run_with_peer(trained: Any, split: str = "test",
                          peer: PeerGenderClassifier | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Compare a ``run_training`` result (``TrainedModel``) with the peer on the same ``split`` images."""
    predictions = trained.predictions[split]
    peer_probabilities = (peer or PeerGenderClassifier()).predict_proba(np.asarray(trained.cache.images[predictions.rows]))
    return compare_with_peer(predictions.labels, predictions.probabilities, peer_probabilities,
                             (trained.name, "dlib peer (32 px)"))
