"""Every numbered notebook runs through papermill with the smoke profile on the real UTKFace archive."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from nbhelpers.run_notebooks import numbered_notebooks, run_all
from tests.conftest import NOTEBOOKS


def test_all_notebooks_succeed(smoke_run):
    code, base = smoke_run
    index = (base / "reports" / "index.html").read_text()
    for notebook in numbered_notebooks(NOTEBOOKS):
        assert (base / "reports" / f"{notebook.stem}.html").stat().st_size > 10_000
        assert f'href="{notebook.stem}.html"' in index
    assert index.count(">ok<") == len(numbered_notebooks(NOTEBOOKS)) and code == 0


def test_download_notebook_outputs(smoke_run):
    _, base = smoke_run
    manifest = pd.read_csv(base / "data" / "manifests" / "utkface.csv")
    summary = json.loads((base / "reports" / "summary.json").read_text())["01_download"]
    assert summary["profile"] == "smoke" and summary["scanned"] == 800 and summary["kept"] == len(manifest)
    assert set(manifest["split"]) == {"train", "val", "test"} and manifest["sha256"].is_unique
    executed = nbformat.read(base / "reports" / "01_download.ipynb", as_version=4)
    images = sum("image/png" in output.get("data", {}) for cell in executed.cells for output in cell.get("outputs", []))
    assert images >= 3  # sample grid, class balance, group balance


def test_augment_notebook_outputs(smoke_run):
    _, base = smoke_run
    summary = json.loads((base / "reports" / "summary.json").read_text())["02_augment"]
    cache = np.load(base / "data" / "cache" / f"utkface_{summary['image_size']}.npy", mmap_mode="r")
    manifest = pd.read_csv(base / "data" / "manifests" / "utkface.csv")
    assert cache.shape == (len(manifest), 32, 32, 3) and cache.std() > 10
    assert all(0.2 < value < 0.8 for value in summary["train_mean"])
    assert (base / "data" / "cache" / f"utkface_{summary['finetune_size']}.npy").is_file()


def test_training_notebooks_record_runs(smoke_run):
    _, base = smoke_run
    summary = json.loads((base / "reports" / "summary.json").read_text())
    runs = {**summary["03_resnet9_scratch"], **summary["04_resnet18_finetune"], **summary["05_bcos_training"]}
    for name in ("simple_cnn", "resnet9", "resnet18", "efficientnet_lite0", "bcos_resnet18"):
        assert 0 <= runs[name]["test_accuracy"] <= 1 and runs[name]["test_count"] > 0
        assert Path(runs[name]["checkpoint"]).is_file()
    assert summary["04_resnet18_finetune"]["dlib_peer"]["accuracy"] > 0.8  # the peer is a real, trained model
    assert summary["05_bcos_training"]["completeness_max_gap"] < 1e-3  # contributions + bias == logit


def test_explanation_notebook_outputs(smoke_run):
    _, base = smoke_run
    frame = pd.read_csv(base / "reports" / "explanations.csv")
    assert set(frame["method"]) == {"gradcam", "gradcam++", "xgradcam", "bcos", "random"}
    assert set(frame["model"]) == {"resnet18", "bcos_resnet18"}
    assert set(frame.loc[frame["method"] == "bcos", "model"]) == {"bcos_resnet18"}
    assert {"deletion_auc", "insertion_auc", "face_focus", "road_combined", "randomisation_spearman"} <= set(frame["metric"])
    assert frame["value"].notna().mean() > 0.8
    summary = json.loads((base / "reports" / "summary.json").read_text())["06_gradcam_analysis"]
    assert "bcos_resnet18/bcos" in summary and "resnet18/gradcam" in summary


def test_bias_notebook_outputs(smoke_run):
    _, base = smoke_run
    table = pd.read_csv(base / "reports" / "bias.csv")
    assert set(table["model"]) == {"efficientnet_lite0", "resnet18", "bcos_resnet18"}
    assert {"race", "age_band", "gender x race"} <= set(table["grouping"])
    measured = table[table["count"] > 0]
    assert len(measured) and (measured["accuracy_low"] <= measured["accuracy"] + 1e-9).all()
    summary = json.loads((base / "reports" / "summary.json").read_text())["07_bias_study"]
    assert "efficientnet_lite0/race" in summary
    mitigation = pd.DataFrame(summary["mitigation"]["rows"])
    assert set(mitigation["variant"]) == {"plain", "balanced by gender x age_band"}
    assert {"race", "age_band", "gender x age_band"} <= set(mitigation["grouping"])
    assert mitigation["worst_accuracy"].between(0, 1).all() and mitigation["accuracy"].between(0.3, 1).all()


def test_predict_notebook_outputs(smoke_run):
    _, base = smoke_run
    summary = json.loads((base / "reports" / "summary.json").read_text())["08_predict"]
    framings = {row["framing"] for row in summary["wide_photos"]}
    assert framings == {"aligned crop", "wide photo"} and all(row["faces"] > 0 for row in summary["wide_photos"])
    assert min(row["detected"] for row in summary["wide_photos"]) >= 0.5  # dlib finds most faces in wider photos
    page = (base / "reports" / "08_predict.html").read_text()
    assert "not_an_image.jpg" in page and "not an image file" in page and 'class="explanation"' in page


def test_failed_notebook_is_reported_and_the_run_goes_on(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name, source in (("01_broken", "raise RuntimeError('boom in the data step')"), ("02_fine", "x = 1 + 1")):
        notebook = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell("PROFILE: str = 'default'  # profile", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(source)])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, notebooks / f"{name}.ipynb")
    runs = run_all(notebooks, tmp_path / "reports", "smoke", {})
    assert [run["status"] for run in runs] == ["failed", "ok"]
    assert "boom in the data step" in runs[0]["error"]
    assert (tmp_path / "reports" / "01_broken.html").is_file() and (tmp_path / "reports" / "02_fine.html").is_file()
    assert "boom in the data step" in (tmp_path / "reports" / "index.html").read_text()
