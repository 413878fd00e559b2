"""The model card is written from the report's figures and says what it cannot know."""

import json
import os

import pandas as pd

from nbhelpers.reporting.model_card import best_run, default_model_run, model_card, real_photo_coverage, write_model_card
from nbhelpers.reporting.reports import read_summary, update_summary, write_index


def test_card_reports_the_best_run_real_photos_and_groups(tmp_path):
    update_summary(tmp_path, "03", {"simple_cnn": {"test_accuracy": 0.85, "run_id": "s-1"}})
    update_summary(tmp_path, "04", {"efficientnet_lite0": {
        "test_accuracy": 0.94, "test_per_class_accuracy": {"female": 0.93, "male": 0.95}, "test_count": 2292,
        "input_size": 96, "epochs_run": 3, "pretrained_source": "imagenet", "run_id": "e-1"}})
    assert best_run({"04": {"x": {"test_accuracy": None}}}) is None
    text = model_card(tmp_path)
    assert "`efficientnet_lite0`" in text and "94.0% (female 93.0%, male 95.0%)" in text
    assert "Real photos: not measured" in text and "Not measured in this run (notebook 07)" in text
    assert "Out of scope" in text and "gender identity" in text and "non-commercial" in text
    update_summary(tmp_path, "07_bias_study", {"efficientnet_lite0/age_band": {
        "worst_group": "0-2", "worst_value": 0.646, "gap": 0.32, "gap_low": 0.25, "gap_high": 0.40}})
    update_summary(tmp_path, "08_predict", {"real_photos": {
        "photos": 270, "ours_accuracy": 0.77, "ours_accuracy_low": 0.72, "ours_accuracy_high": 0.82,
        "ours_female_recall": 0.70, "ours_male_recall": 0.84, "detection_rate": 0.88, "uncertain_below": 0.83,
        "accuracy_when_answered": 0.86, "coverage": 0.55}})
    path = write_model_card(tmp_path)
    text = path.read_text()
    assert "| age_band | 0-2 | 64.6% | 32.0 pp | 25.0-40.0 pp |" in text
    assert "77.0% (95% CI 72.0%-82.0%; female 70.0%, male 84.0%)" in text and "0.83" in text and "55.0%" in text
    assert "peer ensemble" not in text  # the model answered alone
    update_summary(tmp_path, "08_predict", {"real_photos": {
        "photos": 270, "ours_accuracy": 0.78, "model_alone_accuracy": 0.77, "model_alone_female_recall": 0.70,
        "model_alone_male_recall": 0.84}})
    text = model_card(tmp_path)
    assert "peer ensemble" in text and "`efficientnet_lite0` alone: 77.0% (female 70.0%, male 84.0%)" in text
    update_summary(tmp_path, "08_predict", {"model": "efficientnet_lite0", "answer": "efficientnet_lite0 + dlib peer (mean)"})
    assert "the answer is the peer ensemble, `efficientnet_lite0 + dlib peer (mean)`" in model_card(tmp_path)
    assert "deep ensemble" not in model_card(tmp_path)
    update_summary(tmp_path, "08_predict", {"answer": "efficientnet_lite0 x2 runs + dlib peer (mean)"})
    assert "its probabilities and those of the runs of its recipe trained with other seeds or the context swap (a deep ensemble)" in model_card(tmp_path)
    assert "face-descriptor probe" not in model_card(tmp_path)
    assert "on the same test faces" not in model_card(tmp_path)  # notebook 04 measured no ensemble
    update_summary(tmp_path, "08_predict", {"answer": "efficientnet_lite0 + dlib peer + descriptor probe (mean)"})
    assert "A face-descriptor probe votes too" in model_card(tmp_path)
    update_summary(tmp_path, "04_resnet18_finetune", {"probe_ensemble": {
        "row": "efficientnet_lite0 + dlib peer (32 px) + descriptor probe (mean)", "accuracy": 0.9476,
        "female accuracy": 0.95, "male accuracy": 0.945}, "peer_ensemble": {
        "row": "efficientnet_lite0 + dlib peer (32 px) (mean)", "accuracy": 0.9437}})
    text = model_card(tmp_path)
    assert ("The answer, `efficientnet_lite0 + dlib peer + descriptor probe (mean)`, on the same test faces: 94.8% "
            "(female 95.0%, male 94.5%)") in text and "94.4%" not in text
    assert "the votes of `efficientnet_lite0 + dlib peer + descriptor probe (mean)`" in text
    update_summary(tmp_path, "08_predict", {"answer": "efficientnet_lite0 x2 runs + descriptor probe (mean)"})
    assert "A face-descriptor probe votes too" in model_card(tmp_path)  # with the peer off too
    update_summary(tmp_path, "08_predict", {"answer": "efficientnet_lite0 x2 runs"})
    assert "the answer is a deep ensemble, `efficientnet_lite0 x2 runs`" in model_card(tmp_path)
    page = write_index(tmp_path, [], "default").read_text()
    assert 'href="model_card.md"' in page


def write_photos(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["file", "gender", "detected", "label", "correct"]).to_csv(folder / "photos.csv", index=False)


def test_card_states_real_photo_coverage_per_gender_and_says_when_women_are_answered_less(tmp_path):
    update_summary(tmp_path, "04", {"efficientnet_lite0": {"test_accuracy": 0.94}})
    update_summary(tmp_path, "08_predict", {"model": "efficientnet_lite0"})
    assert real_photo_coverage(tmp_path) is None and "*uncertain* rule on real photos" not in model_card(tmp_path)
    folder = tmp_path / "real_photos"
    write_photos(folder, [("a", "female", True, "uncertain", True), ("b", "female", True, "female", True),
                          ("c", "female", True, "male", False), ("d", "female", True, "female", True),
                          ("e", "female", False, "", False), ("f", "male", True, "male", True),
                          ("g", "male", True, "male", True), ("h", "male", True, "uncertain", False)])
    coverage = real_photo_coverage(tmp_path)
    assert coverage["female"]["with_face"] == 4 and coverage["female"]["coverage"] == 0.75
    assert coverage["female"]["accuracy_answered"] == 2 / 3 and coverage["male"]["accuracy_answered"] == 1.0
    text = model_card(tmp_path)
    assert "it answers 75% of the women (3 of 4 photos with a face) and 67% of the men (2 of 3)" in text
    assert "accuracy when answered 67% for women and 100% for men" in text and "(`efficientnet_lite0`)" in text
    assert "It answers women at least as often as men." in text
    audit = {"coverage": [
        {"grouping": "gender", "group": "female", "with_face": 130, "answered": 97, "coverage": 0.746,
         "coverage_low": 0.67, "coverage_high": 0.82, "accuracy_answered": 0.85, "accuracy_answered_low": 0.78,
         "accuracy_answered_high": 0.92},
        {"grouping": "gender", "group": "male", "with_face": 135, "answered": 105, "coverage": 0.778,
         "coverage_low": 0.70, "coverage_high": 0.85, "accuracy_answered": 0.92, "accuracy_answered_low": 0.87,
         "accuracy_answered_high": 0.97}]}
    (folder / "audit.json").write_text(json.dumps(audit))
    text = model_card(tmp_path)
    assert "it answers 75% (95% CI 67-82%) of the women (97 of 130 photos with a face)" in text
    assert "78% (95% CI 70-85%) of the men (105 of 135)" in text and "It answers women less often than men." in text
    old = (folder / "audit.json").stat().st_mtime - 60
    os.utime(folder / "audit.json", (old, old))  # photos.csv written after the audit: the audit is stale
    assert real_photo_coverage(tmp_path)["female"]["with_face"] == 4


def test_card_names_the_default_model_of_the_page_and_the_best_run_beside_it(tmp_path):
    update_summary(tmp_path, "04", {"efficientnet_lite0": {"test_accuracy": 0.942, "run_id": "e-1"}})
    update_summary(tmp_path, "05", {"bcos_efficientnet_lite0": {"test_accuracy": 0.935, "run_id": "b-1"}})
    assert default_model_run(read_summary(tmp_path))[0] == "efficientnet_lite0"  # notebook 08 not run: the best
    update_summary(tmp_path, "08_predict", {"model": "bcos_efficientnet_lite0"})
    name, run = default_model_run(read_summary(tmp_path))
    assert name == "bcos_efficientnet_lite0" and run["run_id"] == "b-1"
    text = model_card(tmp_path)
    assert text.startswith("# Model card: face-gender classifier `bcos_efficientnet_lite0`")
    assert "default model of the upload page" in text and "most accurate trained run is `efficientnet_lite0` (94.2%" in text
