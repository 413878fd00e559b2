"""Every numbered notebook also runs on a FairFace-format dataset (``make reports DATASET=fairface DATA=...``): a
small generated folder laid out like the FairFace release (tests/fixtures.py), smoke profile."""

import json

import pandas as pd
import pytest

from nbhelpers.reporting.run_notebooks import main, numbered_notebooks
from nbhelpers.training.runs import read_index
from tests.conftest import NOTEBOOKS
from tests.fixtures import FAIRFACE_RACES, make_fairface_folder


@pytest.fixture(scope="module")
def fairface_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("fairface_smoke")
    folder = make_fairface_folder(base / "fairface")
    code = main(["--profile", "smoke", "--dataset", "fairface", "--data", str(folder), "--data-dir",
                 str(base / "data"), "--reports", str(base / "reports"), "--notebooks", str(NOTEBOOKS)])
    return code, base


def test_every_notebook_runs_on_fairface_data(fairface_run):
    code, base = fairface_run
    index = (base / "reports" / "index.html").read_text()
    assert index.count(">ok<") == len(numbered_notebooks(NOTEBOOKS)) and code == 0, index
    manifest = pd.read_csv(base / "data" / "manifests" / "fairface.csv")
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert manifest.loc[manifest["split"] == "test", "path"].str.contains("/val/").all()  # FairFace's val is our test
    runs = read_index(base / "data" / "checkpoints")
    models = {"simple_cnn", "resnet9", "resnet18", "efficientnet_lite0", "bcos_resnet18"}
    assert {run["model"] for run in runs} >= models
    assert {run["config"]["dataset"] for run in runs} == {"fairface"}


def test_bias_study_groups_fairface_races_and_age_bands(fairface_run):
    _, base = fairface_run
    table = pd.read_csv(base / "reports" / "bias.csv")
    races = set(table.loc[table["grouping"] == "race", "group"])
    assert races == set(FAIRFACE_RACES)  # FairFace's seven groups, not UTKFace's five
    assert set(table.loc[table["grouping"] == "age_band", "group"]) <= {"0-2", "3-9", "10-19", "20-39", "40-59", "60+"}
    summary = json.loads((base / "reports" / "summary.json").read_text())
    assert summary["01_download"]["kept"] == len(pd.read_csv(base / "data" / "manifests" / "fairface.csv"))
