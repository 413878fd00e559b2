"""Every numbered notebook also runs on the other dataset layouts (``make reports DATASET=fairface|celeba
DATA=...``): small generated folders laid out like the FairFace and CelebA releases (tests/fixtures.py),
smoke profile."""

import json

import pandas as pd
import pytest

from nbhelpers.reporting.run_notebooks import main, numbered_notebooks
from nbhelpers.training.runs import read_index
from tests.conftest import NOTEBOOKS
from tests.fixtures import FAIRFACE_RACES, make_celeba_folder, make_fairface_folder

MAKERS = {"fairface": make_fairface_folder, "celeba": make_celeba_folder}
MODELS = {"simple_cnn", "resnet9", "resnet18", "efficientnet_lite0", "bcos_resnet18"}


def _run(dataset: str, base):
    folder = MAKERS[dataset](base / dataset)
    code = main(["--profile", "smoke", "--dataset", dataset, "--data", str(folder), "--data-dir",
                 str(base / "data"), "--reports", str(base / "reports"), "--notebooks", str(NOTEBOOKS)])
    return code, base


@pytest.fixture(scope="module")
def fairface_run(tmp_path_factory):
    return _run("fairface", tmp_path_factory.mktemp("fairface_smoke"))


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory):
    return _run("celeba", tmp_path_factory.mktemp("celeba_smoke"))


def _check_every_notebook(code, base, dataset: str) -> pd.DataFrame:
    index = (base / "reports" / "index.html").read_text()
    assert index.count(">ok<") == len(numbered_notebooks(NOTEBOOKS)) and code == 0, index
    manifest = pd.read_csv(base / "data" / "manifests" / f"{dataset}.csv")
    assert set(manifest["split"]) == {"train", "val", "test"}
    runs = read_index(base / "data" / "checkpoints")
    assert {run["model"] for run in runs} >= MODELS and {run["config"]["dataset"] for run in runs} == {dataset}
    summary = json.loads((base / "reports" / "summary.json").read_text())
    assert summary["01_download"]["kept"] == len(manifest)
    return manifest


def test_every_notebook_runs_on_fairface_data(fairface_run):
    manifest = _check_every_notebook(*fairface_run, "fairface")
    assert manifest.loc[manifest["split"] == "test", "path"].str.contains("/val/").all()  # FairFace's val is our test


def test_bias_study_groups_fairface_races_and_age_bands(fairface_run):
    _, base = fairface_run
    table = pd.read_csv(base / "reports" / "bias.csv")
    races = set(table.loc[table["grouping"] == "race", "group"])
    assert races == set(FAIRFACE_RACES)  # FairFace's seven groups, not UTKFace's five
    assert set(table.loc[table["grouping"] == "age_band", "group"]) <= {"0-2", "3-9", "10-19", "20-39", "40-59", "60+"}


def test_every_notebook_runs_on_celeba_data(celeba_run):
    _check_every_notebook(*celeba_run, "celeba")
    _, base = celeba_run
    table = pd.read_csv(base / "reports" / "bias.csv")
    assert {"Young", "Pale_Skin", "gender x Young"} <= set(table["grouping"])  # CelebA's attributes stand in
    mitigation = json.loads((base / "reports" / "summary.json").read_text())["07_bias_study"]["mitigation"]
    assert mitigation["balance"] == "gender x Young"
