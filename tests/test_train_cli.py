"""The command-line entry point trains from a manifest and writes its metrics."""

import json

import pytest

from nbhelpers.training.profiles import TRAINING, training_profile
from nbhelpers.training.run import run_training
from nbhelpers.training.runs import find_run, read_index
from nbhelpers.models import list_models, model_spec
from nbhelpers.training.checkpoint import load_checkpoint
from nbhelpers.training.cli import main
from nbhelpers.training.config import TrainConfig, run_directory, run_settings


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
    assert metrics["checkpoint"].endswith("model.pt") and find_run(tmp_path / "ckpt", "simple_cnn")["epochs_run"] == 2


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
    # the folder name is a contract with every run already trained: a new field left at its default keeps it
    assert run_directory(TrainConfig(checkpoint_dir="c")).name == "resnet9-26dfa547c2"
    assert run_directory(TrainConfig(checkpoint_dir="c", augment="", head_lr_scale=1.0)).name == "resnet9-26dfa547c2"


def test_run_settings_are_one_recipe_for_every_seed():
    seeds = [TrainConfig(checkpoint_dir=f"c{seed}", seed=seed, device="cpu") for seed in (0, 1)]
    assert run_settings(seeds[0], without=("seed",)) == run_settings(seeds[1], without=("seed",))
    assert run_settings(seeds[0]) != run_settings(seeds[1])
    assert "teacher" not in run_settings(seeds[0]) and "distillation" not in run_settings(seeds[0])
    assert run_settings(TrainConfig(teacher="efficientnet_lite0"))["distillation"] == TrainConfig().distillation


def test_group_balanced_training_runs_apart_and_names_a_missing_column(toy_data, tmp_path):
    common = ["--model", "simple_cnn", "--profile", "smoke", "--data-dir", str(toy_data), "--dataset", "folder",
              "--epochs", "1", "--image-size", "16", "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(common) == 0 and main([*common, "--balance", "gender"]) == 0
    assert len(list((tmp_path / "ckpt").glob("simple_cnn-*/best.pt"))) == 2  # the balanced run never resumes the other
    with pytest.raises(KeyError, match=r"no column\(s\) \['race'\]"):
        main([*common, "--balance", "gender x race"])
    assert run_directory(TrainConfig(checkpoint_dir="c")) != run_directory(TrainConfig(checkpoint_dir="c", balance="race"))


@pytest.mark.parametrize("name", list_models())
def test_cli_and_notebook_path_record_the_models_own_pipeline(name, toy_data, tmp_path, single_thread):
    """The command line and the notebooks' call (no pipeline given) train with the registered pipeline, reach the
    same run folder and record it once in the index; the bug this guards: a B-cos run fed normalised RGB."""
    settings = {"epochs": 1, "image_size": 16, "train_limit": 16, "batch_size": 8, "max_lr": 0.001, "patience": 0,
                "optimizer": "adam", "label_smoothing": 0.0}
    flags = [item for key, value in settings.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    common = {"dataset": "folder", "data_dir": str(toy_data), "checkpoint_dir": str(tmp_path / "ckpt")}
    assert main(["--model", name, "--profile", "smoke", *flags, "--pretrained", "", "--width", "0",
                 *[item for key, value in common.items() for item in (f"--{key.replace('_', '-')}", value)]]) == 0
    cli_run = find_run(tmp_path / "ckpt", name)
    notebook = run_training(TrainConfig(model=name, **settings, **common), progress=False)
    expected = model_spec(name).pipeline
    assert load_checkpoint(cli_run["checkpoint"])["metadata"]["pipeline"] == expected == cli_run["pipeline"]
    assert notebook.spec.pipeline == expected and str(notebook.trained.checkpoint) == cli_run["checkpoint"]
    assert len(read_index(tmp_path / "ckpt")) == 1


def test_config_from_parameters_reads_prefixed_and_shared_parameters():
    from nbhelpers.training.config import config_from_parameters

    parameters = {"MODEL": "resnet9", "EPOCHS": 3, "WIDTH": 16, "SEED": 7, "DATASET": "fairface", "GRAD_CLIP": 0.5,
                  "TRANSFER_MODEL": "efficientnet_lite0", "TRANSFER_EPOCHS": 2, "TRANSFER_OPTIMIZER": "adamw",
                  "GRID_SIZE": 16}
    plain = config_from_parameters(parameters, checkpoint_dir="runs")
    assert (plain.model, plain.epochs, plain.width, plain.seed, plain.dataset) == ("resnet9", 3, 16, 7, "fairface")
    transfer = config_from_parameters(parameters, "TRANSFER_")
    assert (transfer.model, transfer.epochs, transfer.optimizer, transfer.width) == ("efficientnet_lite0", 2, "adamw", 0)
    assert transfer.seed == 7 and transfer.grad_clip == 0.5 and transfer.checkpoint_dir == ""  # shared, not prefixed
    with pytest.raises(KeyError, match="BASELINE_MODEL"):
        config_from_parameters(parameters, "BASELINE_")


def test_random_initialisation_never_reuses_the_pretrained_runs_folder(toy_data, tmp_path, single_thread):
    """``--pretrained none`` on a model registered with ImageNet weights trains its own run from random weights;
    the bug this guards: the resolved "" was resolved again into the registered weights' run folder, so the
    random-initialisation run resumed the finished pretrained run and relabelled its index entry."""
    common = ["--model", "efficientnet_lite0", "--profile", "smoke", "--data-dir", str(toy_data), "--dataset", "folder",
              "--epochs", "1", "--image-size", "16", "--train-limit", "16", "--batch-size", "8",
              "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(common) == 0 and main([*common, "--pretrained", "none"]) == 0
    runs = read_index(tmp_path / "ckpt")
    assert len(runs) == 2 and len({run["run_id"] for run in runs}) == 2
    assert sorted(bool(run["pretrained_source"]) for run in runs) == [False, True]
