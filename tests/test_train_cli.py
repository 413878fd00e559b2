"""The command-line entry point trains from a manifest and writes its metrics."""

import json

import pytest

from nbhelpers.datasets import build_manifest
from nbhelpers.profiles import TRAINING, training_profile
from nbhelpers.train import TrainConfig, main, run_directory


@pytest.fixture
def toy_data(make_image, tmp_path):
    for index in range(60):
        gender = ["female", "male"][index % 2]
        make_image(f"faces/{gender}/{index}.jpg", seed=index, size=40)
    build_manifest("folder", tmp_path / "faces", data_dir=tmp_path / "data")
    return tmp_path / "data"


def test_cli_trains_with_a_profile_and_overrides(toy_data, tmp_path, capsys):
    output = tmp_path / "metrics.json"
    code = main(["--model", "simple_cnn", "--profile", "smoke", "--data-dir", str(toy_data), "--dataset", "folder",
                 "--epochs", "2", "--image-size", "16", "--checkpoint-dir", str(tmp_path / "ckpt"), "--output", str(output)])
    assert code == 0
    metrics = json.loads(output.read_text())
    assert metrics["epochs_run"] == 2 and len(metrics["history"]) == 2
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["test"]["count"] > 0
    assert '"test"' in capsys.readouterr().out
    assert list((tmp_path / "ckpt").glob("simple_cnn-*/best.pt"))


def test_profiles_cover_every_model_and_fit_the_config():
    names = {field for field in TrainConfig.__dataclass_fields__}
    for profile, models in TRAINING.items():
        for model, values in models.items():
            assert set(values) <= names, (profile, model)
    with pytest.raises(KeyError, match="no settings for model 'vgg'"):
        training_profile("vgg", "default")


def test_changed_settings_get_their_own_run_directory():
    first = run_directory(TrainConfig(checkpoint_dir="c", epochs=2))
    assert first == run_directory(TrainConfig(checkpoint_dir="c", epochs=2, device="cpu"))
    assert first != run_directory(TrainConfig(checkpoint_dir="c", epochs=3))
    assert run_directory(TrainConfig()) is None


def test_group_balanced_training_runs_apart_and_names_a_missing_column(toy_data, tmp_path):
    common = ["--model", "simple_cnn", "--profile", "smoke", "--data-dir", str(toy_data), "--dataset", "folder",
              "--epochs", "1", "--image-size", "16", "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(common) == 0 and main([*common, "--balance", "gender"]) == 0
    assert len(list((tmp_path / "ckpt").glob("simple_cnn-*/best.pt"))) == 2  # the balanced run never resumes the other
    with pytest.raises(KeyError, match=r"no column\(s\) \['race'\]"):
        main([*common, "--balance", "gender x race"])
    assert run_directory(TrainConfig(checkpoint_dir="c")) != run_directory(TrainConfig(checkpoint_dir="c", balance="race"))
