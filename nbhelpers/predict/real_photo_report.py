"""The real-photo diagnosis (``nbhelpers.predict.real_photo_diagnosis``) as figures, sentences and headline
figures: ``plot_real_photo_diagnosis`` (error rates by age group, region shares of the evidence for "male",
p(male) shifts under controlled changes), ``describe_real_photo_findings`` (the findings written from the
numbers, for notebook 07's Markdown cell and the README) and ``diagnosis_summary`` (for ``summary.json``).
Sentences are written from the measured numbers only; a part that was not measured says so.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nbhelpers.fairness.face_regions import REGIONS
from nbhelpers.predict.real_photo_diagnosis import AREA_EXPLANATION, REAL_SOURCE, REFERENCE_SOURCE, RealPhotoDiagnosis

__all__ = ["MIN_GROUP_FACES", "diagnosis_tables", "plot_real_photo_diagnosis", "describe_real_photo_findings",
           "diagnosis_summary"]

MIN_GROUP_FACES = 5  # groups with fewer faces are left out of the written worst-group findings


def _gender_row(diagnosis: RealPhotoDiagnosis, gender: str) -> dict[str, Any] | None:
    rows = diagnosis.errors[(diagnosis.errors["grouping"] == "gender") & (diagnosis.errors["gender"] == gender)]
    return rows.iloc[0].to_dict() if len(rows) else None


def _errors_sentence(diagnosis: RealPhotoDiagnosis) -> str:
    frame = diagnosis.frame
    counts = frame["gender"].value_counts()
    found = int(frame["detected"].eq(True).sum())
    parts = [f"Through the whole prediction path, answering alone (without the peer ensemble), `{diagnosis.model}` "
             f"found a face in {found} of {len(frame)} labelled real photos ({counts.get('female', 0)} women, "
             f"{counts.get('male', 0)} men)"]
    for gender, people, other in (("female", "women", "men"), ("male", "men", "women")):
        row = _gender_row(diagnosis, gender)
        if row and row["with_face"]:
            parts.append(f"it called {row['misclassified']} of {row['with_face']} {people} with a face {other} "
                         f"({row['error_rate']:.0%}, 95% CI {row['error_low']:.0%}-{row['error_high']:.0%})")
    return "; ".join(parts) + "."


def _worst_groups_sentence(diagnosis: RealPhotoDiagnosis, min_faces: int) -> str:
    errors = diagnosis.errors
    women = errors[(errors["gender"] == "female") & (errors["grouping"] != "gender") & (errors["with_face"] >= min_faces)]
    parts = []
    for grouping, rows in women.groupby("grouping", sort=False):
        if len(rows) < 2:
            continue
        worst, best = rows.loc[rows["error_rate"].idxmax()], rows.loc[rows["error_rate"].idxmin()]
        parts.append(f"by {grouping.split(' x ', 1)[1]}: "
                     + " vs ".join(f"{row['group']} {row['misclassified']}/{row['with_face']} ({row['error_rate']:.0%})"
                                   for row in (worst, best)))
    if not parts:
        return f"No grouping had two groups of women with {min_faces} or more faces each, so no group is singled out."
    return (f"Women's error rate, highest vs lowest group (groups of at least {min_faces} faces): "
            + "; ".join(parts) + ".")


def _quality_sentence(diagnosis: RealPhotoDiagnosis) -> str:
    women = diagnosis.quality[diagnosis.quality["gender"] == "female"].set_index("outcome")
    if not {"right", "wrong"} <= set(women.index):
        return "Image quality: there were not both misclassified and correctly classified women to compare."
    wrong, right = women.loc["wrong"], women.loc["right"]
    return (f"Image quality (medians), misclassified vs correctly classified women ({int(wrong['faces'])} vs "
            f"{int(right['faces'])}): sharpness (variance of the Laplacian) {wrong['sharpness']:.0f} vs "
            f"{right['sharpness']:.0f}; brightness {wrong['brightness']:.0f} vs {right['brightness']:.0f} of 255; "
            f"face width {wrong['face_width_px']:.0f} vs {right['face_width_px']:.0f} px "
            f"({wrong['face_width_share']:.0%} vs {right['face_width_share']:.0%} of the photo's width).")


def _largest_shift(versus: pd.DataFrame, explanation: str) -> str:
    """The region whose share changes most from the reference women to the real women, as a clause."""
    if versus.empty:
        return ""
    shift = versus[(versus["explanation"] == explanation) & (versus["gender"] == "female")].dropna(subset=["difference"])
    if shift.empty:
        return ""
    largest = shift.loc[shift["difference"].abs().idxmax()]
    return (f"; against {int(largest['second_count'])} {REFERENCE_SOURCE} women of the same age bands and races "
            f"the largest change is {largest['region']} {100 * largest['difference']:+.0f} pp "
            f"(95% CI {100 * largest['low']:+.0f} to {100 * largest['high']:+.0f})")


def _region_sentences(diagnosis: RealPhotoDiagnosis) -> list[str]:
    if not diagnosis.regions:
        return ["Regions: no faces to explain."]
    means = diagnosis.regions["means"]
    women = means[(means["gender"] == "female") & (means["source"] == REAL_SOURCE)]
    shares = women.set_index(["explanation", "region"])["mean"]
    area = shares.get(AREA_EXPLANATION)
    sentences = []
    for explanation in [name for name in women["explanation"].unique() if name != AREA_EXPLANATION]:
        top = shares.loc[explanation].dropna().sort_values(ascending=False).head(3)
        if top.empty:
            continue
        text = (f"{explanation}: in real women's faces the evidence for \"male\" lies most on "
                + ", ".join(f"{region} {share:.0%}" for region, share in top.items()))
        if area is not None:
            text += f" (their shares of the chip's area: {', '.join(f'{area[region]:.0%}' for region in top.index)})"
        sentences.append(text + _largest_shift(diagnosis.regions["real_vs_reference"], explanation) + ".")
    return sentences or ["Regions: no real women were explained."]


def _perturbation_sentence(diagnosis: RealPhotoDiagnosis) -> str:
    table = diagnosis.perturbations
    women = table[(table["gender"] == "female") & (table["perturbation"] != "original")] if table is not None else None
    if women is None or women.empty:
        return "Controlled changes: no real women with a face to change."
    up, down = women.loc[women["shift_p_male"].idxmax()], women.loc[women["shift_p_male"].idxmin()]

    def describe(row: pd.Series) -> str:
        return (f"{row['perturbation']} ({row['shift_p_male']:+.3f}, 95% CI {row['shift_low']:+.3f} to "
                f"{row['shift_high']:+.3f}; {row['flipped']:.0%} of answers changed)")

    return (f"Controlled changes of the {int(up['count'])} real women's chips: p(male) rose most with {describe(up)} "
            f"and fell most with {describe(down)}.")


def describe_real_photo_findings(diagnosis: RealPhotoDiagnosis | None, min_faces: int = MIN_GROUP_FACES) -> str:
    """The diagnosis as Markdown sentences with their numbers (error rates, worst groups, image quality, region
    shares of the evidence for "male", perturbation shifts); a note when there was nothing to diagnose."""
    if diagnosis is None:
        return "The real-photo diagnosis was skipped: no labelled photos at `PHOTOS_DIR`."
    if diagnosis.errors is None:
        return "The real-photo diagnosis has not been run (``diagnose_real_photos``)."
    sentences = [_errors_sentence(diagnosis), _worst_groups_sentence(diagnosis, min_faces),
                 _quality_sentence(diagnosis), *_region_sentences(diagnosis), _perturbation_sentence(diagnosis)]
    return "\n\n".join(f"- {sentence}" for sentence in sentences)


def _age_order(group: str) -> tuple[int, str]:
    """Sort key of an age group: its first number ("3-9" before "10-19", "70+" last), then the text."""
    digits = "".join(character if character.isdigit() else " " for character in str(group)).split()
    return (int(digits[0]) if digits else 10**6, str(group))


def diagnosis_tables(diagnosis: RealPhotoDiagnosis | None) -> dict[str, pd.DataFrame]:
    """The diagnosis's tables in a compact form for display, by title: women's error rates per group, image
    quality per gender and outcome, mean region shares (rows explanation x source x gender, columns ``REGIONS``),
    real minus UTKFace shares, women called male minus called female, and women's perturbation rows. Empty when
    skipped; tables that were not measured are left out."""
    if diagnosis is None or diagnosis.errors is None:
        return {}
    errors = diagnosis.errors
    tables = {"women's errors per group": errors[errors["gender"] == "female"].drop(columns="gender"),
              "image quality (medians) per gender and outcome": diagnosis.quality}
    pivots = (("mean share of the evidence for male", "means", ["explanation", "source", "gender"], "mean"),
              (f"{REAL_SOURCE} minus {REFERENCE_SOURCE} (same gender, age band, race)", "real_vs_reference",
               ["explanation", "gender"], "difference"),
              ("real women called male minus called female", "called_male_vs_female", ["explanation"], "difference"))
    for title, key, index, value in pivots:
        table = diagnosis.regions.get(key)
        if table is not None and len(table):
            pivot = table.pivot_table(index=index, columns="region", values=value, sort=False, dropna=False)
            tables[title] = pivot.reindex(columns=list(REGIONS))
    if diagnosis.perturbations is not None:
        tables["controlled changes, real women"] = diagnosis.perturbations.query("gender == 'female'")
    return tables


def _gender_bars(axis: plt.Axes, table: pd.DataFrame, key: str, order: list, value: str, low: str, high: str,
                 horizontal: bool = False) -> None:
    """Women's and men's ``value`` per ``key`` in ``order``, side by side, with their (``low``, ``high``) intervals."""
    for offset, (gender, color) in enumerate((("female", "tab:red"), ("male", "tab:blue"))):
        part = table[table["gender"] == gender].set_index(key).reindex(order)
        values = part[value].to_numpy(dtype=float)
        spread = np.nan_to_num(np.vstack([values - part[low], part[high] - values]).clip(min=0))
        positions = np.arange(len(order)) + 0.4 * offset - 0.2
        if horizontal:
            axis.barh(positions, np.nan_to_num(values), 0.4, xerr=spread, capsize=2, color=color, label=gender)
        else:
            axis.bar(positions, np.nan_to_num(values), 0.4, yerr=spread, capsize=2, color=color, label=gender)


def _plot_errors(axis: plt.Axes, errors: pd.DataFrame) -> None:
    rows = errors[errors["grouping"] == "gender x age_group"]
    groups = sorted(set(rows["group"]), key=_age_order)
    _gender_bars(axis, rows, "group", groups, "error_rate", "error_low", "error_high")
    axis.set_xticks(np.arange(len(groups)), groups, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("share of faces called the other gender")
    axis.set_title("errors by age group (95% CI)")
    axis.legend(fontsize=8)


def _plot_regions(axis: plt.Axes, means: pd.DataFrame) -> None:
    women = means[means["gender"] == "female"]
    explained = women[women["explanation"] != AREA_EXPLANATION]
    series = list(dict.fromkeys(zip(explained["explanation"], explained["source"])))
    width, positions = 0.8 / max(len(series), 1), np.arange(len(REGIONS))
    for index, (explanation, source) in enumerate(series):
        part = explained[(explained["explanation"] == explanation) & (explained["source"] == source)]
        values = part.set_index("region").reindex(REGIONS)
        low, high = values["low"].to_numpy(dtype=float), values["high"].to_numpy(dtype=float)
        mean = values["mean"].to_numpy(dtype=float)
        axis.bar(positions + width * (index - (len(series) - 1) / 2), np.nan_to_num(mean), width,
                 yerr=np.nan_to_num(np.vstack([mean - low, high - mean]).clip(min=0)), capsize=1,
                 label=f"{explanation}, {source}", hatch="//" if source == REFERENCE_SOURCE else None)
    area = women[(women["explanation"] == AREA_EXPLANATION) & (women["source"] == REAL_SOURCE)]
    if len(area):
        axis.scatter(positions, area.set_index("region").reindex(REGIONS)["mean"], marker="_", s=400, color="black",
                     label="area share (real photos)", zorder=3)
    axis.set_xticks(positions, REGIONS, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("share of the evidence for male")
    axis.set_title("women: where the evidence for \"male\" lies (95% CI)")
    axis.legend(fontsize=6)


def _plot_perturbations(axis: plt.Axes, table: pd.DataFrame) -> None:
    changes = [name for name in dict.fromkeys(table["perturbation"]) if name != "original"]
    _gender_bars(axis, table, "perturbation", changes, "shift_p_male", "shift_low", "shift_high", horizontal=True)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks(np.arange(len(changes)), changes, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("mean change of p(male)")
    axis.set_title("controlled changes (95% CI)")
    axis.legend(fontsize=8)


def plot_real_photo_diagnosis(diagnosis: RealPhotoDiagnosis) -> plt.Figure:
    """Three panels: share of faces called the other gender per age group and gender; women's mean share of the
    evidence for "male" per region (each explanation, real vs matched UTKFace faces, and the area baseline);
    mean p(male) shift per controlled change for women and men. Panels without data say so."""
    figure, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    parts = ((_plot_errors, diagnosis.errors), (_plot_regions, diagnosis.regions.get("means")),
             (_plot_perturbations, diagnosis.perturbations))
    for axis, (plot, table) in zip(axes, parts):
        if table is None or table.empty:
            axis.text(0.5, 0.5, "nothing measured", ha="center", va="center")
            axis.set_axis_off()
        else:
            plot(axis, table)
    figure.tight_layout()
    return figure


def _region_shifts(diagnosis: RealPhotoDiagnosis) -> dict[str, dict[str, Any]]:
    """Per explanation, the region whose share changes most from the reference women to the real women."""
    versus = diagnosis.regions.get("real_vs_reference", pd.DataFrame())
    shifts = versus[versus["gender"] == "female"].dropna(subset=["difference"]) if len(versus) else versus
    if shifts.empty:
        return {}
    return {explanation: rows.loc[rows["difference"].abs().idxmax(), ["region", "difference", "low", "high"]].to_dict()
            for explanation, rows in shifts.groupby("explanation") if explanation != AREA_EXPLANATION}


def diagnosis_summary(diagnosis: RealPhotoDiagnosis | None) -> dict[str, Any] | None:
    """Headline figures for ``summary.json``: model, photos, faces found, women's and men's misclassified counts
    and error rates with intervals, per explanation the women's largest region shift against UTKFace, and the
    perturbation that raised women's p(male) most; None when skipped."""
    if diagnosis is None or diagnosis.errors is None:
        return None
    summary: dict[str, Any] = {"model": diagnosis.model, "photos": len(diagnosis.frame),
                               "with_face": int(diagnosis.frame["detected"].eq(True).sum())}
    for gender in ("female", "male"):
        row = _gender_row(diagnosis, gender) or {}
        summary.update({f"{gender}_{key}": row.get(key) for key in ("with_face", "misclassified", "error_rate",
                                                                     "error_low", "error_high")})
    summary["female_region_shift"] = _region_shifts(diagnosis)
    table = diagnosis.perturbations
    women = table[(table["gender"] == "female") & (table["perturbation"] != "original")] if table is not None else None
    columns = ["perturbation", "shift_p_male", "shift_low", "shift_high", "flipped"]
    summary["female_top_perturbation"] = (None if women is None or women.empty
                                          else women.loc[women["shift_p_male"].idxmax(), columns].to_dict())
    return _json_ready(summary)


def _json_ready(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN as None, recursively (dicts and lists)."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value
