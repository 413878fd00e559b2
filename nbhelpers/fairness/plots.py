"""Figures of the bias study: per-group bars with CIs, intersection heatmaps, reliability diagrams, probabilities."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from nbhelpers.data.groups import (
    GROUP_SEPARATOR,
    GROUPING_SEPARATOR,
    Grouping,
    assign_groups,
    grouping_name,
)
from nbhelpers.fairness.calibration import (
    confidence_and_correct,
    reliability_by_group,
    reliability_curve,
)

__all__ = ["plot_group_metric", "plot_intersection_heatmap", "plot_reliability", "plot_reliability_by_group",
           "plot_probability_by_group"]


def _rows_of(table: pd.DataFrame, grouping: str) -> pd.DataFrame:
    rows = table[table["grouping"] == grouping]
    if rows.empty:
        raise KeyError(f"grouping {grouping!r} is not in the table; available: {sorted(set(table['grouping']))}")
    return rows


def plot_group_metric(table: pd.DataFrame, grouping: str, metric: str = "accuracy") -> plt.Figure:
    """Bar per group with its bootstrap CI; small groups are hatched and pale, counts under the bars."""
    rows = _rows_of(table, grouping)
    values = rows[metric].to_numpy(dtype=float)
    low, high = rows[f"{metric}_low"].to_numpy(dtype=float), rows[f"{metric}_high"].to_numpy(dtype=float)
    errors = np.nan_to_num(np.vstack([values - low, high - values]).clip(min=0))
    figure, axis = plt.subplots(figsize=(max(4.0, 0.7 * len(rows) + 2), 3.6))
    positions = np.arange(len(rows))
    bars = axis.bar(positions, np.nan_to_num(values), yerr=errors, capsize=3, color="tab:blue")
    for bar, small in zip(bars, rows["small"].astype(bool)):
        if small:
            bar.set_hatch("//")
            bar.set_alpha(0.4)
    axis.set_xticks(positions, [f"{group}\nn={count}" for group, count in zip(rows["group"], rows["count"])],
                    rotation=45, ha="right", fontsize=8)
    axis.set_ylabel(metric.replace("_", " "))
    axis.set_ylim(0, 1.05)
    axis.set_title(f"{metric.replace('_', ' ')} by {grouping} (hatched: small group)")
    figure.tight_layout()
    return figure


def plot_intersection_heatmap(table: pd.DataFrame, grouping: str = f"gender{GROUPING_SEPARATOR}race",
                              metric: str = "accuracy") -> plt.Figure:
    """Heatmap of ``metric`` over a two-column intersection; cells show value and n, small ones starred."""
    rows = _rows_of(table, grouping)
    names = grouping.split(GROUPING_SEPARATOR)
    if len(names) != 2:
        raise ValueError(f"a heatmap needs a two-column intersection, got {grouping!r}")
    parts = rows["group"].str.split(GROUP_SEPARATOR, n=1, expand=True)
    cells = pd.DataFrame({"row": parts[0], "column": parts[1], "value": rows[metric].to_numpy(dtype=float),
                          "label": [f"{v:.2f}\nn={n}{'*' if s else ''}" if not np.isnan(v) else f"n={n}"
                                    for v, n, s in zip(rows[metric], rows["count"], rows["small"])]})
    row_order, column_order = list(dict.fromkeys(cells["row"])), list(dict.fromkeys(cells["column"]))
    values = cells.pivot(index="row", columns="column", values="value").reindex(index=row_order, columns=column_order)
    labels = cells.pivot(index="row", columns="column", values="label").reindex(index=row_order, columns=column_order)
    figure, axis = plt.subplots(figsize=(1.2 * len(column_order) + 2, 0.9 * len(row_order) + 1.5))
    sns.heatmap(values, annot=labels.fillna("").to_numpy(), fmt="", cmap="viridis", vmin=0, vmax=1,
                cbar_kws={"label": metric}, ax=axis, annot_kws={"fontsize": 8})
    axis.set_xlabel(names[1])
    axis.set_ylabel(names[0])
    axis.set_title(f"{metric.replace('_', ' ')}: {grouping} (* small group)")
    figure.tight_layout()
    return figure


def _diagonal(axis: plt.Axes) -> None:
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")


def plot_reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> plt.Figure:
    """Reliability diagram (accuracy per confidence bin against the diagonal) with bin counts below."""
    confidences, correct = confidence_and_correct(probabilities, labels)
    curve = reliability_curve(confidences, correct, bins)
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _diagonal(axis)
    width = 1.0 / bins
    axis.bar(curve["bin_mid"], curve["accuracy"].fillna(0), width=width, edgecolor="black", alpha=0.7, label="accuracy")
    axis.plot(curve["bin_mid"], curve["confidence"], "o", color="tab:red", markersize=3, label="mean confidence")
    axis.legend(fontsize=8, loc="upper left")
    axis.set_title("Reliability diagram")
    counts.bar(curve["bin_mid"], curve["count"], width=width, color="grey")
    counts.set_ylabel("faces")
    counts.set_xlabel("confidence")
    figure.tight_layout()
    return figure


def plot_reliability_by_group(frame: pd.DataFrame, probabilities: np.ndarray, grouping: Grouping,
                              bins: int = 10) -> plt.Figure:
    """One reliability curve per group on shared axes, each labelled with its ECE and size."""
    curves = reliability_by_group(frame, probabilities, grouping, bins)
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    _diagonal(axis)
    for group, curve in curves.groupby("group", sort=False):
        filled = curve[curve["count"] > 0]
        axis.plot(filled["confidence"], filled["accuracy"], marker="o", markersize=3,
                  label=f"{group} (ECE {curve['ece'].iloc[0]:.3f}, n={int(curve['count'].sum())})")
    axis.legend(fontsize=7, loc="upper left")
    axis.set_title(f"Reliability by {grouping_name(grouping)}")
    figure.tight_layout()
    return figure


def plot_probability_by_group(frame: pd.DataFrame, probabilities: np.ndarray, grouping: Grouping) -> plt.Figure:
    """Violins of the predicted P(male) per group, split by true gender."""
    groups = assign_groups(frame, grouping)
    data = pd.DataFrame({"group": np.asarray(groups.levels, dtype=object)[groups.codes],
                         "P(male)": np.asarray(probabilities, dtype=float)[:, 1],
                         "true gender": frame["gender"].to_numpy()})
    order = [level for level in groups.levels if (data["group"] == level).any()]
    figure, axis = plt.subplots(figsize=(max(5.0, 0.8 * len(order) + 2), 3.8))
    sns.violinplot(data=data, x="group", y="P(male)", hue="true gender", hue_order=["female", "male"], order=order,
                   split=True, cut=0, inner="quart", density_norm="width", ax=axis)
    axis.axhline(0.5, linestyle=":", color="grey")
    axis.tick_params(axis="x", rotation=45)
    axis.set_title(f"Predicted P(male) by {groups.name}")
    figure.tight_layout()
    return figure
