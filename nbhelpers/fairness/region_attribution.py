"""Where explanation maps put their positive attribution, by face region (``nbhelpers.fairness.face_regions``),
and how groups of faces differ (e.g. women the model got wrong against women it got right, or real photos
against UTKFace test faces of the same group).

``attribution_by_region`` takes maps at the model's input size (``Attribution.maps`` of
``nbhelpers.explain.create_explainer``, e.g. B-cos contributions or CAMs), keeps the positive part (evidence
for the explained class), resizes it bilinearly to the chip (non-negative stays non-negative) and gives per
face the share of it in each region: the shares sum to 1 over ``REGIONS`` (background included). A uniform
map scores each region's area (``region_areas``), the baseline to read shares against. ``region_summary``
gives per group and region the mean share with a percentile-bootstrap interval (``mean_interval``, Efron and
Tibshirani 1993); ``region_difference`` the difference of two groups' means with an interval from resampling
each group independently.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from nbhelpers.fairness.bias import mean_interval
from nbhelpers.fairness.face_regions import REGIONS

__all__ = ["attribution_by_region", "region_areas", "region_summary", "region_difference"]


def _as_maps(maps) -> np.ndarray:
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, h, w), got {maps.shape}")
    return maps


def _mask_stack(masks: dict[str, np.ndarray], position: int) -> np.ndarray:
    missing = [name for name in REGIONS if name not in masks]
    if missing:
        raise KeyError(f"masks[{position}] lacks the regions {missing}; region_masks gives all of {REGIONS}")
    return np.stack([np.asarray(masks[name], dtype=bool) for name in REGIONS])


def attribution_by_region(maps, masks: Sequence[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Share of each face's positive attribution in each region: one row per face, columns ``REGIONS`` (floats in
    [0, 1] summing to 1; NaN where a map has no positive attribution) and ``positive_total`` (the sum of the
    positive part at the map's own size, in the map's units).

    ``maps``: float (N, h, w) array or tensor at any size; ``masks``: N dicts of boolean (H, W) region masks
    (``region_masks`` of each chip). Raises ``ValueError`` when the counts differ or a map is not 3-D, and
    ``KeyError`` when a mask dict lacks a region."""
    maps = _as_maps(maps)
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} mask sets")
    rows = []
    for position, (attribution, face_masks) in enumerate(zip(maps, masks)):
        stack = _mask_stack(face_masks, position)
        positive = np.clip(attribution, 0, None)
        height, width = stack.shape[1:]
        resized = cv2.resize(positive, (width, height), interpolation=cv2.INTER_LINEAR)
        sums = (stack * resized[None]).sum(axis=(1, 2))
        total = sums.sum()
        shares = sums / total if total > 0 else np.full(len(REGIONS), np.nan)
        rows.append([*shares, positive.sum()])
    return pd.DataFrame(rows, columns=[*REGIONS, "positive_total"])


def region_areas(masks: Sequence[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Share of each chip's area in each region: one row per face, columns ``REGIONS`` (summing to 1); the share
    a uniform attribution map would give each region."""
    rows = [_mask_stack(face_masks, position).mean(axis=(1, 2)) for position, face_masks in enumerate(masks)]
    return pd.DataFrame(rows, columns=list(REGIONS))


def _seed(seed: int, *keys: object) -> list[int]:
    return [seed, zlib.crc32("\t".join(map(str, keys)).encode())]


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the frame; available columns: {list(frame.columns)}")


def region_summary(frame: pd.DataFrame, group_columns: Sequence[str], regions: Sequence[str] = REGIONS,
                   bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Mean region share per group: one row per group (combination of ``group_columns``, e.g. ("gender",
    "correct", "source")) and region, columns the group columns, ``region``, ``count`` (faces with a share),
    ``mean``, ``low`` and ``high`` (percentile-bootstrap interval of the mean at ``confidence``).

    ``frame``: ``attribution_by_region`` joined with per-face columns. Raises ``KeyError`` for missing columns."""
    group_columns = list(group_columns)
    _check_columns(frame, [*group_columns, *regions])
    rows = []
    for keys, group in (frame.groupby(group_columns, sort=True, observed=True) if group_columns else [((), frame)]):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for region in regions:
            values = group[region].dropna().to_numpy(dtype=np.float64)
            low, high = mean_interval(values, bootstrap, _seed(seed, *keys, region), confidence)
            rows.append([*keys, region, len(values), values.mean() if len(values) else np.nan, low, high])
    return pd.DataFrame(rows, columns=[*group_columns, "region", "count", "mean", "low", "high"])


def _difference_interval(first: np.ndarray, second: np.ndarray, bootstrap: int, seed: list[int],
                         confidence: float) -> tuple[float, float]:
    if not len(first) or not len(second) or bootstrap <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    differences = (first[rng.integers(0, len(first), (bootstrap, len(first)))].mean(axis=1)
                   - second[rng.integers(0, len(second), (bootstrap, len(second)))].mean(axis=1))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def region_difference(frame: pd.DataFrame, column: str, first: object, second: object,
                      by: Sequence[str] = (), regions: Sequence[str] = REGIONS, bootstrap: int = 1000,
                      seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Mean share of faces with ``column == first`` minus that of ``column == second``, per region (and per group
    of ``by``, e.g. compare source "real" with "utkface" by "gender"). Columns: the ``by`` columns, ``region``,
    ``first_count``, ``second_count``, ``first_mean``, ``second_mean``, ``difference``, ``low``, ``high``
    (percentile-bootstrap interval of the difference, each side resampled on its own).

    Raises ``KeyError`` for missing columns."""
    by = list(by)
    _check_columns(frame, [column, *by, *regions])
    rows = []
    for keys, group in (frame.groupby(by, sort=True, observed=True) if by else [((), frame)]):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for region in regions:
            sides = [group.loc[group[column] == value, region].dropna().to_numpy(dtype=np.float64)
                     for value in (first, second)]
            means = [side.mean() if len(side) else np.nan for side in sides]
            low, high = _difference_interval(*sides, bootstrap, _seed(seed, *keys, region), confidence)
            rows.append([*keys, region, len(sides[0]), len(sides[1]), *means, means[0] - means[1], low, high])
    columns = ["region", "first_count", "second_count", "first_mean", "second_mean", "difference", "low", "high"]
    return pd.DataFrame(rows, columns=[*by, *columns])
