"""Groups of faces from manifest attributes: labels, default groupings and group-balanced weights.

A *grouping* is one manifest column (``"race"``) or an intersection of columns
(``("gender", "race")``). Every face belongs to exactly one group of a grouping; a missing or
empty attribute value becomes the group ``"unknown"`` so no face is dropped silently. Group
values of an intersection are joined with ``GROUP_SEPARATOR`` ("female & black") and the
grouping is named with ``GROUPING_SEPARATOR`` ("gender x race").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import pandas as pd

from nbhelpers.data.manifest import REQUIRED_COLUMNS

__all__ = [
    "UNKNOWN", "GROUP_SEPARATOR", "GROUPING_SEPARATOR", "PREFERRED_BINARY_ATTRIBUTES", "Grouping", "Groups",
    "grouping_name", "assign_groups", "default_groupings", "group_balanced_weights",
]

UNKNOWN = "unknown"
GROUP_SEPARATOR = " & "
GROUPING_SEPARATOR = " x "
# Binary (0/1) attributes worth a grouping by default, e.g. CelebA's; "Male" is the label itself.
PREFERRED_BINARY_ATTRIBUTES = ("Young", "Pale_Skin", "Eyeglasses", "Heavy_Makeup", "Wearing_Lipstick",
                               "Attractive", "Wearing_Hat", "Bald")
_EXCLUDED = (*REQUIRED_COLUMNS, "Male", "name")

Grouping = Union[str, Sequence[str]]


@dataclass(frozen=True)
class Groups:
    """Group membership of every row: ``codes[i]`` indexes ``levels``; ``levels`` may hold empty groups."""

    name: str
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    codes: np.ndarray

    def members(self, level_index: int) -> np.ndarray:
        """Row positions of the faces in group ``levels[level_index]``."""
        return np.flatnonzero(self.codes == level_index)


def _columns_of(grouping: Grouping) -> tuple[str, ...]:
    return (grouping,) if isinstance(grouping, str) else tuple(grouping)


def grouping_name(grouping: Grouping) -> str:
    """``"race"`` for a column, ``"gender x race"`` for an intersection."""
    return GROUPING_SEPARATOR.join(_columns_of(grouping))


def _format(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _level_key(level: str) -> tuple:
    """Natural order: numbers, then ranges like "20-29" / "70+" by their start, then text."""
    try:
        return (0, float(level), level)
    except ValueError:
        head = level.split("-")[0].rstrip("+").strip()
        return (1, int(head), level) if head.isdigit() else (2, 0.0, level)


def _column_groups(frame: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    if column not in frame.columns:
        raise KeyError(f"grouping column {column!r} is not in the frame; available columns: {list(frame.columns)}")
    series = frame[column]
    missing = series.isna().to_numpy() | (series.astype("string").str.strip() == "").fillna(True).to_numpy()
    text = [UNKNOWN if gone else _format(value) for value, gone in zip(series.tolist(), missing)]
    if isinstance(series.dtype, pd.CategoricalDtype):
        levels = [_format(category) for category in series.cat.categories]
    else:
        levels = sorted({value for value, gone in zip(text, missing) if not gone}, key=_level_key)
    if missing.any() and UNKNOWN not in levels:
        levels.append(UNKNOWN)
    index = {level: position for position, level in enumerate(levels)}
    return levels, np.array([index[value] for value in text], dtype=np.int64)


def assign_groups(frame: pd.DataFrame, grouping: Grouping) -> Groups:
    """Group every row of ``frame`` by one column or an intersection of columns.

    Levels are the declared categories (categorical dtype, kept even when empty) or the observed
    values in natural order, plus ``"unknown"`` for missing values. An intersection holds every
    combination of its columns' levels, except empty combinations involving ``"unknown"``.
    Raises ``KeyError`` naming a missing column and listing the available ones.
    """
    columns = _columns_of(grouping)
    if not columns:
        raise ValueError("a grouping needs at least one column")
    per_column = [_column_groups(frame, column) for column in columns]
    combined = np.zeros(len(frame), dtype=np.int64)
    for levels, codes in per_column:
        combined = combined * len(levels) + codes
    combinations = list(itertools.product(*(levels for levels, _ in per_column)))
    observed = np.bincount(combined, minlength=len(combinations))
    keep = [index for index, combination in enumerate(combinations)
            if observed[index] or UNKNOWN not in combination]
    remap = np.full(len(combinations), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    levels = tuple(GROUP_SEPARATOR.join(combinations[index]) for index in keep)
    return Groups(grouping_name(grouping), columns, levels, remap[combined])


def _is_binary(series: pd.Series) -> bool:
    values = pd.to_numeric(series.dropna(), errors="coerce")
    return bool(len(values)) and not values.isna().any() and set(values.unique()) <= {0, 1}


def default_groupings(frame: pd.DataFrame, max_levels: int = 20) -> list[Grouping]:
    """Groupings for a manifest of any dataset: gender, each categorical attribute, and gender x each.

    Categorical attributes are text/categorical columns with at most ``max_levels`` values
    (UTKFace race and age_band, FairFace race and age bands; UTKFace's numeric age is left out)
    and the binary 0/1 columns named in ``PREFERRED_BINARY_ATTRIBUTES`` (CelebA). ``Male`` is
    never used: it is the label.
    """
    attributes: list[str] = []
    for column in frame.columns:
        if column in _EXCLUDED or column == "gender":
            continue
        series = frame[column]
        if _is_binary(series):
            if column in PREFERRED_BINARY_ATTRIBUTES:
                attributes.append(column)
        elif not pd.api.types.is_numeric_dtype(series) and 1 < series.nunique(dropna=True) <= max_levels:
            attributes.append(column)
    return ["gender", *attributes, *[("gender", column) for column in attributes]]


def group_balanced_weights(frame: pd.DataFrame, grouping: Grouping) -> np.ndarray:
    """Per-row weights proportional to 1 / group size, normalised to mean 1.

    Every group present then carries the same total weight (``len(frame) / groups``); use them in
    a ``WeightedRandomSampler`` or to reweight a loss. Missing values form their own group.
    """
    groups = assign_groups(frame, grouping)
    if len(frame) == 0:
        return np.zeros(0, dtype=np.float64)
    counts = np.bincount(groups.codes, minlength=len(groups.levels))
    weights = 1.0 / counts[groups.codes]
    return weights * (len(weights) / weights.sum())
