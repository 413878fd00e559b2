"""Bias study: per-group metrics, bootstrap CIs, gaps, calibration and weights on predictions with known answers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from nbhelpers.data.groups import (  # noqa: E402
    assign_groups,
    default_groupings,
    group_balanced_weights,
)
from nbhelpers.data.manifest import labels_of  # noqa: E402
from nbhelpers.fairness.bias import (  # noqa: E402
    describe_gaps,
    gap_summary,
    group_table,
    write_group_table,
)
from nbhelpers.fairness.calibration import (  # noqa: E402
    expected_calibration_error,
    reliability_by_group,
    reliability_curve,
)
from nbhelpers.fairness.plots import (  # noqa: E402
    plot_group_metric,
    plot_intersection_heatmap,
    plot_probability_by_group,
    plot_reliability,
    plot_reliability_by_group,
)


def faces(genders, predictions, confidence=0.9, **attributes):
    """Manifest rows and N x 2 probabilities that predict ``predictions`` with ``confidence``."""
    count = len(genders)
    frame = pd.DataFrame({"path": [f"{i}.jpg" for i in range(count)], "gender": list(genders), "split": "test",
                          "sha256": [f"h{i}" for i in range(count)], **attributes})
    confidences = np.broadcast_to(np.asarray(confidence, dtype=float), (count,))
    male = np.asarray([p == "male" for p in predictions])
    probabilities = np.where(male[:, None], np.c_[1 - confidences, confidences], np.c_[confidences, 1 - confidences])
    return frame, probabilities


def labelled(correct_female, wrong_female, correct_male, wrong_male):
    genders = ["female"] * (correct_female + wrong_female) + ["male"] * (correct_male + wrong_male)
    predictions = (["female"] * correct_female + ["male"] * wrong_female
                   + ["male"] * correct_male + ["female"] * wrong_male)
    return genders, predictions


def row(table, grouping, group):
    rows = table[(table["grouping"] == grouping) & (table["group"] == group)]
    assert len(rows) == 1, f"expected one row for {grouping}={group}"
    return rows.iloc[0]


@pytest.fixture
def two_races():
    genders_a, predictions_a = labelled(3, 1, 6, 0)   # race a: accuracy 9/10, recalls 3/4 and 1
    genders_b, predictions_b = labelled(5, 0, 2, 3)   # race b: accuracy 7/10, recalls 1 and 2/5
    return faces(genders_a + genders_b, predictions_a + predictions_b, race=["a"] * 10 + ["b"] * 10)


def test_per_group_metrics_are_exact(two_races):
    frame, probabilities = two_races
    table = group_table(frame, probabilities, ["race", ("gender", "race")], min_count=5, bootstrap=200)
    a, b = row(table, "race", "a"), row(table, "race", "b")
    assert (a["count"], a["female_count"], a["male_count"]) == (10, 4, 6)
    assert a["accuracy"] == pytest.approx(0.9) and a["female_recall"] == pytest.approx(0.75)
    assert a["male_recall"] == 1.0 and a["balanced_accuracy"] == pytest.approx(0.875)
    assert b["accuracy"] == pytest.approx(0.7) and b["female_recall"] == 1.0 and b["male_recall"] == pytest.approx(0.4)
    assert b["balanced_accuracy"] == pytest.approx(0.7) and a["mean_confidence"] == pytest.approx(0.9)
    male_b = row(table, "gender x race", "male & b")
    assert male_b["count"] == 5 and male_b["accuracy"] == pytest.approx(0.4) and np.isnan(male_b["female_recall"])
    assert male_b["balanced_accuracy"] == pytest.approx(0.4) and not male_b["small"]
    assert list(table[table["grouping"] == "gender x race"]["group"]) == ["female & a", "female & b", "male & a", "male & b"]


def test_bootstrap_ci_contains_estimate_shrinks_and_is_reproducible():
    small = faces(*labelled(15, 5, 0, 0))
    large = faces(*labelled(1500, 500, 0, 0))
    widths = []
    for frame, probabilities in (small, large):
        table = group_table(frame, probabilities, ["gender"], bootstrap=500, seed=3)
        female = row(table, "gender", "female")
        for metric in ("accuracy", "female_recall", "balanced_accuracy"):
            assert female[f"{metric}_low"] <= female[metric] <= female[f"{metric}_high"]
            assert female[metric] == pytest.approx(0.75)
        widths.append(female["accuracy_high"] - female["accuracy_low"])
    assert widths[1] < widths[0] / 3
    again = group_table(*small, ["gender"], bootstrap=500, seed=3)
    pd.testing.assert_frame_equal(again, group_table(*small, ["gender"], bootstrap=500, seed=3))


def test_perfect_group_ci_is_one_and_single_member_group_is_degenerate():
    genders, predictions = labelled(40, 0, 0, 1)
    frame, probabilities = faces(genders, predictions, race=["a"] * 40 + ["b"])
    table = group_table(frame, probabilities, ["race"], bootstrap=300)
    perfect, single = row(table, "race", "a"), row(table, "race", "b")
    assert (perfect["accuracy_low"], perfect["accuracy"], perfect["accuracy_high"]) == (1.0, 1.0, 1.0)
    assert not perfect["small"] and single["small"] and single["count"] == 1
    assert (single["accuracy_low"], single["accuracy"], single["accuracy_high"]) == (0.0, 0.0, 0.0)
    assert single["male_recall"] == 0.0 and np.isnan(single["female_recall_low"])


def test_empty_category_is_reported_with_count_zero(two_races):
    frame, probabilities = two_races
    frame["race"] = pd.Categorical(frame["race"], categories=["a", "b", "c"])
    table = group_table(frame, probabilities, ["race", ("gender", "race")], bootstrap=50)
    empty = row(table, "race", "c")
    assert empty["count"] == 0 and empty["small"] and np.isnan(empty["accuracy"]) and np.isnan(empty["accuracy_low"])
    assert row(table, "gender x race", "female & c")["count"] == 0


def test_missing_attribute_becomes_unknown_group(two_races):
    frame, probabilities = two_races
    frame["race"] = frame["race"].astype(object)
    frame.loc[[0, 1], "race"] = np.nan
    frame.loc[2, "race"] = ""
    table = group_table(frame, probabilities, ["race", ("gender", "race")], bootstrap=50)
    assert list(table[table["grouping"] == "race"]["group"]) == ["a", "b", "unknown"]
    assert row(table, "race", "unknown")["count"] == 3 and row(table, "race", "a")["count"] == 7
    assert table["count"].groupby(table["grouping"]).sum().eq(20).all()
    # no empty combination with "unknown" is invented: only females lack a race here
    assert "male & unknown" not in set(table["group"])


def test_missing_column_raises_key_error_naming_it(two_races):
    frame, probabilities = two_races
    with pytest.raises(KeyError, match=r"'ethnicity'.*available columns.*'race'"):
        group_table(frame, probabilities, [("gender", "ethnicity")], bootstrap=10)


def test_bad_inputs_are_rejected(two_races):
    frame, probabilities = two_races
    with pytest.raises(ValueError, match="shape"):
        group_table(frame, probabilities[:5], ["race"])
    frame.loc[0, "gender"] = "f"
    with pytest.raises(ValueError, match="'f'"):
        group_table(frame, probabilities, ["race"])


def test_ece_of_calibrated_and_overconfident_predictions():
    confidences = np.r_[np.full(10, 0.8), np.full(10, 0.6)]
    correct = np.r_[np.ones(8), np.zeros(2), np.ones(6), np.zeros(4)]
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)
    overconfident = np.full(10, 0.9), np.r_[np.ones(7), np.zeros(3)]
    assert expected_calibration_error(*overconfident) == pytest.approx(0.2)
    batch = expected_calibration_error(np.vstack([confidences, overconfident[0].repeat(2)]),
                                       np.vstack([correct, overconfident[1].repeat(2)]))
    assert batch == pytest.approx([0.0, 0.2])
    curve = reliability_curve(*overconfident, bins=10)
    assert curve["count"].sum() == 10 and curve.loc[8, "count"] == 10 and curve.loc[8, "accuracy"] == pytest.approx(0.7)
    assert np.isnan(curve.loc[0, "accuracy"]) and expected_calibration_error(np.ones(3), np.ones(3)) == 0.0


def test_group_ece_in_table_and_reliability_by_group(two_races):
    frame, probabilities = two_races
    table = group_table(frame, probabilities, ["race"], bootstrap=50)
    assert row(table, "race", "a")["ece"] == pytest.approx(0.0) and row(table, "race", "b")["ece"] == pytest.approx(0.2)
    curves = reliability_by_group(frame, probabilities, "race")
    assert curves.groupby("group")["ece"].first().to_dict() == pytest.approx({"a": 0.0, "b": 0.2})


def test_balanced_weights_give_each_group_equal_total():
    frame = pd.DataFrame({"gender": ["female"] * 6 + ["male"] * 4,
                          "race": ["a", "a", "b", "b", "b", None, "a", "b", "b", "b"]})
    weights = group_balanced_weights(frame, "race")
    assert weights.mean() == pytest.approx(1.0)
    totals = pd.Series(weights).groupby(frame["race"].fillna("unknown")).sum()
    assert totals.to_numpy() == pytest.approx(np.full(3, 10 / 3))
    crossed = group_balanced_weights(frame, ("gender", "race"))
    assert pd.Series(crossed).groupby(assign_groups(frame, ("gender", "race")).codes).sum().to_numpy() == pytest.approx(
        np.full(5, 2.0))


def test_gap_summary_and_description(two_races):
    frame, probabilities = two_races
    frame["race"] = frame["race"].where(np.arange(20) != 19, "c")   # one face of race c: small, not ranked
    table = group_table(frame, probabilities, ["race"], min_count=5, bootstrap=300)
    summary = gap_summary(table).iloc[0]
    assert (summary["worst_group"], summary["best_group"]) == ("b", "a") and summary["ranked_groups"] == 2
    assert summary["gap"] == pytest.approx(0.9 - 7 / 9) and summary["gap_low"] <= summary["gap"] <= summary["gap_high"]
    assert summary["small_groups"] == "c (n=1)"
    text = describe_gaps(gap_summary(table))
    assert "worst group *b*" in text and "c (n=1)" in text and "fewer than 5 faces" in text


def test_table_csv_round_trip_and_gap_without_replicates(two_races, tmp_path):
    frame, probabilities = two_races
    table = group_table(frame, probabilities, ["race"], min_count=5, bootstrap=50)
    path = write_group_table(table, tmp_path / "bias" / "groups.csv")
    back = pd.read_csv(path)
    assert list(tmp_path.joinpath("bias").iterdir()) == [path] and back["count"].tolist() == [10, 10]
    summary = gap_summary(back).iloc[0]
    assert summary["gap"] == pytest.approx(0.2) and np.isnan(summary["gap_low"])
    assert "no CI" in describe_gaps(gap_summary(back))


def test_default_groupings_use_manifest_columns():
    utkface = pd.DataFrame({"path": ["p"] * 4, "gender": ["female", "male"] * 2, "split": "test", "sha256": "h",
                            "age": [3, 25, 41, 70], "age_band": ["3-9", "20-29", "40-49", "70+"],
                            "race": ["white", "black", None, "asian"]})
    assert default_groupings(utkface) == ["gender", "age_band", "race", ("gender", "age_band"), ("gender", "race")]
    assert assign_groups(utkface, "age_band").levels == ("3-9", "20-29", "40-49", "70+")
    celeba = utkface[["path", "gender", "split", "sha256"]].assign(
        Male=[0, 1, 0, 1], Eyeglasses=[0, 0, 1, np.nan], Smiling=[1, 0, 1, 0], Young=[1, 1, 0, 0])
    assert default_groupings(celeba) == ["gender", "Eyeglasses", "Young", ("gender", "Eyeglasses"), ("gender", "Young")]
    assert assign_groups(celeba, "Eyeglasses").levels == ("0", "1", "unknown")


def test_plots_draw(two_races):
    frame, probabilities = two_races
    table = group_table(frame, probabilities, ["race", ("gender", "race")], min_count=6, bootstrap=50)
    labels = labels_of(frame)
    figures = [plot_group_metric(table, "race"), plot_intersection_heatmap(table, "gender x race"),
               plot_reliability(probabilities, labels), plot_reliability_by_group(frame, probabilities, "race"),
               plot_probability_by_group(frame, probabilities, "race")]
    assert all(isinstance(figure, plt.Figure) for figure in figures)
    with pytest.raises(KeyError, match="available"):
        plot_group_metric(table, "age_band")
    plt.close("all")


def test_bias_columns_follow_the_dataset_and_name_what_is_missing():
    from nbhelpers.fairness.study import bias_columns

    assert bias_columns(pd.DataFrame(columns=["gender", "race", "age_band"])) == ("race", "age_band")
    assert bias_columns(pd.DataFrame(columns=["gender", "Young", "Pale_Skin", "race"]), "", "") == ("race", "Young")
    assert bias_columns(pd.DataFrame(columns=["gender", "Young", "Pale_Skin"])) == ("Pale_Skin", "Young")
    assert bias_columns(pd.DataFrame(columns=["skin", "age_band"]), "skin") == ("skin", "age_band")
    with pytest.raises(KeyError, match=r"no column 'race' or 'Pale_Skin'.*GROUP_COLUMN"):
        bias_columns(pd.DataFrame(columns=["gender", "age_band"]))
    with pytest.raises(KeyError, match=r"no column 'decade'.*AGE_COLUMN"):
        bias_columns(pd.DataFrame(columns=["race", "age_band"]), age_column="decade")
