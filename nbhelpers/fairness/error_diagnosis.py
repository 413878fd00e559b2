"""Diagnosis of misclassified faces: simple image-quality measures of aligned chips, error rates per gender and
group, how the misclassified differ from the correctly classified, faces matched across data sets, and the
region-attribution comparisons (``nbhelpers.fairness.region_attribution``) of one table of per-face shares.

Quality measures of an aligned uint8 chip, taken on its ITU-R BT.601 luma after resizing it to
``QUALITY_SIDE`` px (area interpolation) so that chips of any size compare: ``sharpness``, the variance of the
Laplacian (grey levels squared; Pech-Pacheco et al., "Diatom autofocusing in brightfield microscopy: a
comparative study", ICPR 2000: low means blurred, e.g. a small face enlarged to the chip); ``brightness``, the
mean luma (0-255); ``contrast``, the standard deviation of the luma (RMS contrast, grey levels). Intervals are
percentile-bootstrap intervals of a mean (``mean_interval``; Efron and Tibshirani 1993).
"""

from __future__ import annotations

import zlib
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from nbhelpers.fairness.bias import mean_interval
from nbhelpers.fairness.face_regions import REGIONS
from nbhelpers.fairness.region_attribution import region_difference, region_summary

__all__ = ["QUALITY_SIDE", "QUALITY_COLUMNS", "BANDS", "chip_quality", "quality_bands", "misclassification_table",
           "quality_comparison", "matched_rows", "region_comparisons"]

QUALITY_SIDE = 128  # chips are resized to this side before measuring, so sizes compare
QUALITY_COLUMNS = ("sharpness", "brightness", "contrast")
BANDS = ("low", "mid", "high")  # tercile bands of a measure


def chip_quality(chips: np.ndarray | Sequence[np.ndarray]) -> pd.DataFrame:
    """``QUALITY_COLUMNS`` of each uint8 (H, W, 3) RGB chip (module docstring): one row per chip, floats.

    Raises ``ValueError`` for a chip that is not uint8 (H, W, 3)."""
    rows = []
    for position, chip in enumerate(chips):
        chip = np.asarray(chip)
        if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3:
            raise ValueError(f"chip {position} must be a uint8 (H, W, 3) RGB array, got {chip.dtype} {chip.shape}")
        grey = cv2.cvtColor(cv2.resize(chip, (QUALITY_SIDE, QUALITY_SIDE), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY).astype(np.float64)
        rows.append((cv2.Laplacian(grey, cv2.CV_64F).var(), grey.mean(), grey.std()))
    return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS), dtype=np.float64)


def quality_bands(values: pd.Series) -> pd.Series:
    """Tercile band (``BANDS``: at most the lower tercile, up to the upper one, above it) of each value, as
    ordered categories; NaN stays missing. Fewer than three distinct values all fall in "mid"."""
    values = pd.Series(values, dtype=np.float64)
    known = values.dropna()
    if known.nunique() < 3:
        codes = np.ones(len(values), dtype=np.int64)
    else:
        codes = np.searchsorted(np.quantile(known, [1 / 3, 2 / 3]), values.to_numpy(), side="left")
    codes = np.where(values.notna().to_numpy(), codes, -1)
    return pd.Series(pd.Categorical.from_codes(codes, list(BANDS), ordered=True), index=values.index)


def _rate(values: np.ndarray, bootstrap: int, seed: list[int]) -> tuple[float, float, float]:
    low, high = mean_interval(values, bootstrap, seed)
    return (float(values.mean()) if len(values) else float("nan")), low, high


def _group_keys(values: pd.Series) -> pd.Series:
    """Group labels of a column, missing values as "unknown"; ordered categories (bands) keep their order."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values if "unknown" in values.cat.categories else values.cat.add_categories(["unknown"])
        return values.fillna("unknown")
    return values.astype(object).where(values.notna(), "unknown").astype(str)


def misclassification_table(frame: pd.DataFrame, columns: Sequence[str], bootstrap: int = 1000,
                            seed: int = 0) -> pd.DataFrame:
    """Per gender x each of ``columns`` (and gender alone, grouping "gender"): ``photos``, ``with_face``
    (``detected``), ``misclassified`` (faces whose ``predicted`` is not ``gender``), ``error_rate`` =
    misclassified / with_face with its 95% interval (``error_low``, ``error_high``) and ``uncertain`` (share of
    faces labelled "uncertain").

    ``frame``: one row per photo with ``gender``, ``detected``, ``predicted``, ``label`` and the columns.
    Raises ``KeyError`` for a missing column."""
    missing = [column for column in ["gender", "detected", "predicted", "label", *columns] if column not in frame]
    if missing:
        raise KeyError(f"columns {missing} are not in the frame; available: {list(frame.columns)}")
    detected = frame["detected"].eq(True)
    wrong = (detected & (frame["predicted"] != frame["gender"])).to_numpy()
    uncertain = (detected & (frame["label"] == "uncertain")).to_numpy()
    rows = []
    for column in ["gender", *columns]:
        for (gender, group), members in frame.groupby([frame["gender"], _group_keys(frame[column])], sort=True,
                                                      observed=True).groups.items():
            members = frame.index.get_indexer(members)
            found = members[detected.to_numpy()[members]]
            seed_of = [seed, zlib.crc32(f"{column}\t{gender}\t{group}".encode())]
            rate, low, high = _rate(wrong[found].astype(float), bootstrap, seed_of)
            rows.append({"grouping": "gender" if column == "gender" else f"gender x {column}", "gender": gender,
                         "group": group, "photos": len(members), "with_face": len(found),
                         "misclassified": int(wrong[found].sum()), "error_rate": rate, "error_low": low,
                         "error_high": high, "uncertain": uncertain[found].mean() if len(found) else float("nan")})
    return pd.DataFrame(rows)


def quality_comparison(frame: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    """Median of each measure per gender and outcome ("right" / "wrong": ``predicted`` vs ``gender``) on the
    photos with a face: columns gender, outcome, faces, then one per measure (its units)."""
    faces = frame[frame["detected"].eq(True)]
    outcome = np.where(faces["predicted"] == faces["gender"], "right", "wrong")
    table = faces.groupby([faces["gender"], pd.Series(outcome, index=faces.index, name="outcome")])
    medians = table[list(measures)].median().reset_index()
    return medians.assign(faces=table.size().to_numpy())[["gender", "outcome", "faces", *measures]]


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One string per row joining ``columns`` (missing values spelt "nan", so that they match each other)."""
    return frame[list(columns)].astype(object).map(str).agg("\t".join, axis=1).to_numpy(dtype=object)


def matched_rows(targets: pd.DataFrame, pool: pd.DataFrame, columns: Sequence[str], seed: int = 0) -> np.ndarray:
    """For each row of ``targets``, a distinct row position of ``pool`` with the same values in ``columns``
    (e.g. gender, age band and race), drawn with ``seed``; -1 where the pool has no (more) such row.

    Returns int (len(targets),). Raises ``KeyError`` when a column is missing from either frame."""
    for name, table in (("targets", targets), ("pool", pool)):
        missing = [column for column in columns if column not in table]
        if missing:
            raise KeyError(f"{name} lacks the columns {missing}; it has {list(table.columns)}")
    rng = np.random.default_rng(seed)
    pool_keys = _keys(pool, columns)
    available = {key: list(rng.permutation(np.flatnonzero(pool_keys == key))) for key in set(pool_keys)}
    chosen = []
    for key in _keys(targets, columns):
        candidates = available.get(key, [])
        chosen.append(int(candidates.pop()) if candidates else -1)
    return np.asarray(chosen, dtype=np.int64)


def region_comparisons(shares: pd.DataFrame, reference: str, bootstrap: int = 1000,
                       seed: int = 0) -> dict[str, pd.DataFrame]:
    """The comparisons of a table of per-face region shares (``attribution_by_region`` rows with columns
    ``explanation``, ``source``, ``gender`` and ``called``, the explained model's answer):

    ``means``: ``region_summary`` by explanation, source and gender; ``real_vs_reference``: mean share of the
    other source minus ``reference`` (e.g. "UTKFace test") by explanation and gender (``region_difference``), on
    the rows whose optional boolean ``matched`` column is true (faces with a partner in the other source);
    ``called_male_vs_female``: among women of the other sources, those called "male" minus those called
    "female", by explanation. Shares are fractions of the positive attribution (sum 1 over ``REGIONS``)."""
    means = region_summary(shares, ["explanation", "source", "gender"], REGIONS, bootstrap, seed)
    others = [source for source in shares["source"].unique() if source != reference]
    pairs = shares[shares["source"].isin([reference, *others[:1]])]
    if "matched" in pairs:
        pairs = pairs[pairs["matched"].astype(bool)]
    versus = region_difference(pairs, "source", others[0], reference, ["explanation", "gender"], REGIONS, bootstrap,
                               seed) if others else pd.DataFrame()
    answered = shares["called"].isin(["male", "female"])  # the area rows have no answer
    women = shares[shares["source"].isin(others) & (shares["gender"] == "female") & answered]
    called = region_difference(women, "called", "male", "female", ["explanation"], REGIONS, bootstrap, seed)
    return {"means": means, "real_vs_reference": versus, "called_male_vs_female": called}
