"""The B-cos gallery of notebook 05: right and wrong faces of both classes, and the text computed from them."""

import numpy as np
import torch

from nbhelpers.explain.bcos import BcosExplanation
from nbhelpers.explain.bcos_plots import describe_gallery, gallery_rows


def test_gallery_rows_take_right_and_wrong_faces_of_both_classes_and_fill_up_when_a_kind_runs_out():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    predicted = np.array([0, 0, 1, 0, 1, 1, 0, 0, 1, 1])  # one wrong female (2), two wrong males (6, 7)
    probabilities = np.eye(2)[predicted]
    rows = gallery_rows(probabilities, labels, 8, seed=0)
    assert len(rows) == len(set(rows)) == 8
    kinds = {(labels[row], predicted[row] == labels[row]) for row in rows}
    assert kinds == {(0, True), (0, False), (1, True), (1, False)}
    assert {2, 6, 7} <= set(rows)  # every wrong face is shown when there are few
    assert list(labels[rows]) == sorted(labels[rows])  # grouped by class, right before wrong
    assert len(gallery_rows(probabilities, labels, 50)) == 10
    assert (gallery_rows(probabilities, labels, 8, seed=0) == rows).all()


def test_describe_gallery_reports_where_the_contributions_lie():
    size = 32
    contributions = torch.zeros(2, size, size)
    contributions[0, 12:20, 12:20] = 1.0  # all on the inner face
    contributions[1, :4, :] = 1.0  # all on the top rows: hair and background
    probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    explanation = BcosExplanation(predicted=torch.tensor([0, 1]), probabilities=probabilities, logits=probabilities.log(),
                                  targets=torch.tensor([0, 1]), target_logits=torch.zeros(2),
                                  weights=torch.zeros(2, 6, size, size), contributions=contributions,
                                  colour=torch.zeros(2, size, size, 4))
    text = describe_gallery(np.array([0, 0]), explanation)
    assert "1 right faces: 100% of the positive contribution on the inner face" in text
    assert "1 wrong faces: 0% of the positive contribution" in text and "probability 0.80" in text
    assert "checkerboard index" in text
