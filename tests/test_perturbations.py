"""Controlled changes of face chips (nbhelpers.fairness.perturbations): shapes, known effects on constructed
chips, and the table on a prediction function with known behaviour."""

import numpy as np
import pytest
import torch

from nbhelpers.fairness.perturbations import (
    PERTURBATIONS, brightness, gaussian_blur, grayscale, jpeg, perturb, perturbation_table,
    predict_male_probability, recrop,
)


def random_chip(height: int = 60, width: int = 80) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_change_keeps_shape_and_dtype(name):
    chips = np.stack([random_chip(), random_chip()[::-1]])
    changed = perturb(chips, name)
    assert changed.shape == chips.shape and changed.dtype == np.uint8
    assert (changed == chips).all() == (name == "original")


def square_chip(side: int) -> np.ndarray:
    chip = np.zeros((200, 200, 3), np.uint8)
    start = (200 - side) // 2
    chip[start:start + side, start:start + side] = 255
    return chip


def bright_area(chip: np.ndarray) -> int:
    return int((chip[..., 0] > 127).sum())


def test_recrop_zooms_about_the_centre():
    chip = square_chip(40)
    assert bright_area(recrop(chip, 0.8)) == pytest.approx(50 ** 2, rel=0.05)  # tighter: the face looks larger
    assert bright_area(recrop(chip, 1.25)) == pytest.approx(32 ** 2, rel=0.07)
    assert np.abs(recrop(chip, 1.0).astype(int) - chip).max() <= 1
    edge = np.zeros((200, 200, 3), np.uint8)
    edge[:, :10] = 200  # a bright left edge is repeated, not replaced by black, when widening
    assert (recrop(edge, 1.25)[:, :5] == 200).all()
    with pytest.raises(ValueError, match="scale must be positive"):
        recrop(chip, 0)


def test_pixel_changes_have_their_known_effects():
    checkerboard = np.kron((np.indices((20, 20)).sum(axis=0) % 2) * 255, np.ones((2, 2))).astype(np.uint8)
    checkerboard = np.repeat(checkerboard[..., None], 3, axis=2)
    assert gaussian_blur(checkerboard, 2.0).std() < gaussian_blur(checkerboard, 1.0).std() < checkerboard.std()
    assert gaussian_blur(checkerboard, 2.0).mean() == pytest.approx(checkerboard.mean(), rel=0.02)
    coloured = random_chip()
    grey = grayscale(coloured)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert (grayscale(checkerboard) == checkerboard).all()
    values = np.array([[[0, 100, 200]]], np.uint8)
    assert brightness(values, 0.6).tolist() == [[[0, 60, 120]]]
    assert brightness(values, 1.4).tolist() == [[[0, 140, 255]]]
    compressed = jpeg(coloured, 20)
    assert not (compressed == coloured).all() and np.abs(jpeg(square_chip(40), 20).astype(int) - square_chip(40)).mean() < 5
    with pytest.raises(KeyError, match="unknown perturbation 'sepia'"):
        perturb([coloured], "sepia")
    with pytest.raises(ValueError, match="uint8"):
        grayscale(coloured.astype(np.float32))


def brightness_model(chips: np.ndarray) -> np.ndarray:
    """p(male) = mean value / 255: darker faces read as female, brighter as male."""
    return chips.reshape(len(chips), -1).mean(axis=1) / 255


def test_table_on_a_prediction_function_with_known_behaviour():
    chips = np.concatenate([np.full((4, 20, 20, 3), 100, np.uint8), np.full((6, 20, 20, 3), 200, np.uint8)])
    labels, genders = [0] * 4 + [1] * 6, ["female"] * 4 + ["male"] * 6
    table = perturbation_table(brightness_model, chips, labels, genders,
                               ["original", "brighter_1.4", "darker_0.6", "grayscale"], bootstrap=100)
    rows = table.set_index(["perturbation", "gender"])
    assert list(table.columns) == ["perturbation", "gender", "count", "accuracy", "mean_p_male", "shift_p_male",
                                   "shift_low", "shift_high", "flipped"]
    original = rows.xs("original")
    assert original["accuracy"].tolist() == [1.0, 1.0, 1.0] and (original["shift_p_male"] == 0).all()
    assert (original[["shift_low", "shift_high", "flipped"]] == 0).all().all()
    assert original.loc["female", "mean_p_male"] == pytest.approx(100 / 255)
    brighter = rows.xs("brighter_1.4")
    assert brighter.loc["female", "accuracy"] == 0.0 and brighter.loc["male", "accuracy"] == 1.0
    assert brighter.loc["female", "shift_p_male"] == pytest.approx(40 / 255)
    assert brighter.loc["male", "shift_p_male"] == pytest.approx(55 / 255)  # 280 is clipped to 255
    assert brighter.loc["female", "flipped"] == 1.0 and brighter.loc["all", "accuracy"] == pytest.approx(0.6)
    darker = rows.xs("darker_0.6")
    assert darker.loc["male", "accuracy"] == 0.0 and darker.loc["male", "shift_p_male"] == pytest.approx(-80 / 255)
    assert rows.loc[("grayscale", "all"), "shift_p_male"] == 0.0
    assert rows.loc[("original", "all"), "count"] == 10


def test_table_accepts_two_class_probabilities_and_rejects_bad_inputs():
    chips = np.full((3, 8, 8, 3), 200, np.uint8)
    two_classes = lambda batch: np.stack([1 - brightness_model(batch), brightness_model(batch)], axis=1)
    table = perturbation_table(two_classes, chips, [1, 1, 1], ["male"] * 3, ["original"])
    assert table["mean_p_male"].iloc[0] == pytest.approx(200 / 255)
    with pytest.raises(ValueError, match="predict_fn must return"):
        perturbation_table(lambda batch: np.zeros((len(batch), 3)), chips, [1] * 3, ["male"] * 3, ["original"])
    with pytest.raises(ValueError, match="3 chips, 2 labels"):
        perturbation_table(brightness_model, chips, [1, 1], ["male"] * 3)
    with pytest.raises(KeyError, match="unknown perturbations"):
        perturbation_table(brightness_model, chips, [1] * 3, ["male"] * 3, ["blur_9"])


class MeanBrightness(torch.nn.Module):
    """Logits (0, 4 * (mean - 0.5)) of a float (N, 3, H, W) input in [0, 1]."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        score = 4 * (inputs.mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_predict_male_probability_runs_the_model_in_batches():
    preprocess = lambda chips: torch.as_tensor(chips).permute(0, 3, 1, 2).float() / 255
    chips = np.concatenate([np.full((3, 8, 8, 3), 51, np.uint8), np.full((2, 8, 8, 3), 204, np.uint8)])
    predict = predict_male_probability(MeanBrightness(), preprocess, batch_size=2)
    probabilities = predict(chips)
    expected = torch.sigmoid(torch.tensor([4 * (0.2 - 0.5)] * 3 + [4 * (0.8 - 0.5)] * 2)).numpy()
    assert probabilities.shape == (5,) and probabilities == pytest.approx(expected, abs=1e-6)
