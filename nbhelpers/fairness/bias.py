"""Bias study: per-group metrics with percentile-bootstrap confidence intervals, gaps and their description.

``group_table`` gives one row per group of each grouping (see ``nbhelpers.data.groups``): count,
accuracy, female and male recall, balanced accuracy, mean confidence and ECE, each with a
bootstrap CI (resampling faces within the group, vectorised over all resamples). Groups smaller
than ``min_count`` are flagged ``small``, never dropped; empty categories appear with count 0 and
NaN metrics. In two classes the false-positive rate of one class is 1 - the other's recall, so it
is not repeated. ``gap_summary`` compares the best and worst non-small groups.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.groups import Grouping, assign_groups, default_groupings
from nbhelpers.data.manifest import GENDERS, labels_of
from nbhelpers.fairness.calibration import (
    confidence_and_correct,
    expected_calibration_error,
)
from nbhelpers.utils.atomic import atomic_write_csv

__all__ = ["METRICS", "group_table", "gap_summary", "describe_gaps", "write_group_table", "mean_interval"]

METRICS = ("accuracy", "female_recall", "male_recall", "balanced_accuracy", "mean_confidence", "ece")
_REPLICATES = "bootstrap_replicates"
_CHUNK_ELEMENTS = 4_000_000  # resampled faces held in memory at once


def _labels(frame: pd.DataFrame, probabilities: np.ndarray) -> np.ndarray:
    if "gender" not in frame.columns:
        raise KeyError(f"column 'gender' (the label) is not in the frame; available columns: {list(frame.columns)}")
    unknown = sorted(set(frame["gender"].astype(str)) - set(GENDERS))
    if unknown:
        raise ValueError(f"gender must be one of {GENDERS}, found {unknown}")
    if np.asarray(probabilities).shape != (len(frame), len(GENDERS)):
        raise ValueError(f"probabilities must have shape ({len(frame)}, {len(GENDERS)}) to match the frame, "
                         f"got {np.asarray(probabilities).shape}")
    return labels_of(frame)


def _metrics(correct: np.ndarray, labels: np.ndarray, confidences: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """All metrics over the last axis (one group, or a batch of resamples of it)."""
    female = labels == 0
    female_count, male_count = female.sum(axis=-1), (~female).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        female_recall = (correct & female).sum(axis=-1) / female_count
        male_recall = (correct & ~female).sum(axis=-1) / male_count
    balanced = np.where(np.isnan(female_recall), male_recall,
                        np.where(np.isnan(male_recall), female_recall, (female_recall + male_recall) / 2))
    return {"accuracy": correct.mean(axis=-1), "female_recall": female_recall, "male_recall": male_recall,
            "balanced_accuracy": balanced, "mean_confidence": confidences.mean(axis=-1),
            "ece": np.asarray(expected_calibration_error(confidences, correct, bins))}


def _bootstrap(correct: np.ndarray, labels: np.ndarray, confidences: np.ndarray, bins: int,
               resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Metric replicates (``resamples`` each) from resampling the group's faces with replacement."""
    count = len(correct)
    chunk = max(1, _CHUNK_ELEMENTS // max(count, 1))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, resamples, chunk):
        index = rng.integers(0, count, size=(min(chunk, resamples - start), count))
        parts.append(_metrics(correct[index], labels[index], confidences[index], bins))
    return {metric: np.concatenate([part[metric] for part in parts]) for metric in METRICS}


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = replicates[~np.isnan(replicates)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(values: np.ndarray, bootstrap: int = 1000, seed: int | Sequence[int] = 0,
                  confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (1-D, e.g. 0/1 outcomes such as answered or correct),
    resampling them with replacement ``bootstrap`` times; (NaN, NaN) for no values or no resamples."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values) or bootstrap <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // len(values))
    means = [values[rng.integers(0, len(values), size=(min(chunk, bootstrap - start), len(values)))].mean(axis=1)
             for start in range(0, bootstrap, chunk)]
    return _interval(np.concatenate(means), confidence)


def _group_seed(seed: int, grouping: str, group: str) -> list[int]:
    """A seed per group that does not depend on which other groups exist."""
    return [seed, zlib.crc32(f"{grouping}\t{group}".encode())]


def group_table(frame: pd.DataFrame, probabilities: np.ndarray, group_columns: Sequence[Grouping] | None = None,
                min_count: int = 30, bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95,
                bins: int = 15) -> pd.DataFrame:
    """Per-group metrics with percentile-bootstrap CIs, one row per group of each grouping.

    ``frame`` holds the manifest rows of the evaluated faces, in the order of ``probabilities``
    (N x 2, column 0 = female); labels come from ``frame["gender"]``. ``group_columns`` lists
    column names and tuples of names (intersections); None uses ``default_groupings(frame)``.
    Columns: grouping, group, count, female_count, male_count, small, and for each metric in
    ``METRICS`` the point estimate with ``<metric>_low`` / ``<metric>_high`` (NaN without a
    bootstrap, for empty groups, or for a recall of a class absent from the group). The
    replicates are kept in ``table.attrs`` for ``gap_summary``. Bootstrapped ECE is biased upward
    in small groups, so its interval can sit above the point estimate.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    labels = _labels(frame, probabilities)
    confidences, correct = confidence_and_correct(probabilities, labels)
    groupings = default_groupings(frame) if group_columns is None else list(group_columns)
    rows, replicates = [], {metric: {} for metric in METRICS}
    for grouping in groupings:
        groups = assign_groups(frame, grouping)
        for level_index, level in enumerate(groups.levels):
            members = groups.members(level_index)
            row = {"grouping": groups.name, "group": level, "count": len(members),
                   "female_count": int((labels[members] == 0).sum()), "male_count": int((labels[members] == 1).sum()),
                   "small": len(members) < min_count}
            if len(members):
                point = _metrics(correct[members], labels[members], confidences[members], bins)
            else:
                point = {metric: np.nan for metric in METRICS}
            draws = (_bootstrap(correct[members], labels[members], confidences[members], bins, bootstrap,
                                np.random.default_rng(_group_seed(seed, groups.name, level)))
                     if len(members) and bootstrap > 0 else None)
            for metric in METRICS:
                row[metric] = float(point[metric])
                low, high = _interval(draws[metric], confidence) if draws else (np.nan, np.nan)
                row[f"{metric}_low"], row[f"{metric}_high"] = low, high
                if draws:
                    replicates[metric][f"{groups.name}\t{level}"] = draws[metric].astype(np.float64).tobytes()
            rows.append(row)
    table = pd.DataFrame(rows, columns=["grouping", "group", "count", "female_count", "male_count", "small",
                                        *[f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")]])
    # bytes (not arrays) so that pandas can compare and copy attrs cheaply
    table.attrs.update({_REPLICATES: replicates, "confidence": confidence, "min_count": min_count})
    return table


def gap_summary(table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Per grouping: worst and best non-small group on ``metric`` and the gap between them.

    The gap is best minus worst point estimate; its CI is the percentile interval of the
    difference of the two groups' independent bootstrap replicates (for that fixed pair of groups;
    it does not account for having picked the extremes). Without replicates (e.g. a table read
    back from CSV) the CI is NaN and ``gap_ci`` says so. Groups flagged ``small`` are listed, not ranked.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
    stored = table.attrs.get(_REPLICATES, {}).get(metric, {})
    level = table.attrs.get("confidence", 0.95)
    rows = []
    for grouping, rows_of in table.groupby("grouping", sort=False):
        ranked = rows_of[~rows_of["small"].astype(bool) & rows_of[metric].notna()]
        small = rows_of[rows_of["small"].astype(bool)]
        row = {"grouping": grouping, "metric": metric, "ranked_groups": len(ranked),
               "small_groups": "; ".join(f"{g} (n={n})" for g, n in zip(small["group"], small["count"])),
               "worst_group": None, "worst_value": np.nan, "worst_count": 0,
               "best_group": None, "best_value": np.nan, "best_count": 0,
               "gap": np.nan, "gap_low": np.nan, "gap_high": np.nan, "gap_ci": "fewer than two ranked groups",
               "min_count": table.attrs.get("min_count", np.nan)}
        if len(ranked) >= 1:
            worst, best = ranked.loc[ranked[metric].idxmin()], ranked.loc[ranked[metric].idxmax()]
            row.update(worst_group=worst["group"], worst_value=float(worst[metric]), worst_count=int(worst["count"]),
                       best_group=best["group"], best_value=float(best[metric]), best_count=int(best["count"]))
        if len(ranked) >= 2:
            row["gap"] = row["best_value"] - row["worst_value"]
            keys = (f"{grouping}\t{row['best_group']}", f"{grouping}\t{row['worst_group']}")
            if all(key in stored for key in keys):
                difference = np.frombuffer(stored[keys[0]]) - np.frombuffer(stored[keys[1]])
                row["gap_low"], row["gap_high"] = _interval(difference, level)
                row["gap_ci"] = f"{level:.0%} bootstrap of the difference"
            else:
                row["gap_ci"] = "point estimates only (no bootstrap replicates)"
        rows.append(row)
    return pd.DataFrame(rows)


def describe_gaps(summary: pd.DataFrame, digits: int = 3) -> str:
    """Markdown paragraphs generated from ``gap_summary``: largest gaps first, worst groups, small groups."""
    if summary.empty:
        return "No groupings were evaluated.\n"
    metric = str(summary["metric"].iloc[0]).replace("_", " ")
    ordered = summary.sort_values("gap", ascending=False, na_position="last")
    lines = [f"### Group gaps in {metric}", ""]
    for row in ordered.itertuples(index=False):
        if row.worst_group is None:
            lines.append(f"- **{row.grouping}**: no group has enough faces to rank.")
            continue
        if np.isnan(row.gap):
            lines.append(f"- **{row.grouping}**: only *{row.worst_group}* has enough faces "
                         f"({metric} {row.worst_value:.{digits}f}, n={row.worst_count}).")
            continue
        text = (f"- **{row.grouping}**: worst group *{row.worst_group}* ({metric} {row.worst_value:.{digits}f}, "
                f"n={row.worst_count}), best *{row.best_group}* ({row.best_value:.{digits}f}, n={row.best_count}); "
                f"gap {row.gap:.{digits}f}")
        if not np.isnan(row.gap_low):
            verdict = "excludes 0" if row.gap_low > 0 else "includes 0, so the gap may be noise"
            text += f" (CI {row.gap_low:.{digits}f} to {row.gap_high:.{digits}f}, {verdict})"
        else:
            text += " (difference of point estimates, no CI)"
        lines.append(text + ".")
    flagged = [f"**{row.grouping}**: {row.small_groups}" for row in ordered.itertuples(index=False) if row.small_groups]
    if flagged:
        minimum = summary["min_count"].iloc[0]
        threshold = f"fewer than {int(minimum)} faces" if not pd.isna(minimum) else "too few faces"
        lines += ["", f"Groups with {threshold} are reported but not ranked (estimates unreliable):", ""]
        lines += [f"- {entry}" for entry in flagged]
    largest = ordered.iloc[0]
    if not np.isnan(largest["gap"]):
        lines += ["", f"The largest gap is in **{largest['grouping']}**: *{largest['worst_group']}* trails "
                      f"*{largest['best_group']}* by {largest['gap']:.{digits}f}."]
    return "\n".join(lines) + "\n"


def write_group_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as CSV atomically (bootstrap replicates are not written) and return the path."""
    return atomic_write_csv(path, table)
