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

__all__ = ["PEER_ROW", "PROBE_ROW", "compare_with_peer", "compare_run_with_peer", "comparison_summary"]

PEER_ROW = "dlib peer (32 px)"  # the peer's row in the comparison tables
PROBE_ROW = "descriptor probe"  # the face-descriptor probe's row


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
                          members: Sequence[Any] = (), probe: np.ndarray | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Compare a ``run_training`` result (``TrainingResult``) with the peer on the same ``split`` images.

    ``members``: results of the same recipe with other seeds or the context swap. Then the table starts with one
    row per run (named by its run id), and "ours" is their mean (``<model> x<k> runs``), averaged with the peer with
    equal weights per vote (the peer weighs 1 / (k + 1)). ``probe``: (N, 2) probabilities of the face-descriptor
    probe (``nbhelpers.training.face_probe.probe_probabilities``) on the same images; then two rows follow, the
    probe and ``<ours> + dlib peer + descriptor probe (mean)``, every vote weighing 1 / (k + 2): the prediction
    path's answer when a probe lies beside the runs. ``comparison_summary`` names the rows. Raises ``ValueError``
    when a member was evaluated on other images, or the probe's probabilities have another shape."""
    predictions = trained.predictions[split]
    peer_probabilities = (peer or PeerGenderClassifier()).predict_proba(np.asarray(trained.cache.images[predictions.rows]))
    runs = [trained, *members]
    for member in members:
        if not np.array_equal(member.predictions[split].rows, predictions.rows):
            raise ValueError(f"{member.trained.run_id}: evaluated on other {split} images than {trained.trained.run_id}")
    mean = np.mean([run.predictions[split].probabilities for run in runs], axis=0)
    ours = f"{trained.name} x{len(runs)} runs" if members else trained.name
    table, paired = compare_with_peer(predictions.labels, mean, peer_probabilities, (ours, PEER_ROW), 1 / (len(runs) + 1))
    if members:
        rows = {run.trained.run_id or run.name: _row(predictions.labels, run.predictions[split].probabilities) for run in runs}
        table = pd.concat([pd.DataFrame(rows).T, table])
    if probe is None:
        return table, paired
    if np.shape(probe) != np.shape(mean):
        raise ValueError(f"probe {np.shape(probe)} and run {np.shape(mean)} probabilities differ in shape")
    every_vote = (len(runs) * mean + peer_probabilities + probe) / (len(runs) + 2)
    rows = {PROBE_ROW: _row(predictions.labels, probe),
            f"{ours} + {PEER_ROW} + {PROBE_ROW} (mean)": _row(predictions.labels, every_vote)}
    return pd.concat([table, pd.DataFrame(rows).T]), paired


def comparison_summary(table: pd.DataFrame) -> dict[str, dict[str, Any] | None]:
    """The rows of a ``compare_run_with_peer`` table by role, for ``summary.json``: ``deep_ensemble`` (with
    members), ``dlib_peer``, ``peer_ensemble`` (runs + peer), ``descriptor_probe`` and ``probe_ensemble`` (runs +
    peer + probe). Each row: its name in the table (``row``), accuracy, per-class and balanced accuracy, images;
    a role the table lacks is ``None``, so that a report updated in place keeps no row of an earlier run.
    Raises ``ValueError`` for a table without the peer's row (``PEER_ROW``)."""
    names = list(table.index)
    if PEER_ROW not in names:
        raise ValueError(f"no {PEER_ROW!r} row in the table: not a compare_run_with_peer table")
    peer_at = names.index(PEER_ROW)
    roles: dict[str, int | None] = {"deep_ensemble": peer_at - 1 if peer_at > 1 else None,  # runs, their mean, peer
                                    "dlib_peer": peer_at, "peer_ensemble": peer_at + 1,
                                    "descriptor_probe": None, "probe_ensemble": None}
    if PROBE_ROW in names:
        roles.update(descriptor_probe=names.index(PROBE_ROW), probe_ensemble=names.index(PROBE_ROW) + 1)
    return {role: None if position is None else {"row": names[position], **table.iloc[position].to_dict()}
            for role, position in roles.items()}
