"""Apparent skin tone (ITA) on chips of known CIELAB colour, and the intersectional audit on constructed
evaluation frames with known answers, then through ``python -m nbhelpers.evaluate --audit``."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nbhelpers.fairness.audit import (
    GENDER_SHADES,
    coverage_sentence,
    coverage_table,
    gender_shades_table,
    intersectional_table,
    skin_tone_by_race,
    skin_tone_by_race_of_chips,
    worst_cell,
)
from nbhelpers.fairness.bias import mean_interval
from nbhelpers.fairness.skin_tone import SKIN_PATCHES, binary_tone, ita_category, skin_tone, skin_tone_columns
from tests.conftest import ROOT, tiny_checkpoint_file

D65_WHITE = np.array([0.95047, 1.0, 1.08883])
XYZ_TO_LINEAR_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])


def lab_to_srgb(lightness: float, a_star: float, b_star: float) -> np.ndarray:
    """Reference CIELAB (D65) -> 8-bit sRGB with the standard formulas, independent of OpenCV."""
    fy = (lightness + 16) / 116
    f = np.array([fy + a_star / 500, fy, fy - b_star / 200])
    xyz = D65_WHITE * np.where(f ** 3 > 216 / 24389, f ** 3, (116 * f - 16) / (24389 / 27))
    linear = np.clip(XYZ_TO_LINEAR_SRGB @ xyz, 0, None)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.round(srgb * 255), 0, 255).astype(np.uint8)


def uniform_chip(lab: tuple[float, float, float], size: int = 200) -> np.ndarray:
    return np.broadcast_to(lab_to_srgb(*lab), (size, size, 3)).copy()


# (L*, a*, b*) -> ITA category; each ITA at least 3 degrees from a category boundary
KNOWN_COLOURS = [((72, 10, 12), "very light"), ((70, 10, 15), "light"), ((60, 10, 15), "intermediate"),
                 ((58, 12, 18), "tan"), ((45, 14, 20), "brown"), ((30, 12, 12), "dark")]


@pytest.mark.parametrize("lab, category", KNOWN_COLOURS, ids=[name for _, name in KNOWN_COLOURS])
def test_ita_and_hue_of_uniform_chips_of_known_lab(lab, category):
    lightness, a_star, b_star = lab
    tone = skin_tone(uniform_chip(lab))
    assert tone.ita == pytest.approx(math.degrees(math.atan((lightness - 50) / b_star)), abs=1.5)
    assert tone.hue == pytest.approx(math.degrees(math.atan2(b_star, a_star)), abs=1.5)
    assert tone.lightness == pytest.approx(lightness, abs=0.5) and tone.skin_fraction == 1.0
    darker = category in ("tan", "brown", "dark")
    assert tone.category == category and tone.binary == ("darker" if darker else "lighter")
    assert tone.to_json()["category"] == category and tone.reliable


def test_categories_and_binary_split_at_their_boundaries():
    assert [ita_category(value) for value in (55.01, 55.0, 41.0, 28.0, 10.0, -30.0, -30.01)] == [
        "very light", "light", "intermediate", "tan", "brown", "dark", "dark"]
    assert ita_category(41.01) == "light" and ita_category(10.01) == "tan"
    assert binary_tone(28.0) == "darker" and binary_tone(28.01) == "lighter"
    assert ita_category(float("nan")) == binary_tone(float("nan")) == "unknown"


def test_skin_is_read_from_the_patches_and_hair_in_them_is_dropped():
    skin, elsewhere = lab_to_srgb(45, 14, 20), lab_to_srgb(80, 8, 10)  # brown patches, very light around them
    chip = np.broadcast_to(elsewhere, (200, 200, 3)).copy()
    for left, top, right, bottom in SKIN_PATCHES:
        chip[int(top * 200):int(bottom * 200) + 1, int(left * 200):int(right * 200) + 1] = skin
    reference = skin_tone(chip)
    assert reference.category == "brown" and reference.ita == pytest.approx(-14.0, abs=1.5)
    left, top, right, bottom = SKIN_PATCHES[2]  # black hair over the whole forehead patch
    chip[int(top * 200):int(bottom * 200) + 1, int(left * 200):int(right * 200) + 1] = 0
    covered = skin_tone(chip)
    assert covered.ita == pytest.approx(reference.ita, abs=0.01) and covered.skin_fraction < 0.8


def test_no_skin_colour_gives_an_unknown_tone_and_bad_arrays_an_error():
    blue = np.zeros((200, 200, 3), np.uint8)
    blue[..., 2] = 200
    tone = skin_tone(blue)
    assert tone.skin_fraction == 0.0 and tone.category == tone.binary == "unknown" and not tone.reliable
    with pytest.raises(ValueError, match="uint8 RGB chip"):
        skin_tone(np.zeros((200, 200), np.uint8))
    columns = skin_tone_columns([uniform_chip((30, 12, 12), size=8), None])  # tiny chips still have patches
    assert columns["skin_tone"].tolist() == ["dark", ""] and math.isnan(columns.loc[1, "skin_ita"])


def test_mean_interval_brackets_the_mean():
    assert mean_interval(np.ones(10), 200) == (1.0, 1.0)
    low, high = mean_interval(np.r_[np.zeros(50), np.ones(50)], 500)
    assert low < 0.5 < high and high - low < 0.3
    assert all(math.isnan(value) for value in mean_interval(np.array([]), 100))


def evaluation_frame() -> pd.DataFrame:
    """Photos with known outcomes: female & darker 20 photos, 12 right; female & lighter 20, 18 right; male &
    darker 20, 19 right; male & lighter 5, all wrong (too few to rank). Darker ones alternate brown/dark."""
    rows = []
    for gender, tone, count, right in [("female", "darker", 20, 12), ("female", "lighter", 20, 18),
                                       ("male", "darker", 20, 19), ("male", "lighter", 5, 0)]:
        for index in range(count):
            correct = index < right
            male = 0.9 if (gender == "male") == correct else 0.1
            category = ("brown", "dark")[index % 2] if tone == "darker" else "light"
            rows.append({"file": f"{gender}{tone}{index}.jpg", "gender": gender, "race": ("A", "B")[index % 2],
                         "error": "", "detected": True, "p_male": male, "correct": correct,
                         "label": "male" if male > 0.5 else "female", "skin_ita": -20.0 if tone == "darker" else 45.0,
                         "skin_hue": 50.0, "skin_tone": category, "skin_tone_binary": tone})
    return pd.DataFrame(rows)


def test_worst_cell_is_the_least_accurate_cell_large_enough_to_rank():
    table = intersectional_table(evaluation_frame(), ["race"], bootstrap=200, min_count=20)
    cells = table.set_index(["grouping", "group"])
    assert cells.loc[("gender x skin_tone_binary", "male & lighter"), "accuracy"] == 0.0  # 5 photos: not ranked
    assert cells.loc[("gender x race", "female & A"), "accuracy"] == 0.75  # 10 darker (6 right) + 10 lighter (9)
    worst = worst_cell(table, min_count=20)
    assert (worst["grouping"], worst["group"], worst["count"]) == ("gender x skin_tone_binary", "female & darker", 20)
    assert worst["accuracy"] == pytest.approx(0.6) and worst["accuracy_low"] < 0.6 < worst["accuracy_high"]
    assert worst_cell(table, min_count=100)["group"] is None
    context = gender_shades_table(table).set_index("subgroup")
    assert context.loc["darker female", "ours_accuracy"] == pytest.approx(60.0)
    assert context.loc["darker female", "Microsoft 2018"] == GENDER_SHADES["Microsoft"]["darker female"] == 79.2


def test_coverage_per_gender_and_the_sentence_when_women_are_answered_less():
    frame = evaluation_frame()
    frame["label"] = np.where(frame["gender"].eq("female") & (frame.groupby("gender").cumcount() % 4 == 0),
                              "uncertain", frame["label"])  # every 4th woman unanswered: 10 of 40
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "file": "noface.jpg", "detected": False, "label": ""}
    table = coverage_table(frame, ["race"], bootstrap=200)
    genders = table[table["grouping"] == "gender"].set_index("group")
    assert genders.loc["female", "with_face"] == 40 and genders.loc["female", "answered"] == 30
    assert genders.loc["female", "coverage"] == 0.75 and genders.loc["male", "coverage"] == 1.0
    answered_women = frame[(frame["gender"] == "female") & (frame["label"] != "uncertain") & frame["detected"]]
    assert genders.loc["female", "accuracy_answered"] == pytest.approx(answered_women["correct"].mean())
    assert genders.loc["female", "coverage_low"] < 0.75 < genders.loc["female", "coverage_high"]
    assert set(table["grouping"]) >= {"all", "race", "skin_tone_binary", "gender x race", "gender x skin_tone"}
    assert coverage_sentence(table).startswith("the uncertain rule answers women less often: 75% (")
    even = coverage_table(evaluation_frame(), ["race"], bootstrap=50)
    assert coverage_sentence(even).startswith("the uncertain rule answers women at least as often as men: 100%")
    men_only = coverage_table(evaluation_frame().query("gender == 'male'"), ["race"], bootstrap=0)
    assert coverage_sentence(men_only) == "coverage per gender needs photos of women and of men with a face"


def test_skin_tone_by_race_medians_and_share_darker():
    frame = pd.DataFrame({"race": ["X", "X", "X", "Y", "Y"], "skin_ita": [10.0, 20.0, 30.0, 50.0, np.nan],
                          "skin_hue": [40.0, 50.0, 60.0, 55.0, np.nan],
                          "skin_tone_binary": ["darker", "darker", "lighter", "lighter", ""]})
    table = skin_tone_by_race(frame).set_index("race")
    assert table.index.tolist() == ["Y", "X"] and table.loc["X", "ita_median"] == 20.0
    assert table.loc["X", "share_darker"] == pytest.approx(2 / 3) and table.loc["Y", "count"] == 1
    chips = np.stack([uniform_chip((70, 10, 15)), uniform_chip((30, 12, 12)), uniform_chip((32, 12, 12))])
    by_chips = skin_tone_by_race_of_chips(chips, ["light one", "dark ones", "dark ones"]).set_index("race")
    assert by_chips.loc["dark ones", "share_darker"] == 1.0 and by_chips.loc["light one", "share_darker"] == 0.0
    with pytest.raises(ValueError, match="3 chips but 2 race labels"):
        skin_tone_by_race_of_chips(chips, ["a", "b"])


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return tiny_checkpoint_file(tmp_path / "model.pt", pipeline="pad_crop_flip", uncertain_below=0.6)


def test_evaluate_command_with_audit_writes_the_audit(checkpoint, tmp_path):
    rows = []
    for index, (gender, race, lab) in enumerate([("female", "X", (70, 10, 15)), ("male", "X", (60, 10, 15)),
                                                 ("female", "Y", (30, 12, 12)), ("male", "Y", (45, 14, 20))]):
        (tmp_path / "photos").mkdir(exist_ok=True)  # uniform skin-coloured squares: centre crops of a known tone
        Image.fromarray(uniform_chip(lab, 64)).save(tmp_path / "photos" / f"{index}.png")
        rows.append((f"{index}.png", gender, "20-29", race))
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["file", "gender", "age_group", "race"]).to_csv(labels, index=False)
    out = subprocess.run([sys.executable, "-m", "nbhelpers.evaluate", str(tmp_path / "photos"), "--checkpoint",
                          str(checkpoint), "--labels", str(labels), "--output", str(tmp_path / "out"), "--bootstrap",
                          "20", "--device", "cpu", "--no-detect", "--no-peer", "--audit"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "the uncertain rule answers women" in out.stdout
    photos = pd.read_csv(tmp_path / "out" / "photos.csv")
    assert photos["skin_tone"].tolist() == ["light", "intermediate", "dark", "brown"]
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert {"intersections", "worst_cell", "gender_shades", "skin_tone_by_race", "coverage", "coverage_sentence",
            "gender_shades_source"} <= set(audit)
    assert {row["race"]: row["share_darker"] for row in audit["skin_tone_by_race"]} == {"X": 0.0, "Y": 1.0}
    table = pd.read_csv(tmp_path / "out" / "audit.csv")
    assert {"gender x race", "gender x age_group", "gender x skin_tone_binary", "gender x skin_tone"} <= set(
        table["grouping"])
    assert "skin_ita" not in set(pd.read_csv(tmp_path / "out" / "groups.csv")["grouping"])
