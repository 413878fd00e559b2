"""The uncertain outcome: the abstention threshold chosen on validation predictions, and label smoothing."""

import numpy as np
import pytest
import torch

from nbhelpers.models import create_model
from nbhelpers.training.abstention import abstention_threshold, selective_accuracy


def test_threshold_is_the_lowest_confidence_whose_kept_faces_reach_the_target():
    probabilities = np.array([[0.95, 0.05], [0.1, 0.9], [0.8, 0.2], [0.35, 0.65], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 1, 0, 0, 0, 0])  # wrong: the 0.65 and the 0.55 answers
    threshold = abstention_threshold(probabilities, labels, target_accuracy=0.97)
    assert threshold == 0.8  # keeps 0.95, 0.9, 0.8: all right; adding 0.65 would make 3/4
    assert selective_accuracy(probabilities, labels, threshold) == (0.5, 1.0)
    assert abstention_threshold(probabilities, labels, target_accuracy=0.6) == 0.55  # 4 of 6 right overall
    assert abstention_threshold(probabilities[:1], labels[:1]) == 0.95
    with pytest.raises(ValueError, match="no validation predictions"):
        abstention_threshold(np.zeros((0, 2)), np.zeros(0))


def test_label_smoothing_changes_the_cross_entropy():
    model = create_model("simple_cnn")
    logits, labels = torch.tensor([[4.0, -4.0]]), torch.tensor([0])
    plain = model.loss(logits, labels)
    model.label_smoothing = 0.1
    assert model.loss(logits, labels) > plain + 0.1
