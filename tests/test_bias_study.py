"""Joining explanation metrics with groups, and picking the misclassified faces of a group."""

import numpy as np
import pandas as pd
import pytest

from nbhelpers.fairness.study import (
    explanation_metrics_by_group,
    misclassified_in_group,
)


@pytest.fixture
def faces() -> pd.DataFrame:
    return pd.DataFrame({"gender": ["female", "male", "female", "male"], "race": ["asian", "asian", "black", None]})


def test_explanation_metrics_are_averaged_per_group(faces):
    metrics = pd.DataFrame({"model": "m", "method": "bcos", "image": [0, 1, 2, 3, 0], "label": [0, 1, 0, 1, -1],
                            "metric": ["face_focus"] * 4 + ["pointing_game"], "value": [0.2, 0.4, 0.9, 0.5, 1.0]})
    table = explanation_metrics_by_group(metrics, faces, "race").set_index("race")
    assert table.loc["asian", "mean"] == pytest.approx(0.3) and table.loc["asian", "count"] == 2
    assert table.loc["black", "mean"] == pytest.approx(0.9) and table.loc["unknown", "mean"] == pytest.approx(0.5)
    assert set(table["metric"]) == {"face_focus"}  # mosaic rows (label -1) are not faces of a group


def test_misclassified_faces_of_a_group_most_confident_first(faces):
    probabilities = np.array([[0.1, 0.9], [0.3, 0.7], [0.4, 0.6], [0.5, 0.5]])
    assert misclassified_in_group(faces, probabilities, "race", "asian", 5).tolist() == [0]
    assert misclassified_in_group(faces, probabilities, "race", "black", 5).tolist() == [2]
    with pytest.raises(ValueError):
        misclassified_in_group(faces, probabilities, "race", "martian", 5)
