"""The real-photo diagnosis: quality measures, error tables, matching and region comparisons on constructed inputs
with known answers, and the whole diagnosis on generated photos through tiny untrained checkpoints."""

import json

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nbhelpers.fairness.error_diagnosis import (chip_quality, matched_rows, misclassification_table, quality_bands,
                                                quality_comparison, region_comparisons)
from nbhelpers.fairness.face_regions import REGIONS
from nbhelpers.fairness.perturbations import PERTURBATIONS
from nbhelpers.models import create_model
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.real_photo_diagnosis import (AREA_EXPLANATION, REAL_SOURCE, REFERENCE_SOURCE,
                                                    diagnose_real_photos, male_evidence, run_predict_path,
                                                    sample_labels)
from nbhelpers.predict.real_photo_report import (describe_real_photo_findings, diagnosis_summary, diagnosis_tables,
                                                 plot_real_photo_diagnosis)
from nbhelpers.training.checkpoint import save_checkpoint
from nbhelpers.training.result import TrainedModel, TrainingResult
from nbhelpers.training.runs import record_run
from tests.conftest import ROOT, smooth_photo, tiny_checkpoint_file

FAIRFACE_DEV = ROOT.parent / "shared" / "data" / "fairface-dev"
pytestmark = pytest.mark.usefixtures("single_thread")


def textured_chip(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_quality_measures_see_blur_and_exposure():
    sharp = textured_chip(0)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    grey = np.full((50, 50, 3), 100, np.uint8)
    quality = chip_quality([sharp, blurred, grey])
    assert quality.loc[0, "sharpness"] > 10 * quality.loc[1, "sharpness"] and quality.loc[2, "sharpness"] == 0
    assert quality.loc[2, "brightness"] == pytest.approx(100) and quality.loc[2, "contrast"] == pytest.approx(0)
    with pytest.raises(ValueError, match="chip 0 must be a uint8"):
        chip_quality([np.zeros((8, 8), np.uint8)])


def test_quality_bands_are_terciles_and_keep_missing_values():
    bands = quality_bands(pd.Series([1.0, 2, 3, 4, 5, 6, np.nan, 9]))  # terciles of the 7 known values: 3 and 5
    assert bands.tolist()[:6] == ["low", "low", "low", "mid", "mid", "high"] and bands.iloc[7] == "high"
    assert pd.isna(bands.iloc[6])
    assert list(bands.cat.categories) == ["low", "mid", "high"] and bands.cat.ordered
    assert quality_bands(pd.Series([2.0, 2.0, np.nan])).tolist()[:2] == ["mid", "mid"]


def photo_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "gender": ["female"] * 5 + ["male"] * 3,
        "detected": [True, True, True, True, False, True, True, True],
        "predicted": ["male", "male", "female", "female", "", "male", "female", "male"],
        "label": ["male", "uncertain", "female", "female", "", "male", "female", "male"],
        "age_group": ["3-9", "3-9", "20-29", "20-29", "20-29", "3-9", "20-29", "20-29"],
        "sharpness": [10.0, 20, 300, 400, np.nan, 50, 60, 70]})


def test_misclassification_table_counts_women_called_men_per_group():
    table = misclassification_table(photo_frame(), ["age_group"], bootstrap=50)
    rows = table.set_index(["grouping", "gender", "group"])
    women = rows.loc[("gender", "female", "female")]
    assert (women["photos"], women["with_face"], women["misclassified"]) == (5, 4, 2)
    assert women["error_rate"] == 0.5 and women["uncertain"] == 0.25 and women["error_low"] <= 0.5 <= women["error_high"]
    assert rows.loc[("gender x age_group", "female", "3-9"), "error_rate"] == 1.0
    assert rows.loc[("gender x age_group", "female", "20-29"), "misclassified"] == 0
    assert rows.loc[("gender x age_group", "male", "20-29"), "error_rate"] == 0.5
    with pytest.raises(KeyError, match="race"):
        misclassification_table(photo_frame(), ["race"])


def test_quality_comparison_gives_medians_per_outcome():
    table = quality_comparison(photo_frame(), ["sharpness"]).set_index(["gender", "outcome"])
    assert table.loc[("female", "wrong"), "sharpness"] == 15 and table.loc[("female", "right"), "sharpness"] == 350
    assert table.loc[("female", "wrong"), "faces"] == 2 and table.loc[("male", "right"), "faces"] == 2


def test_matched_rows_are_distinct_and_same_group():
    targets = pd.DataFrame({"gender": ["female", "female", "male", "female"], "race": ["Asian", "Asian", "Black", "White"]})
    pool = pd.DataFrame({"gender": ["female", "male", "female", "female"], "race": ["Asian", "Black", "Asian", "Black"]})
    chosen = matched_rows(targets, pool, ["gender", "race"], seed=1)
    assert sorted(chosen[:2]) == [0, 2] and chosen[2] == 1 and chosen[3] == -1
    with pytest.raises(KeyError, match="pool lacks the columns"):
        matched_rows(targets, pool.drop(columns="race"), ["gender", "race"])


def test_matched_rows_take_missing_and_categorical_values():  # pandas >= 3 keeps NaN through astype(str)
    targets = pd.DataFrame({"gender": ["female", "male"], "age": pd.Categorical([None, "20-29"])})
    pool = pd.DataFrame({"gender": ["male", "female"], "age": pd.Categorical(["20-29", None])})
    assert list(matched_rows(targets, pool, ["gender", "age"])) == [1, 0]


def constructed_shares() -> pd.DataFrame:
    rows = []
    for source, hair in ((REAL_SOURCE, 0.6), (REFERENCE_SOURCE, 0.2)):
        for face in range(4):
            called = "male" if source == REAL_SOURCE and face < 2 else "female"
            share = hair + (0.1 if called == "male" and source == REAL_SOURCE else 0)
            rest = (1 - share) / (len(REGIONS) - 1)
            rows.append({"explanation": "m gradcam", "source": source, "gender": "female", "called": called,
                         **{region: share if region == "hair" else rest for region in REGIONS}})
    return pd.DataFrame(rows)


def test_region_comparisons_find_the_shift_to_hair():
    comparisons = region_comparisons(constructed_shares(), REFERENCE_SOURCE, bootstrap=50)
    versus = comparisons["real_vs_reference"].set_index("region")
    assert versus.loc["hair", "difference"] == pytest.approx(0.45) and versus.loc["hair", "first_count"] == 4
    called = comparisons["called_male_vs_female"].set_index("region")
    assert called.loc["hair", "difference"] == pytest.approx(0.1)
    means = comparisons["means"].set_index(["source", "region"])
    assert means.loc[(REFERENCE_SOURCE, "hair"), "mean"] == pytest.approx(0.2)


def test_sample_labels_alternates_women_and_men():
    labels = pd.DataFrame({"file": [f"{index}.jpg" for index in range(20)], "gender": ["female"] * 15 + ["male"] * 5})
    chosen = sample_labels(labels, 8, seed=3)
    assert len(chosen) == 8 and (chosen["gender"] == "male").sum() == 4 and chosen["file"].is_unique
    assert sample_labels(labels, 8, seed=3).equals(chosen) and len(sample_labels(labels, 0)) == 20


def labelled_photos(folder, count: int = 8):
    """Generated photos of different sharpness and exposure with FairFace-style labels."""
    rows = []
    for index in range(count):
        photo = np.asarray(smooth_photo(60 + 4 * index, 50), dtype=np.float64) * (0.5 + index / count)
        photo += np.random.default_rng(index).normal(0, 20 * (index % 3), photo.shape)
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(folder / f"p{index}.png")
        rows.append((f"p{index}.png", ["female", "male"][index % 2], ["20-29", "3-9"][index % 2 * (index > 3)],
                     ["East Asian", "White"][index % 2]))
    pd.DataFrame(rows, columns=["file", "gender", "age_group", "race"]).to_csv(folder / "labels.csv", index=False)
    return pd.read_csv(folder / "labels.csv", dtype=str)


def test_predict_path_keeps_chips_boxes_and_quality(tmp_path):
    labels = labelled_photos(tmp_path, 4)
    predictor = Predictor(tiny_checkpoint_file(tmp_path / "model.pt"), "cpu", detect=False)
    diagnosis = run_predict_path(predictor, labels, tmp_path)
    frame = diagnosis.frame
    assert diagnosis.chips.shape == (4, predictor.chip_size, predictor.chip_size, 3) and list(diagnosis.chip_rows) == [0, 1, 2, 3]
    assert frame["face_width_px"].tolist() == [50, 50, 50, 50]  # the centre square of each 50 px high photo
    assert frame["face_width_share"].tolist() == pytest.approx([50 / width for width in (60, 64, 68, 72)])
    assert frame["sharpness"].notna().all() and frame["age_band"].tolist() == ["20-39"] * 4
    assert frame.loc[0, "p_male"] == pytest.approx(predictor.classify(diagnosis.chips[:1])[0][0, 1], abs=1e-6)


def test_male_evidence_explains_male_with_the_predictors_probability(tmp_path):
    predictor = Predictor(tiny_checkpoint_file(tmp_path / "model.pt"), "cpu", detect=False, peer_ensemble="off")
    chips = np.stack([textured_chip(seed, 48) for seed in range(5)])
    maps, p_male = male_evidence(predictor.trained, chips, "gradcam", batch_size=2)
    assert maps.shape == (5, 32, 32) and (maps >= 0).all()
    assert p_male == pytest.approx(predictor.classify(chips)[0][:, 1], abs=1e-5)


def record(checkpoint_dir, name: str, run_id: str, **kwargs) -> None:
    model = create_model(name, **kwargs)
    bcos = name.startswith("bcos")
    model.spec = model.spec.replace(input_size=32, mean=None if bcos else (0.5,) * 3, std=None if bcos else (0.25,) * 3)
    path = save_checkpoint(checkpoint_dir / run_id / "model.pt", {"model_state": model.state_dict(),
                                                                  "metadata": model.spec.to_dict()})
    record_run(checkpoint_dir, TrainingResult(TrainedModel(model, path, run_id)), {})


def test_whole_diagnosis_on_generated_photos(tmp_path, capsys):
    photos, checkpoints = tmp_path / "photos", tmp_path / "checkpoints"
    photos.mkdir()
    labelled_photos(photos, 8)
    record(checkpoints, "simple_cnn", "simple-1")
    record(checkpoints, "bcos_resnet18", "bcos-1", width=8)
    reference = np.stack([textured_chip(seed, 40) for seed in range(6)])
    reference_frame = pd.DataFrame({"gender": ["female", "male"] * 3, "age_band": ["20-39"] * 6,
                                    "race": ["Asian", "White", "Asian", "Black", "Black", "Black"]})
    assert diagnose_real_photos(tmp_path / "none", checkpoints, "simple_cnn", "", reference, reference_frame) is None
    assert "real-photo diagnosis skipped" in capsys.readouterr().out
    diagnosis = diagnose_real_photos(photos, checkpoints, "simple_cnn", "", reference, reference_frame, count=6,
                                     bootstrap=20, landmark_source="template", detect=False)
    assert len(diagnosis.frame) == 6 and len(diagnosis.chips) == 6
    shares = diagnosis.shares
    assert set(shares["explanation"]) == {AREA_EXPLANATION, "simple_cnn gradcam", "bcos_resnet18 bcos"}
    explained = shares[shares["explanation"] != AREA_EXPLANATION].dropna(subset=list(REGIONS))
    assert np.allclose(explained[list(REGIONS)].sum(axis=1), 1)
    matched = shares[(shares["source"] == REFERENCE_SOURCE) & (shares["explanation"] == AREA_EXPLANATION)]
    assert sorted(matched["gender"]) == ["female", "female", "male"]  # 20-29 women (Asian) x2, 20-29 men (White) x1
    real = shares[(shares["source"] == REAL_SOURCE) & (shares["explanation"] == AREA_EXPLANATION)]
    assert real.groupby("gender")["matched"].sum().to_dict() == {"female": 2, "male": 1}
    versus = diagnosis.regions["real_vs_reference"].set_index(["explanation", "gender", "region"])
    assert versus.loc[(AREA_EXPLANATION, "female", "hair"), "first_count"] == 2  # only the partnered real women
    assert len(diagnosis.perturbations) == 3 * len(PERTURBATIONS)
    women = diagnosis.frame[diagnosis.frame["gender"] == "female"]
    wrong = int((women["predicted"] == "male").sum())
    summary = diagnosis_summary(diagnosis)
    assert summary["female_misclassified"] == wrong and summary["female_with_face"] == 3 and json.dumps(summary)
    text = describe_real_photo_findings(diagnosis)
    assert f"called {wrong} of 3 women with a face men" in text and "bcos_resnet18 bcos" in text
    assert "Controlled changes of the 3 real women's chips" in text
    assert {"women's errors per group", "controlled changes, real women"} <= set(diagnosis_tables(diagnosis))
    figure = plot_real_photo_diagnosis(diagnosis)
    assert len(figure.axes) == 3
    plt.close(figure)
    assert describe_real_photo_findings(None).startswith("The real-photo diagnosis was skipped")


def test_diagnosis_without_any_face_says_so(tmp_path):
    photos, checkpoints = tmp_path / "photos", tmp_path / "checkpoints"
    photos.mkdir()
    labelled_photos(photos, 4)  # smooth gradients: no detector finds a face
    record(checkpoints, "simple_cnn", "simple-1")
    reference = np.stack([textured_chip(seed, 40) for seed in range(2)])
    reference_frame = pd.DataFrame({"gender": ["female", "male"], "age_band": ["20-39"] * 2, "race": ["Asian"] * 2})
    diagnosis = diagnose_real_photos(photos, checkpoints, "simple_cnn", "", reference, reference_frame, bootstrap=20)
    assert len(diagnosis.chips) == 0 and diagnosis.perturbations is None and diagnosis.regions == {}
    text = describe_real_photo_findings(diagnosis)
    assert "found a face in 0 of 4" in text and "Regions: no faces to explain." in text
    assert diagnosis_summary(diagnosis)["female_error_rate"] is None
    plt.close(plot_real_photo_diagnosis(diagnosis))


@pytest.mark.skipif(not (FAIRFACE_DEV / "labels.csv").is_file(), reason=f"no labelled photos at {FAIRFACE_DEV}")
def test_predict_path_on_real_photos_finds_faces_and_measures_them(tmp_path):
    labels = sample_labels(pd.read_csv(FAIRFACE_DEV / "labels.csv", dtype=str), 4, seed=0)
    predictor = Predictor(tiny_checkpoint_file(tmp_path / "model.pt"), "cpu")
    diagnosis = run_predict_path(predictor, labels, FAIRFACE_DEV)
    found = diagnosis.frame[diagnosis.frame["detected"]]
    assert len(found) >= 3 and len(diagnosis.chips) == len(found)
    assert (found["face_width_px"] > 20).all() and found["face_width_share"].between(0, 1).all()
    assert found["age_band"].isin(["0-2", "3-9", "10-19", "20-39", "40-59", "60+"]).all()
