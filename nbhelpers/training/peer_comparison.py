"""The suite's model against the dlib-models peer (``nbhelpers.models.peer.PeerGenderClassifier``) on the
same faces: accuracy, per-class and balanced accuracy of both, and the paired right / wrong counts
(which images only one of them gets right), the table of notebook 04 and ``benchmarks/bench_peer.py``. With
runs of the same recipe trained with other seeds or the context swap (``members``), "ours" is their deep ensemble
(Lakshminarayanan et al., NeurIPS 2017; ``nbhelpers.training.runs.ensemble_siblings``), averaged with the peer as
the prediction path does: every vote weighs the same.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from nbhelpers.models.peer import PeerGenderClassifier
from nbhelpers.training.evaluation import classification_metrics

__all__ = ["compare_with_peer", "compare_run_with_peer"]


def _row(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """One row of the comparison table: accuracy, per-class and balanced accuracy, and the image count."""
    metrics = classification_metrics(labels, probabilities)
    return {"accuracy": metrics["accuracy"], **{f"{key} accuracy": value for key, value in metrics["per_class_accuracy"].items()},
            "balanced accuracy": metrics["balanced_accuracy"], "images": metrics["count"]}


def compare_with_peer(labels: np.ndarray, ours: np.ndarray, peer: np.ndarray,
                      names: tuple[str, str] = ("ours", "dlib peer"),
                      peer_weight: float = 0.5) -> tuple[pd.DataFrame, dict[str, int]]:
    """Accuracy, per-class and balanced accuracy of both on the same images, of their mean (the prediction path's
    peer ensemble, ``nbhelpers.predict.predictor``), and the paired disagreement counts.

    ``labels`` (N,) class indices; ``ours`` and ``peer`` (N, classes) probabilities; ``peer_weight``: the peer's
    weight in the mean (0.5: equal weights; 1 / (k + 1) when ``ours`` is the mean of k runs). Returns a table
    with one row per name and a third, ``<first> + <second> (mean)``, and the counts ``both right``,
    ``only <first> right``, ``only <second> right``, ``both wrong``. Raises ``ValueError`` when the two
    probability arrays differ in shape.
    """
    if np.shape(ours) != np.shape(peer):
        raise ValueError(f"ours {np.shape(ours)} and peer {np.shape(peer)} probabilities differ in shape")
    rows = {}
    ensemble = f"{names[0]} + {names[1]} (mean)"
    mean = (1 - peer_weight) * ours + peer_weight * peer
    for name, probabilities in zip((*names, ensemble), (ours, peer, mean)):
        rows[name] = _row(labels, probabilities)
    ours_right, peer_right = ours.argmax(1) == labels, peer.argmax(1) == labels
    paired = {"both right": int((ours_right & peer_right).sum()), f"only {names[0]} right": int((ours_right & ~peer_right).sum()),
              f"only {names[1]} right": int((~ours_right & peer_right).sum()), "both wrong": int((~ours_right & ~peer_right).sum())}
    return pd.DataFrame(rows).T, paired


def compare_run_with_peer(trained: Any, split: str = "test", peer: PeerGenderClassifier | None = None,
                          members: Sequence[Any] = ()) -> tuple[pd.DataFrame, dict[str, int]]:
    """Compare a ``run_training`` result (``TrainingResult``) with the peer on the same ``split`` images.

    ``members``: results of the same recipe with other seeds or the context swap. Then the table starts with one
    row per run (named by its run id), and "ours" is their mean (``<model> x<k> runs``), averaged with the peer with
    equal weights per vote (the peer weighs 1 / (k + 1)). Raises ``ValueError`` when a member was evaluated on
    other images."""
    predictions = trained.predictions[split]
    peer_probabilities = (peer or PeerGenderClassifier()).predict_proba(np.asarray(trained.cache.images[predictions.rows]))
    if not members:
        return compare_with_peer(predictions.labels, predictions.probabilities, peer_probabilities,
                                 (trained.name, "dlib peer (32 px)"))
    runs = [trained, *members]
    for member in members:
        if not np.array_equal(member.predictions[split].rows, predictions.rows):
            raise ValueError(f"{member.trained.run_id}: evaluated on other {split} images than {trained.trained.run_id}")
    mean = np.mean([run.predictions[split].probabilities for run in runs], axis=0)
    table, paired = compare_with_peer(predictions.labels, mean, peer_probabilities,
                                      (f"{trained.name} x{len(runs)} runs", "dlib peer (32 px)"), 1 / (len(runs) + 1))
    rows = {run.trained.run_id or run.name: _row(predictions.labels, run.predictions[split].probabilities) for run in runs}
    return pd.concat([pd.DataFrame(rows).T, table]), paired
