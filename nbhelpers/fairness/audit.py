"""Intersectional audit of a labelled real-photo evaluation, as Gender Shades did.

Buolamwini and Gebru ("Gender Shades: Intersectional Accuracy Disparities in Commercial Gender
Classification", FAT* 2018) showed that single-axis accuracies (women vs men, darker vs lighter) hide the
worst intersection: darker-skinned women. From the evaluation frame of ``nbhelpers.predict.real_photos``
(one row per photo: ``gender``, ``p_male``, ``correct``, ``detected``, ``label``, the labels' group columns
and the skin-tone columns of ``nbhelpers.fairness.skin_tone``) this module builds:

- ``intersectional_table``: accuracy, count and 95% percentile-bootstrap intervals (``group_table``) for
  gender, lighter/darker, and gender x each group column, gender x lighter/darker and gender x the six ITA
  categories; a photo without a face counts as a miss, as in the evaluation's accuracy table;
- ``worst_cell``: the intersection with the lowest accuracy among those with at least ``min_count`` photos;
- ``gender_shades_table``: our gender x lighter/darker cells beside the published PPB figures
  (``GENDER_SHADES``) as context; PPB is another benchmark (parliamentarians, Fitzpatrick types rated by
  a dermatologist), so the comparison is of orders of magnitude, not a ranking;
- ``skin_tone_by_race``: how the skin-tone estimate relates to the labels' race column (median ITA and
  share darker per race), for FairFace labels or UTKFace's (``skin_tone_by_race_of_chips``);
- ``coverage_table`` and ``coverage_sentence``: the uncertain rule per group: coverage (share answered
  among photos with a face) and accuracy when answered, with intervals.

The skin tone is apparent skin colour in the photo (see ``nbhelpers.fairness.skin_tone``): lighting, white
balance and makeup move it, so its groups are approximate. Cells of a few dozen photos have intervals of
+-10-20 points: read the intervals before the point estimates.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.groups import GROUP_SEPARATOR, GROUPING_SEPARATOR, UNKNOWN, assign_groups
from nbhelpers.fairness.bias import group_table, mean_interval
from nbhelpers.fairness.skin_tone import BINARY_TONES, ITA_CATEGORIES, skin_tone_columns
from nbhelpers.utils.atomic import atomic_write_csv, atomic_write_json

__all__ = ["MIN_CELL_COUNT", "GENDER_SHADES", "GENDER_SHADES_SOURCE", "audit_groupings", "intersectional_table",
           "worst_cell", "gender_shades_table", "skin_tone_by_race", "skin_tone_by_race_of_chips",
           "utkface_skin_tone_by_race", "coverage_table", "coverage_sentence", "audit_photos", "write_audit"]

MIN_CELL_COUNT = 20  # the fewest photos for a cell to be ranked as the worst
UNCERTAIN_LABEL = "uncertain"  # the label of an unanswered face (nbhelpers.predict.results.UNCERTAIN)
SKIN_GROUPINGS = ("skin_tone_binary", "skin_tone")
# Published PPB accuracies (%), Buolamwini and Gebru 2018, by system and subgroup
GENDER_SHADES = {
    "Microsoft": {"darker female": 79.2, "darker male": 94.0, "lighter female": 98.3, "lighter male": 100.0},
    "Face++": {"darker female": 65.5, "darker male": 99.3, "lighter female": 94.0, "lighter male": 99.2},
    "IBM": {"darker female": 65.3, "darker male": 88.0, "lighter female": 92.9, "lighter male": 99.7},
}
GENDER_SHADES_SOURCE = (
    "Buolamwini & Gebru, FAT* 2018, PPB benchmark, accuracy % per subgroup; checked against the error rates "
    "The Register reported from the paper (IBM 34.7/12/7.1/0.3 %, Face++ 34.5/0.7/6/0.8 %, Microsoft "
    "20.8/6/1.7/0 % for darker female/darker male/lighter female/lighter male), not against the paper's table. "
    "Raji & Buolamwini, AIES 2019 (Actionable Auditing): within 7 months all three vendors cut the darker-female "
    "error by 17.7-30.4 points (abstract, verified); Microsoft's updated API at 98.5 % on darker females: as "
    "published, not verified here.")


def _read(frame: pd.DataFrame) -> pd.DataFrame:
    """The photos that were read (no decoding error), skin-tone columns as ordered categories."""
    read = frame[frame["error"].fillna("") == ""] if "error" in frame else frame
    read = read.reset_index(drop=True).copy()
    if "skin_tone" in read:
        read["skin_tone"] = pd.Categorical(read["skin_tone"], [name for name, _ in ITA_CATEGORIES])
    if "skin_tone_binary" in read:
        read["skin_tone_binary"] = pd.Categorical(read["skin_tone_binary"], list(BINARY_TONES))
    return read


def _scored_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """(N, 2) probabilities from ``p_male``; a photo without a face is a miss (all probability wrong)."""
    male = frame["p_male"].astype(float).fillna((frame["gender"] == "female").astype(float)).to_numpy(dtype=float)
    return np.stack([1 - male, male], axis=1)


def audit_groupings(frame: pd.DataFrame, group_columns: Sequence[str]) -> list:
    """Gender and lighter/darker alone, then gender x each group column and gender x the skin-tone columns
    (those present in ``frame``)."""
    columns = [column for column in group_columns if column not in SKIN_GROUPINGS]
    columns += [column for column in SKIN_GROUPINGS if column in frame]
    singles = ["gender"] + (["skin_tone_binary"] if "skin_tone_binary" in frame else [])
    return singles + [("gender", column) for column in columns]


def intersectional_table(frame: pd.DataFrame, group_columns: Sequence[str], bootstrap: int = 1000, seed: int = 0,
                         min_count: int = MIN_CELL_COUNT) -> pd.DataFrame:
    """Accuracy per cell with its 95% bootstrap interval: grouping, group, count, female_count, male_count,
    small (fewer than ``min_count`` photos), accuracy, accuracy_low, accuracy_high, female_recall, male_recall."""
    read = _read(frame)
    table = group_table(read, _scored_probabilities(read), audit_groupings(read, group_columns), min_count,
                        bootstrap, seed)
    return table[["grouping", "group", "count", "female_count", "male_count", "small", "accuracy", "accuracy_low",
                  "accuracy_high", "female_recall", "male_recall"]]


def worst_cell(table: pd.DataFrame, min_count: int = MIN_CELL_COUNT) -> dict[str, Any]:
    """The intersection (grouping with " x ") with the lowest accuracy among cells of at least ``min_count``
    photos and no unknown value (ties: the larger cell); ``group`` is None when no cell qualifies."""
    cells = table[table["grouping"].str.contains(GROUPING_SEPARATOR, regex=False) & (table["count"] >= min_count)
                  & table["accuracy"].notna()]
    cells = cells[~cells["group"].str.split(GROUP_SEPARATOR, regex=False).apply(lambda parts: UNKNOWN in parts)]
    if cells.empty:
        return {"grouping": None, "group": None, "count": 0, "accuracy": None, "accuracy_low": None,
                "accuracy_high": None, "min_count": min_count, "cells_ranked": 0}
    worst = cells.sort_values(["accuracy", "count"], ascending=[True, False]).iloc[0]
    return {"grouping": worst["grouping"], "group": worst["group"], "count": int(worst["count"]),
            "accuracy": float(worst["accuracy"]), "accuracy_low": float(worst["accuracy_low"]),
            "accuracy_high": float(worst["accuracy_high"]), "min_count": min_count, "cells_ranked": len(cells)}


def gender_shades_table(table: pd.DataFrame) -> pd.DataFrame:
    """Our gender x lighter/darker cells (accuracy %, interval, count) beside the published PPB accuracies."""
    ours = table[table["grouping"] == f"gender{GROUPING_SEPARATOR}skin_tone_binary"].set_index("group")
    rows = []
    for subgroup in GENDER_SHADES["Microsoft"]:
        tone, gender = subgroup.split(" ")
        key = f"{gender}{GROUP_SEPARATOR}{tone}"
        cell = ours.loc[key] if key in ours.index else None
        row = {"subgroup": subgroup, "count": int(cell["count"]) if cell is not None else 0}
        for key in ("accuracy", "accuracy_low", "accuracy_high"):
            row[f"ours_{key}"] = 100 * float(cell[key]) if cell is not None else np.nan
        row.update({f"{system} 2018": figures[subgroup] for system, figures in GENDER_SHADES.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def skin_tone_by_race(frame: pd.DataFrame, race_column: str = "race") -> pd.DataFrame:
    """Per race label: faces with a skin measurement, median and quartiles of ITA (degrees), median hue
    (degrees), share darker (ITA <= 28 degrees) among faces with a category, and faces of unknown tone;
    rows from the highest median ITA down."""
    measured = frame[frame["skin_ita"].notna()]
    rows = []
    for race, faces in measured.groupby(race_column, sort=True):
        known = faces[faces["skin_tone_binary"].isin(BINARY_TONES)]
        rows.append({race_column: race, "count": len(faces), "ita_median": faces["skin_ita"].median(),
                     "ita_q25": faces["skin_ita"].quantile(0.25), "ita_q75": faces["skin_ita"].quantile(0.75),
                     "hue_median": faces["skin_hue"].median(),
                     "share_darker": (known["skin_tone_binary"] == "darker").mean() if len(known) else np.nan,
                     "unknown_tone": int(len(faces) - len(known))})
    columns = [race_column, "count", "ita_median", "ita_q25", "ita_q75", "hue_median", "share_darker", "unknown_tone"]
    return pd.DataFrame(rows, columns=columns).sort_values("ita_median", ascending=False, ignore_index=True)


def skin_tone_by_race_of_chips(chips: np.ndarray, races: Sequence[Any]) -> pd.DataFrame:
    """``skin_tone_by_race`` of uint8 face chips (N, H, W, 3) and their race labels (N values), e.g. UTKFace
    test faces from the image cache. UTKFace's own crops are dlib-aligned like our chips (padding 0.18 was
    calibrated to match them), so the skin patches fall on the same places."""
    if len(chips) != len(races):
        raise ValueError(f"{len(chips)} chips but {len(races)} race labels")
    frame = skin_tone_columns(list(chips)).assign(race=[str(race) for race in races])
    return skin_tone_by_race(frame, "race")


def utkface_skin_tone_by_race(data_dir: str | Path, split: str = "test", count: int = 0, size: int = 200,
                              seed: int = 0) -> pd.DataFrame:
    """``skin_tone_by_race_of_chips`` on UTKFace's ``split`` faces from the image cache of ``data_dir``
    (built at ``size`` px when missing); ``count`` faces drawn with ``seed`` (0: all)."""
    from nbhelpers.data.manifest import manifest_path, read_manifest
    from nbhelpers.training.runs import split_faces

    chips, _, rows = split_faces(data_dir, "utkface", split, count, size, seed)
    races = read_manifest(manifest_path("utkface", data_dir))["race"].iloc[rows].fillna(UNKNOWN)
    return skin_tone_by_race_of_chips(chips, races.tolist())


def _share(values: np.ndarray, bootstrap: int, seed: list[int], name: str) -> dict[str, float]:
    """The mean of 0/1 ``values`` as ``name`` with its 95% bootstrap interval (NaN when empty)."""
    low, high = mean_interval(values, bootstrap, seed)
    return {name: float(values.mean()) if len(values) else float("nan"), f"{name}_low": low, f"{name}_high": high}


def _coverage_row(answered: np.ndarray, correct: np.ndarray, bootstrap: int, seed: list[int]) -> dict[str, Any]:
    """Coverage and accuracy when answered of one group's faces, with 95% bootstrap intervals."""
    return {"with_face": len(answered), "answered": int(answered.sum()),
            **_share(answered, bootstrap, seed, "coverage"),
            **_share(correct[answered], bootstrap, [*seed, 1], "accuracy_answered")}


def coverage_table(frame: pd.DataFrame, group_columns: Sequence[str], bootstrap: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """The uncertain rule per group, on the photos with a face: with_face, answered (label not "uncertain"),
    coverage (answered / with_face) and accuracy_answered (correct / answered), each with a 95% bootstrap
    interval; groupings: all, gender, each group column and skin-tone column, and gender x each."""
    faces = _read(frame)
    faces = faces[faces["detected"].astype(bool)].reset_index(drop=True).assign(all="all photos with a face")
    answered = (faces["label"] != UNCERTAIN_LABEL).to_numpy()
    correct = faces["correct"].astype(bool).to_numpy()
    columns = [column for column in group_columns if column not in SKIN_GROUPINGS]
    columns += [column for column in SKIN_GROUPINGS if column in faces]
    rows = []
    for grouping in ["all", "gender", *columns, *[("gender", column) for column in columns]]:
        groups = assign_groups(faces, grouping)
        for index, level in enumerate(groups.levels):
            members = groups.members(index)
            seed_of = [seed, zlib.crc32(f"{groups.name}\t{level}".encode())]
            rows.append({"grouping": groups.name, "group": level,
                         **_coverage_row(answered[members], correct[members], bootstrap, seed_of)})
    return pd.DataFrame(rows)


def coverage_sentence(table: pd.DataFrame) -> str:
    """One line comparing women's and men's coverage (and accuracy when answered) from ``coverage_table``."""
    genders = table[table["grouping"] == "gender"].set_index("group")
    if not {"female", "male"} <= set(genders.index) or genders.loc[["female", "male"], "with_face"].min() == 0:
        return "coverage per gender needs photos of women and of men with a face"
    female, male = genders.loc["female"], genders.loc["male"]

    def percent(row: pd.Series, key: str) -> str:
        return f"{row[key]:.0%} ({row[f'{key}_low']:.0%}-{row[f'{key}_high']:.0%})"

    verdict = ("the uncertain rule answers women less often" if female["coverage"] < male["coverage"]
               else "the uncertain rule answers women at least as often as men")
    return (f"{verdict}: {percent(female, 'coverage')} vs {percent(male, 'coverage')} of photos with a face "
            f"(n={female['with_face']} vs {male['with_face']}); accuracy when answered "
            f"{percent(female, 'accuracy_answered')} vs {percent(male, 'accuracy_answered')}")


def audit_photos(frame: pd.DataFrame, group_columns: Sequence[str], bootstrap: int = 1000, seed: int = 0,
                 min_count: int = MIN_CELL_COUNT, race_column: str = "race") -> dict[str, Any]:
    """The whole audit of an evaluation frame: ``intersections``, ``worst_cell``, ``gender_shades``,
    ``skin_tone_by_race`` (None without a race column or skin-tone columns), ``coverage`` and
    ``coverage_sentence``."""
    intersections = intersectional_table(frame, group_columns, bootstrap, seed, min_count)
    coverage = coverage_table(frame, group_columns, bootstrap, seed)
    by_race = skin_tone_by_race(frame, race_column) if {race_column, "skin_ita"} <= set(frame.columns) else None
    return {"intersections": intersections, "worst_cell": worst_cell(intersections, min_count),
            "gender_shades": gender_shades_table(intersections), "skin_tone_by_race": by_race,
            "coverage": coverage, "coverage_sentence": coverage_sentence(coverage)}


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    return None if table is None else json.loads(table.to_json(orient="records"))


def write_audit(audit: dict[str, Any], output: str | Path) -> list[Path]:
    """Write ``audit.csv`` (the intersectional table) and ``audit.json`` (every part, with the Gender Shades
    source) into ``output`` atomically; return the two paths."""
    output = Path(output)
    payload = {key: _records(value) if isinstance(value, pd.DataFrame) or value is None else value
               for key, value in audit.items()}
    payload["gender_shades_source"] = GENDER_SHADES_SOURCE
    return [atomic_write_csv(output / "audit.csv", audit["intersections"]),
            atomic_write_json(output / "audit.json", payload)]
