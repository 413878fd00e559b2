"""The bias study of notebook 07: every trained model's group table, gaps and explanation metrics per group.

Group metrics and bootstrap intervals come from ``nbhelpers.fairness.bias``; the explanation metrics (face
focus, deletion/insertion; Petsiuk et al., BMVC 2018) from ``nbhelpers.explain.evaluation``;
this module joins them with the manifest's group attributes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.groups import assign_groups, grouping_name
from nbhelpers.data.manifest import labels_of
from nbhelpers.fairness.bias import gap_summary, group_table

__all__ = ["bias_columns", "model_group_tables", "model_gaps", "explanation_metrics_by_group", "misclassified_in_group"]


# (demographic column, age column) candidates in order: UTKFace and FairFace, then CelebA's binary attributes
GROUP_CANDIDATES = ("race", "Pale_Skin")
AGE_CANDIDATES = ("age_band", "Young")


def bias_columns(frame: pd.DataFrame, group_column: str = "", age_column: str = "") -> tuple[str, str]:
    """The manifest columns the study plots: the given ones, else the dataset's own (``race`` and ``age_band``
    for UTKFace and FairFace, ``Pale_Skin`` and ``Young`` for CelebA); a clear error when one is missing."""
    chosen = []
    for given, candidates, parameter in ((group_column, GROUP_CANDIDATES, "GROUP_COLUMN"),
                                         (age_column, AGE_CANDIDATES, "AGE_COLUMN")):
        options = (given,) if given else candidates
        found = next((column for column in options if column in frame.columns), None)
        if found is None:
            raise KeyError(f"the manifest has no column {' or '.join(map(repr, options))}; its columns: "
                           f"{sorted(frame.columns)} (set the notebook parameter {parameter})")
        chosen.append(found)
    return chosen[0], chosen[1]


def model_group_tables(frame: pd.DataFrame, probabilities: dict[str, np.ndarray], groupings: Sequence | None = None,
                       min_count: int = 30, bootstrap: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``group_table`` of every model (name -> probabilities of the faces in ``frame`` order)."""
    return {name: group_table(frame, values, groupings, min_count=min_count, bootstrap=bootstrap, seed=seed)
            for name, values in probabilities.items()}


def model_gaps(tables: dict[str, pd.DataFrame], metric: str = "accuracy") -> pd.DataFrame:
    """``gap_summary`` of every model in one table (a ``model`` column first)."""
    return pd.concat([gap_summary(table, metric).assign(model=name) for name, table in tables.items()],
                     ignore_index=True).set_index(["model", "grouping"])


def explanation_metrics_by_group(metrics: pd.DataFrame, frame: pd.DataFrame, grouping: str | Sequence[str],
                                 names: Sequence[str] = ("face_focus", "deletion_auc", "insertion_auc")) -> pd.DataFrame:
    """Mean of per-image explanation ``metrics`` (``evaluate_explanations`` rows) per group, model and method.

    ``frame`` holds the manifest rows of the explained faces in the order of the ``image`` column.
    """
    groups = assign_groups(frame.reset_index(drop=True), grouping)
    labels = np.asarray(groups.levels, dtype=object)[groups.codes]
    rows = metrics[metrics["metric"].isin(names) & (metrics["label"] >= 0)].copy()
    rows[grouping_name(grouping)] = labels[rows["image"].to_numpy()]
    table = rows.groupby(["model", "method", grouping_name(grouping), "metric"])["value"].agg(["mean", "count"])
    return table.reset_index()


def misclassified_in_group(frame: pd.DataFrame, probabilities: np.ndarray, grouping: str | Sequence[str],
                           group: str, count: int) -> np.ndarray:
    """Positions of up to ``count`` misclassified faces of ``group``, most confident mistakes first."""
    groups = assign_groups(frame.reset_index(drop=True), grouping)
    labels = labels_of(frame)
    members = groups.members(list(groups.levels).index(group))
    wrong = members[probabilities[members].argmax(1) != labels[members]]
    return wrong[np.argsort(-probabilities[wrong].max(1), kind="stable")][:count]
