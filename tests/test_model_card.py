"""The model card is written from the report's figures and says what it cannot know."""

from nbhelpers.reporting.model_card import best_run, model_card, write_model_card
from nbhelpers.reporting.reports import update_summary, write_index


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
    page = write_index(tmp_path, [], "default").read_text()
    assert 'href="model_card.md"' in page
