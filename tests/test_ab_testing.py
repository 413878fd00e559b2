"""The A/B test of training changes: decision rule, paired bootstrap, resumable results and the loop."""

import json

import numpy as np
import pandas as pd
import pytest

from nbhelpers.fairness.ab_testing import (BASELINE, DROP, KEEP, WITHIN_NOISE, ab_decision, ab_table, finished_run,
                                           paired_bootstrap_difference, read_results, run_ab, seed_spread,
                                           train_or_reuse, write_results)
from nbhelpers.training.config import TrainConfig, run_directory
from nbhelpers.utils.atomic import atomic_write_json

BASE = {"photo_accuracy": 0.80, "photo_gap": 0.10, "in_domain_accuracy": 0.940}


@pytest.mark.parametrize("variant, decision, reason", [
    ({"photo_accuracy": 0.82, "photo_gap": 0.05, "in_domain_accuracy": 0.941}, KEEP, "better"),
    ({"photo_accuracy": 0.82, "photo_gap": -0.05, "in_domain_accuracy": 0.937}, KEEP, "better"),  # exactly 0.3 pp
    ({"photo_accuracy": 0.80, "photo_gap": 0.05, "in_domain_accuracy": 0.940}, DROP, "accuracy does not improve"),
    ({"photo_accuracy": 0.85, "photo_gap": -0.12, "in_domain_accuracy": 0.940}, DROP, "gap does not shrink"),
    ({"photo_accuracy": 0.85, "photo_gap": 0.01, "in_domain_accuracy": 0.9369}, DROP, "drops 0.31 pp"),
])
def test_decision_rule(variant, decision, reason):
    made, why = ab_decision(BASE, variant)
    assert made == decision and reason in why


def test_decision_names_every_failed_condition():
    _, why = ab_decision(BASE, {"photo_accuracy": 0.7, "photo_gap": 0.2, "in_domain_accuracy": 0.9})
    assert why.count(";") == 2


def test_paired_bootstrap_on_known_vectors():
    same = paired_bootstrap_difference([1, 0, 1, 1], [1, 0, 1, 1], bootstrap=200)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "half_width": 0.0}
    flipped = paired_bootstrap_difference(np.ones(50), np.zeros(50), bootstrap=200)
    assert flipped["difference"] == 1.0 and flipped["low"] == flipped["high"] == 1.0
    baseline = np.random.default_rng(0).integers(0, 2, 200)
    variant = baseline.copy()
    variant[np.flatnonzero(baseline == 0)[:4]] = 1  # 4 of 200 photos fixed, none broken
    paired = paired_bootstrap_difference(variant, baseline, bootstrap=2000)
    assert paired["difference"] == pytest.approx(0.02)
    assert 0.0 <= paired["low"] < 0.02 < paired["high"] <= 0.05  # paired: never below 0, unlike two intervals
    assert paired["half_width"] == pytest.approx((paired["high"] - paired["low"]) / 2)


def test_paired_bootstrap_rejects_unaligned_vectors():
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap_difference([1, 0], [1, 0, 1])


def test_results_round_trip_and_bad_line(tmp_path):
    path = tmp_path / "results.jsonl"
    assert read_results(path) == []
    rows = [{"variant": "a", "seed": 0, "photo_correct": {"x.jpg": 1}}, {"variant": "b", "seed": 1}]
    write_results(path, rows)
    assert read_results(path) == rows and len(path.read_text().splitlines()) == 2
    path.write_text(path.read_text() + '{"variant": "c", "se\n')
    with pytest.raises(ValueError, match="line 3"):
        read_results(path)


def _photo_figures(correct: dict[str, int], gap: float) -> dict:
    return {"photo_accuracy": float(np.mean(list(correct.values()))), "photo_gap": gap, "photo_correct": correct,
            "photo_female_recall": 0.8, "photo_male_recall": 0.8 + gap, "detection_rate": 1.0}


class FakeSteps:
    """Train and evaluate stand-ins that count their calls; ``fail_on`` makes one training raise (a kill)."""

    def __init__(self, fail_on: str = "") -> None:
        self.trained, self.fail_on = [], fail_on

    def train(self, overrides, seed):
        name = overrides.get("name", BASELINE)
        if name == self.fail_on:
            raise KeyboardInterrupt
        self.trained.append((name, seed))
        return {"checkpoint": f"{name}-{seed}.pt", "in_domain_accuracy": 0.94, "train_seconds": 60.0,
                "images_per_second": 100.0}

    def evaluate(self, trained):
        better = not trained["checkpoint"].startswith(BASELINE)
        correct = {f"{index}.jpg": int(index < 12 + 4 * better) for index in range(20)}
        return _photo_figures(correct, 0.05 if better else 0.10)


def test_loop_resumes_after_a_kill_and_redoes_a_changed_variant(tmp_path):
    path, variants = tmp_path / "results.jsonl", {BASELINE: {}, "other": {"name": "other"}}
    killed = FakeSteps(fail_on="other")
    with pytest.raises(KeyboardInterrupt):
        run_ab(variants, [0, 1], path, killed.train, killed.evaluate, log=lambda text: None)
    assert [(row["variant"], row["seed"]) for row in read_results(path)] == [(BASELINE, 0), (BASELINE, 1)]
    resumed = FakeSteps()
    rows = run_ab(variants, [0, 1], path, resumed.train, resumed.evaluate, log=lambda text: None)
    assert resumed.trained == [("other", 0), ("other", 1)] and len(rows) == 4
    changed = FakeSteps()
    rows = run_ab({**variants, "other": {"name": "other", "epochs": 2}}, [0], path, changed.train, changed.evaluate,
                  log=lambda text: None)
    assert changed.trained == [("other", 0)] and len(rows) == 4
    assert [row["overrides"] for row in rows if row["variant"] == "other" and row["seed"] == 0] == [
        {"name": "other", "epochs": 2}]


def test_table_compares_on_shared_seeds(tmp_path):
    steps = FakeSteps()
    rows = run_ab({BASELINE: {}, "other": {"name": "other"}}, [0, 1], tmp_path / "r.jsonl", steps.train,
                  steps.evaluate, log=lambda text: None)
    table = ab_table(rows, bootstrap=500).set_index("variant")
    assert list(table.index) == [BASELINE, "other"]
    assert table.loc["other", "photo_change_pp"] == pytest.approx(20.0)
    assert table.loc["other", "gap_change_pp"] == pytest.approx(-5.0)
    assert table.loc["other", "decision"] == KEEP and table.loc["other", "noise"] == ""
    assert table.loc["other", "seeds"] == "0,1"
    baseline = {f"{index}.jpg": int(index < 10) for index in range(20)}
    variant = {**baseline, "0.jpg": 0, "10.jpg": 1, "11.jpg": 1}  # fixes 2 photos, breaks 1: +5 pp, noise
    noisy = [{**rows[0], "photo_correct": baseline}, {**rows[2], "photo_correct": variant}]
    assert ab_table(noisy, bootstrap=2000).set_index("variant").loc["other", ["photo_change_pp", "noise"]].tolist() \
        == [pytest.approx(5.0), WITHIN_NOISE]
    with pytest.raises(ValueError, match="baseline"):
        ab_table([row for row in rows if row["variant"] != BASELINE])


def test_seed_spread_measures_each_variant_with_several_seeds():
    def row(variant, seed, photo, gap):
        return {"variant": variant, "seed": seed, "in_domain_accuracy": 0.94, "photo_accuracy": photo,
                "photo_female_recall": photo - gap / 2, "photo_male_recall": photo + gap / 2, "photo_gap": gap}
    rows = [row(BASELINE, 0, 0.81, 0.08), row(BASELINE, 1, 0.78, 0.11), row(BASELINE, 2, 0.80, 0.05),
            row("single", 0, 0.70, 0.0)]
    spread = seed_spread(rows).set_index(["variant", "figure"])
    assert set(spread.index.get_level_values("variant")) == {BASELINE}  # one seed: no spread to give
    assert spread.loc[(BASELINE, "photo_accuracy"), ["runs", "minimum", "maximum"]].tolist() == [3, 0.78, 0.81]
    assert spread.loc[(BASELINE, "photo_accuracy"), "range"] == pytest.approx(0.03)
    assert spread.loc[(BASELINE, "photo_gap"), "range"] == pytest.approx(0.06)
    assert spread.loc[(BASELINE, "in_domain_accuracy"), "range"] == 0
    assert spread.loc[(BASELINE, "photo_gap"), "seeds"] == "0,1,2"
    assert seed_spread(rows[3:]).empty and seed_spread([]).empty


def test_finished_run_needs_model_file_and_index_entry(tmp_path):
    config = TrainConfig(model="resnet9", checkpoint_dir=str(tmp_path / "checkpoints"), data_dir=str(tmp_path))
    folder = run_directory(config)
    assert finished_run(config) is None
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")
    assert finished_run(config) is None  # killed after saving, before recording
    entry = {"run_id": folder.name, "model": "resnet9", "variant": "", "checkpoint": f"{folder.name}/model.pt",
             "test_accuracy": 0.9, "test_per_class_accuracy": {"female": 0.88, "male": 0.92}, "epochs_run": 2,
             "seconds": 10.0}
    atomic_write_json(tmp_path / "checkpoints" / "runs.json", {"runs": [entry]})
    assert finished_run(config)["checkpoint"] == str(folder / "model.pt")
    manifest = tmp_path / "manifests" / "utkface.csv"
    manifest.parent.mkdir()
    pd.DataFrame({"path": [f"{index}.jpg" for index in range(6)], "gender": ["female", "male"] * 3,
                  "split": ["train"] * 5 + ["test"], "sha256": [f"{index:064x}" for index in range(6)]}
                 ).to_csv(manifest, index=False)
    reused = train_or_reuse(config)  # no training: the finished run is read back
    assert reused["reused"] and reused["train_images"] == 5 and reused["images_per_second"] == pytest.approx(1.0)
    assert (reused["in_domain_female_recall"], reused["in_domain_male_recall"]) == (0.88, 0.92)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train_or_reuse(TrainConfig(model="resnet9"))
    assert json.loads(json.dumps(reused))  # a JSON line as it is
