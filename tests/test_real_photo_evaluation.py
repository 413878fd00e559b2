"""The real-photo evaluation on constructed predictions with known answers, and the uncertain outcome."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nbhelpers.predict.real_photos import accuracy_table, evaluate_photos, evaluation_summary, read_labels, risk_coverage
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import UNCERTAIN, FaceResult, PhotoResult
from tests.conftest import ROOT, tiny_checkpoint_file


class FakePredictor:
    """Fixed probabilities of 'male' per file; two faces in 'b.jpg' (the central one is scored); no face in 'c.jpg'."""

    classes = ["female", "male"]
    uncertain_below = 0.7

    def __init__(self, male: dict[str, float]) -> None:
        self.male = male

    def predict_paths(self, paths, progress=True, keep_chips=False):
        for path in paths:
            if path.name == "broken.jpg":
                yield PhotoResult(str(path), error=f"{path}: not an image file")
                continue
            def face(p, box):
                return FaceResult(box, {"female": 1 - p, "male": p}, "male" if p > 0.5 else "female", False, "dlib",
                                  chip=np.zeros((8, 8, 3), np.uint8))
            faces = [face(self.male[path.name], (40, 40, 60, 60))]
            if path.name == "b.jpg":
                faces.insert(0, face(1 - self.male[path.name], (0, 0, 30, 30)))  # larger, but off-centre
            if path.name == "c.jpg":
                faces = []
            yield PhotoResult(str(path), (100, 100), tuple(faces))


def labels_file(tmp_path, rows):
    path = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["file", "gender", "age_group"]).to_csv(path, index=False)
    return path


def test_photos_are_scored_on_the_central_face_with_groups_and_coverage(tmp_path):
    labels = read_labels(labels_file(tmp_path, [("a.jpg", "male", "20-29"), ("b.jpg", "female", "20-29"),
                                                ("c.jpg", "female", "3-9"), ("d.jpg", "Male", "3-9"),
                                                ("broken.jpg", "male", "3-9")]))
    predictor = FakePredictor({"a.jpg": 0.9, "b.jpg": 0.2, "c.jpg": 0.6, "d.jpg": 0.45})
    frame = evaluate_photos(predictor, labels, tmp_path, progress=False)
    assert frame["correct"].tolist() == [True, True, False, False, False]
    assert frame.loc[1, "faces"] == 2 and frame.loc[1, "p_male"] == pytest.approx(0.2)  # the central face
    table = accuracy_table(frame, bootstrap=50).set_index(["grouping", "group"])
    assert table.loc[("all", "all photos"), "accuracy"] == 0.5 and table.loc[("all", "all photos"), "count"] == 4
    assert table.loc[("age_group", "20-29"), "accuracy"] == 1.0 and table.loc[("age_group", "3-9"), "accuracy"] == 0.0
    coverage = risk_coverage(frame, [0.5, 0.7]).set_index("threshold")
    assert coverage.loc[0.7, "coverage"] == 0.5 and coverage.loc[0.7, "accuracy"] == 1.0  # a (0.9) and b (0.8) kept
    summary = evaluation_summary(frame, accuracy_table(frame, bootstrap=50), coverage, 0.7)
    assert summary["unreadable"] == 1 and summary["detection_rate"] == 0.75 and summary["several_faces"] == 1
    assert summary["coverage"] == pytest.approx(2 / 3) and summary["accuracy_when_answered"] == 1.0  # of 3 faces found
    assert summary["ours_accuracy"] == 0.5 and frame.loc[2, "detected"] == False  # noqa: E712 - c.jpg: no face, a miss


def test_labels_file_errors_name_the_file_and_row(tmp_path):
    bad = labels_file(tmp_path, [("a.jpg", "male", "1"), ("b.jpg", "other", "2")])
    with pytest.raises(ValueError, match=r"labels.csv: row 3: gender 'other'"):
        read_labels(bad)
    (tmp_path / "x.csv").write_text("name,sex\nq,male\n")
    with pytest.raises(ValueError, match=r"x.csv: missing column\(s\) \['file', 'gender'\]"):
        read_labels(tmp_path / "x.csv")


def test_central_face_prefers_the_centre_then_size():
    faces = [FaceResult(box, {"female": 0.5, "male": 0.5}, "female", False, "dlib")
             for box in [(0, 0, 50, 50), (45, 45, 55, 55), (40, 40, 60, 60)]]
    assert PhotoResult("x", (100, 100), tuple(faces)).central_face() is faces[2]


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return tiny_checkpoint_file(tmp_path / "model.pt", pipeline="pad_crop_flip", uncertain_below=0.999)


def test_below_the_runs_threshold_the_answer_is_uncertain(checkpoint, make_image, single_thread):
    photo = make_image("photo.jpg", seed=3, size=64)
    record = next(Predictor(checkpoint, "cpu", detect=False).predict_paths([photo], progress=False)).to_json()
    face = record["faces"][0]
    assert face["label"] == UNCERTAIN and face["uncertain"] and face["predicted"] in ("female", "male")
    answered = next(Predictor(checkpoint, "cpu", detect=False, uncertain_below=0).predict_paths([photo], progress=False))
    assert answered.faces[0].label == face["predicted"] and record["image_size"] == [64, 64]


def test_evaluate_command_writes_its_tables(checkpoint, make_image, tmp_path):
    for index, gender in enumerate(["female", "male", "female"]):
        make_image(f"photos/{index}.jpg", seed=index, size=64)
    labels = labels_file(tmp_path, [(f"{i}.jpg", g, "20-29") for i, g in enumerate(["female", "male", "female"])])
    out = subprocess.run([sys.executable, "-m", "nbhelpers.evaluate", str(tmp_path / "photos"), "--checkpoint",
                          str(checkpoint), "--labels", str(labels), "--output", str(tmp_path / "out"), "--bootstrap",
                          "20", "--device", "cpu", "--no-detect"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["photos"] == 3 and summary["uncertain_below"] == 0.999 and "peer_accuracy" in summary
    assert summary["detection_rate"] == 1.0  # centre crops: every photo answered
    assert set(pd.read_csv(tmp_path / "out" / "groups.csv")["model"]) == {"ours", "model alone", "dlib peer"}
    photos = pd.read_csv(tmp_path / "out" / "photos.csv")  # the default answer: the model and the peer averaged
    np.testing.assert_allclose(photos["p_male"], (photos["model_p_male"] + photos["peer_p_male"]) / 2, atol=1e-5)
    assert "model_alone_accuracy" in summary
    missing = subprocess.run([sys.executable, "-m", "nbhelpers.evaluate", str(tmp_path), "--checkpoint", str(labels),
                              "--labels", str(labels)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_evaluate_command_without_checkpoint_evaluates_the_default_run(checkpoint, make_image, tmp_path, capsys):
    from nbhelpers.predict.evaluate_cli import main
    from nbhelpers.utils.atomic import atomic_write_json

    make_image("photos/0.jpg", seed=0, size=64)
    labels = labels_file(tmp_path, [("0.jpg", "female", "20-29")])
    runs = tmp_path / "runs"
    atomic_write_json(runs / "runs.json", {"runs": [{"run_id": "lite-1", "model": "efficientnet_lite0", "variant": "",
                                                     "checkpoint": str(checkpoint), "test_accuracy": 0.9}]})
    arguments = [str(tmp_path / "photos"), "--labels", str(labels), "--no-peer", "--no-detect", "--bootstrap", "10",
                 "--device", "cpu", "--checkpoint-dir", str(runs)]
    assert main(arguments) == 0
    assert f"using efficientnet_lite0 run lite-1: {checkpoint}" in capsys.readouterr().err
    assert main(arguments[:-1] + [str(tmp_path / "never_trained")]) == 2
    assert "no trained run recorded" in capsys.readouterr().err


def test_flip_tta_averages_the_face_and_its_mirror(checkpoint, single_thread):
    plain = Predictor(checkpoint, "cpu", detect=False, flip_tta=False, peer_ensemble="off")
    tta = Predictor(checkpoint, "cpu", detect=False, flip_tta=True, peer_ensemble="off")
    chips = np.random.default_rng(0).integers(0, 256, (3, 200, 200, 3), dtype=np.uint8)
    expected = (plain.classify(chips)[0] + plain.classify(chips[:, :, ::-1].copy())[0]) / 2
    np.testing.assert_allclose(tta.classify(chips)[0], expected, atol=1e-6)
    assert not np.allclose(plain.classify(chips)[0], expected, atol=1e-6)
