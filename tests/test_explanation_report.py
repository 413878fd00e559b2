"""Trained-run loading, face selection and the generated reading of the explanation metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nbhelpers.explain.report import describe_findings, explain_methods, select_faces
from nbhelpers.models import create_model
from nbhelpers.training.checkpoint import save_checkpoint
from nbhelpers.training.result import TrainedModel, TrainingResult
from nbhelpers.training.runs import find_run, load_trained_models, read_index, record_run, trained_checkpoints


def test_select_faces_orders_by_confidence():
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1])
    assert select_faces(probabilities, labels, "correct", 5).tolist() == [0, 2]
    assert select_faces(probabilities, labels, "wrong", 5).tolist() == [1, 3]
    assert select_faces(probabilities, labels, "confident", 2).tolist() == [0, 2]
    assert select_faces(probabilities, labels, "unsure", 1).tolist() == [3]
    with pytest.raises(ValueError, match="kind"):
        select_faces(probabilities, labels, "best", 1)


def summary_frame(bcos_score: float) -> pd.DataFrame:
    rows = []
    for method, pointing, focus in (("gradcam", 0.60, 0.5), ("xgradcam", 0.65, 0.4), ("bcos", bcos_score, 0.7),
                                    ("random", 0.5, 0.43)):
        rows += [("bcos_resnet18", method, "pointing_game", pointing), ("bcos_resnet18", method, "face_focus", focus)]
    frame = pd.DataFrame(rows, columns=["model", "method", "metric", "mean"])
    return frame.assign(std=0.1, count=10, sem=0.03)


@pytest.mark.parametrize("bcos_score, verdict", [(0.8, "higher than"), (0.55, "not higher than")])
def test_reading_follows_the_numbers(bcos_score, verdict):
    text = describe_findings(summary_frame(bcos_score))
    assert f"{verdict} the best Grad-CAM-family method (0.650)" in text
    assert ("best localisation by **bcos**" in text) == (bcos_score > 0.65)
    assert "random 0.500" in text and "(highest: bcos)" in text
    assert "same numbers" not in text


@pytest.mark.parametrize("bcos_grid, verdict", [(0.55, "**met** (margins +0.150 pointing game, +0.100 grid pointing game)"),
                                               (0.54, "**not met** (margins +0.150 pointing game, +0.090 grid pointing game)")])
def test_reading_gives_both_games_and_the_issue_target(bcos_grid, verdict):
    frame = summary_frame(0.8)
    grid = {"gradcam": 0.40, "xgradcam": 0.45, "bcos": bcos_grid, "random": 0.25}
    frame = pd.concat([frame, frame[frame["metric"] == "pointing_game"].assign(
        metric="grid_pointing_game", mean=lambda rows: rows["method"].map(grid))], ignore_index=True)
    text = describe_findings(frame)
    assert (f"Pointing game / grid pointing game: bcos 0.800 / {bcos_grid:.3f}, gradcam 0.600 / 0.400, "
            "random 0.500 / 0.250, xgradcam 0.650 / 0.450.") in text
    assert f"by at least 0.10 on both games): {verdict}." in text
    without_grid = describe_findings(summary_frame(0.8))
    assert "not assessed (no grid pointing game)" in without_grid and "bcos 0.800 / n/a" in without_grid


def test_reading_notes_methods_whose_maps_coincide():
    frame = summary_frame(0.8)
    xgradcam = frame["method"] == "xgradcam"
    frame.loc[xgradcam, "mean"] = frame.loc[frame["method"] == "gradcam", "mean"].to_numpy() + 0.001
    assert "gradcam and xgradcam give the same numbers (within 0.005) on every metric" in describe_findings(frame)


def write_run(tmp_path, name: str, run_id: str, variant: str = "", **kwargs) -> TrainedModel:
    model = create_model(name, **kwargs)
    bcos = name.startswith("bcos")
    model.spec = model.spec.replace(input_size=32, mean=None if bcos else (0.5,) * 3, std=None if bcos else (0.25,) * 3)
    path = save_checkpoint(tmp_path / run_id / "model.pt", {"model_state": model.state_dict(),
                                                            "metadata": model.spec.to_dict()})
    trained = TrainedModel(model, path, run_id)
    record_run(tmp_path, TrainingResult(trained, metrics={"test": {"accuracy": 0.5}}), {"balance": variant})
    return trained


def test_runs_are_indexed_and_found_by_model_or_id(tmp_path):
    first = write_run(tmp_path, "simple_cnn", "simple_cnn-1")
    write_run(tmp_path, "simple_cnn", "simple_cnn-2", variant="gender")  # a balanced run: not the plain one
    write_run(tmp_path, "simple_cnn", "simple_cnn-1")  # recorded again (a resumed run): replaces its entry
    assert [run["run_id"] for run in read_index(tmp_path)] == ["simple_cnn-2", "simple_cnn-1"]
    assert find_run(tmp_path, "simple_cnn")["checkpoint"] == str(first.checkpoint)
    assert find_run(tmp_path, "simple_cnn", variant="gender")["run_id"] == "simple_cnn-2"
    assert find_run(tmp_path, run_id="simple_cnn-2")["test_accuracy"] == 0.5
    assert trained_checkpoints(tmp_path) == {"simple_cnn": first.checkpoint}
    assert find_run(tmp_path, "resnet18", required=False) is None
    (tmp_path / "runs.json").write_text("{broken")
    with pytest.raises(ValueError, match="runs.json: not a run index"):
        read_index(tmp_path)


def test_trained_models_load_from_the_index(tmp_path):
    write_run(tmp_path, "bcos_resnet18", "bcos-1", width=8)
    assert list(trained_checkpoints(tmp_path)) == ["bcos_resnet18"]
    (run,) = load_trained_models(tmp_path, ["bcos_resnet18"], device="cpu")
    assert run.run_id == "bcos-1" and run.checkpoint == tmp_path / "bcos-1" / "model.pt"
    faces = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    inputs = run.preprocess(faces)
    assert inputs.shape == (3, 6, 32, 32) and torch.allclose(inputs[:, :3] + inputs[:, 3:], torch.ones(()))
    attributions = explain_methods(run, faces, ["gradcam", "bcos"])
    assert set(attributions) == {"gradcam", "bcos"} and attributions["bcos"].maps.shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="runs.json: no 'resnet18' run recorded"):
        load_trained_models(tmp_path, ["resnet18"])


def test_metric_plots_skip_a_metric_without_values_and_say_so():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nbhelpers.explain.plots import plot_metrics

    frame = pd.DataFrame({"model": "m", "method": ["gradcam", "bcos"] * 3, "metric": ["face_focus"] * 6,
                          "value": [0.2, 0.5, 0.3, 0.6, 0.25, 0.55], "image": [0, 0, 1, 1, 2, 2]})
    with pytest.warns(UserWarning, match="no values of pointing_game: not plotted"):
        axes = plot_metrics(frame, {"pointing_game": 0.5, "face_focus": None})
    assert [ax.get_ylabel() for ax in axes] == ["face focus"]
    plt.close("all")
