"""The mitigation comparison on constructed predictions with known answers."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

from nbhelpers.data.manifest import labels_of
from nbhelpers.fairness.mitigation import PLAIN, describe_mitigation, mitigation_table
from nbhelpers.training.evaluation import classification_metrics
from nbhelpers.training.result import SplitPredictions, TrainingResult


def result(frame: pd.DataFrame, wrong: np.ndarray) -> TrainingResult:
    labels = labels_of(frame)
    predicted = np.where(wrong, 1 - labels, labels)
    probabilities = np.stack([1 - predicted, predicted], axis=1).astype(float) * 0.8 + 0.1
    return TrainingResult(None, cache=SimpleNamespace(frame=frame),
                        metrics={"test": classification_metrics(labels, probabilities)},
                        predictions={"test": SplitPredictions(probabilities, labels, np.arange(len(frame)))})


def test_balanced_run_that_fixes_the_small_group_shows_its_worst_group_gain():
    frame = pd.DataFrame({"gender": ["female", "male"] * 100, "race": ["White"] * 160 + ["Black"] * 40})
    black = (frame["race"] == "Black").to_numpy()
    plain = result(frame, black & (np.arange(200) % 2 == 0))  # Black: 50% right, White: 100%
    balanced = result(frame, ~black & (np.arange(200) % 20 == 0))  # Black: 100%, White: 95%
    table = mitigation_table({PLAIN: plain, "balanced by race": balanced}, ["race"], min_count=10, bootstrap=200)
    rows = table.set_index("variant")
    assert rows.loc[PLAIN, "worst_group"] == "Black" and np.isclose(rows.loc[PLAIN, "worst_accuracy"], 0.5)
    assert np.isclose(rows.loc[PLAIN, "accuracy"], 0.9)
    assert rows.loc["balanced by race", "worst_group"] == "White"
    assert np.isclose(rows.loc["balanced by race", "worst_accuracy"], 0.95)
    assert np.isclose(rows.loc["balanced by race", "plain_worst_group_accuracy"], 1.0)  # Black, after balancing
    assert rows.loc[PLAIN, "worst_low"] < 0.5 < rows.loc[PLAIN, "worst_high"]
    text = describe_mitigation(table)
    assert "+45.0 pp" in text and "96.0%" in text and "(+6.0 pp)" in text
