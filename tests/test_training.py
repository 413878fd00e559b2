import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from nbhelpers.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from nbhelpers.training.evaluation import classification_metrics
from nbhelpers.models.base import ImageClassificationBase
from nbhelpers.training.fit import EarlyStopping, evaluate, fit_one_cycle, parameter_groups
from tests.conftest import ROOT
from tests.training_helpers import EpochLoader, TinyNet, loaders

DEVICE = torch.device(__import__("os").environ.get("NBHELPERS_DEVICE", "cpu"))


def test_fit_one_cycle_learns_and_logs_every_batch():
    torch.manual_seed(0)
    train, val = loaders()
    history = fit_one_cycle(4, 0.01, TinyNet(), train, val, weight_decay=1e-4, grad_clip=0.5, device=DEVICE,
                            progress=False, verbose=False)
    assert len(history) == 4 and all(len(result["lrs"]) == len(train) for result in history)
    assert history[-1]["val_acc"] > 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]
    lrs = np.concatenate([result["lrs"] for result in history])
    peak = int(np.argmax(lrs))
    assert lrs[peak] == pytest.approx(0.01, rel=0.05) and 0.15 < peak / len(lrs) < 0.45
    assert lrs[-1] < 0.01 * 1e-3 and lrs[0] < 0.01 / 20


def test_head_learning_rate_scale_gives_the_head_its_own_one_cycle_peak():
    torch.manual_seed(0)
    model = TinyNet()
    groups = parameter_groups(model, 0.01, ("layers.4.", 10.0))
    assert [group["lr"] for group in groups] == [0.01, pytest.approx(0.1)]
    assert {id(parameter) for parameter in groups[1]["params"]} == {id(parameter) for parameter in model.layers[4].parameters()}
    assert len(parameter_groups(model, 0.01, ("layers.4.", 1.0))) == 1
    with pytest.raises(ValueError, match="head prefix 'fc.'"):
        parameter_groups(model, 0.01, ("fc.", 10.0))
    train, val = loaders()
    before = model.layers[1].weight.detach().clone(), model.layers[4].weight.detach().clone()
    fit_one_cycle(1, 0.001, model, train, val, device=DEVICE, progress=False, verbose=False, head=("layers.4.", 100.0))
    body_change = (model.layers[1].weight - before[0]).abs().max()
    head_change = (model.layers[4].weight - before[1]).abs().max()
    assert head_change > 10 * body_change  # Adam steps scale with the group's rate


def test_early_stopping_stops_and_restores_best_weights():
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    assert not stopper.step(0, {"val_loss": 1.0}, model)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(5)
    assert not stopper.step(1, {"val_loss": 0.995}, model)  # not better by min_delta
    assert stopper.step(2, {"val_loss": 1.2}, model)
    stopper.restore(model)
    assert torch.equal(model.weight, best) and stopper.best_epoch == 0
    accuracy = EarlyStopping(patience=1, monitor="val_acc")
    assert not accuracy.step(0, {"val_acc": 0.8}, model) and accuracy.step(1, {"val_acc": 0.7}, model)


def test_early_stopping_inside_fit(tmp_path):
    train, val = loaders()
    history = fit_one_cycle(30, 0.05, TinyNet(), train, val, early_stopping=EarlyStopping(patience=1, min_delta=1.0),
                            device=DEVICE, progress=False, verbose=False)
    assert len(history) == 2  # nothing can improve by 1.0 after the first epoch


def test_checkpoints_hold_what_prediction_and_resume_need(tmp_path):
    train, val = loaders()
    metadata = {"model": "simple_cnn", "model_kwargs": {"num_classes": 2}, "classes": ["female", "male"],
                "input_size": 4, "pipeline": "pad_crop_flip", "mean": [0.5] * 3, "std": [0.2] * 3}
    fit_one_cycle(2, 0.01, TinyNet(), train, val, checkpoint_dir=tmp_path, metadata=metadata, device=DEVICE,
                  progress=False, verbose=False)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and len(last["history"]) == 2 and last["metadata"] == metadata
    assert {"optimizer_state", "scheduler_state", "rng", "early_stopping"} <= set(last)
    assert (tmp_path / "best.pt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("content, message", [
    (b"", "empty checkpoint file"),
    (b"plain text, not a checkpoint", "corrupt, truncated or unsafe checkpoint"),
])
def test_bad_checkpoint_files(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"model.pt: {message}"):
        load_checkpoint(path)


def test_truncated_and_mismatched_checkpoints(tmp_path):
    from nbhelpers.models import create_model

    model = create_model("simple_cnn")
    statistics = {"mean": [0.5] * 3, "std": [0.2] * 3}
    path = save_checkpoint(tmp_path / "good.pt", {"model_state": model.state_dict(), "metadata": {
        "model": "simple_cnn", "model_kwargs": {"num_classes": 2}, **statistics}})
    loaded = model_from_checkpoint(path)
    assert loaded.spec.model == "simple_cnn" and loaded.spec.input_size == 40 and not loaded.training
    save_checkpoint(tmp_path / "no_statistics.pt", {"model_state": model.state_dict(),
                                                    "metadata": {"model": "simple_cnn"}})
    with pytest.raises(CheckpointError, match="no_statistics.pt: metadata lacks 'mean'/'std'"):
        model_from_checkpoint(tmp_path / "no_statistics.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="cut.pt: corrupt, truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    save_checkpoint(tmp_path / "wrong.pt", {"model_state": model.state_dict(),
                                            "metadata": {"model": "resnet9", "model_kwargs": {"num_classes": 2}, **statistics}})
    with pytest.raises(CheckpointError, match="wrong.pt: does not fit model 'resnet9'"):
        model_from_checkpoint(tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_unsafe_pickle_is_refused(tmp_path):
    import argparse

    torch.save({"model_state": {}, "metadata": {}, "object": argparse.Namespace(command="rm -rf /")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt: corrupt, truncated or unsafe"):
        load_checkpoint(tmp_path / "evil.pt")


def test_resume_refuses_another_models_run(tmp_path):
    train, val = loaders()
    fit_one_cycle(1, 0.01, TinyNet(), train, val, checkpoint_dir=tmp_path, metadata={"model": "a"}, progress=False, verbose=False)
    with pytest.raises(CheckpointError, match="holds a 'a' run, not 'b'"):
        fit_one_cycle(2, 0.01, TinyNet(), train, val, checkpoint_dir=tmp_path, metadata={"model": "b"}, progress=False,
                      verbose=False)



def test_resume_from_a_last_checkpoint_without_resume_state_names_what_is_missing(tmp_path):
    train, val = loaders()
    fit_one_cycle(1, 0.01, TinyNet(), train, val, checkpoint_dir=tmp_path, metadata={"model": "a"}, progress=False,
                  verbose=False)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    torch.save({key: value for key, value in payload.items() if key not in {"scheduler_state", "rng"}},
               tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"last.pt: cannot resume from it, it lacks scheduler_state, rng"):
        fit_one_cycle(2, 0.01, TinyNet(), train, val, checkpoint_dir=tmp_path, metadata={"model": "a"},
                      progress=False, verbose=False)


RUN = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {root!r})
    from tests.training_helpers import TinyNet, loaders, EpochLoader
    from nbhelpers.training.fit import fit_one_cycle
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train, val = loaders()
    train = EpochLoader(train, die_at=(2, 5) if sys.argv[2] == "die" else None)
    model = TinyNet()
    history = fit_one_cycle(4, 0.01, model, train, val, grad_clip=0.5, checkpoint_dir=sys.argv[1], metadata={{"model": "tiny"}},
                            device=torch.device("cpu"), progress=False, verbose=False)
    torch.save(model.state_dict(), sys.argv[1] + "/final.pt")
    print(len(history))
""")


def test_killed_run_resumes_from_last_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN.format(root=str(ROOT)))
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "die"], capture_output=True, text=True)
    assert killed.returncode == 17
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 1  # epochs 0 and 1 were saved
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "go"], capture_output=True, text=True, check=True)
    straight = subprocess.run([sys.executable, str(script), str(tmp_path / "b"), "go"], capture_output=True, text=True, check=True)
    assert resumed.stdout.strip() == straight.stdout.strip() == "4"
    first, second = torch.load(tmp_path / "a" / "final.pt"), torch.load(tmp_path / "b" / "final.pt")
    assert all(torch.allclose(first[key], second[key], atol=1e-6) for key in first)
    history = load_checkpoint(tmp_path / "a" / "last.pt")["history"]
    assert [result["epoch"] for result in history] == [0, 1, 2, 3]


class TinyConvNet(ImageClassificationBase):
    """Convolution, batch norm and dropout: 4-D weights that channels-last converts, RNG that resume restores.

    Dropout comes after ``Flatten`` as in the suite's models: on a 4-D channels-last activation it would
    draw its mask in memory order, a different (equally random) mask than the contiguous run's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                          torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                          torch.nn.Dropout(0.1), torch.nn.Linear(8 * 4 * 4, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class Interrupted(Exception):
    pass


class InterruptingLoader(EpochLoader):
    """Raise (instead of killing the process) at batch 5 of epoch 2."""

    def __iter__(self):
        for index, batch in enumerate(super().__iter__()):
            if (self.epoch, index) == (2, 5):
                raise Interrupted
            yield batch


def _conv_run(channels_last, epochs=4, checkpoint_dir=None, loader=EpochLoader):
    torch.manual_seed(0)
    train, val = loaders()
    model = TinyConvNet()
    history = fit_one_cycle(epochs, 0.01, model, loader(train), val, 1e-4, 0.5, checkpoint_dir=checkpoint_dir,
                            metadata={"model": "tiny_conv"}, device=torch.device("cpu"), progress=False, verbose=False,
                            channels_last=channels_last)
    return model, history


def _is_channels_last(tensor):
    return tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()


def test_channels_last_matches_contiguous_and_its_checkpoints_resume(tmp_path):
    converted, fast = _conv_run(True, checkpoint_dir=tmp_path / "straight")
    plain, slow = _conv_run(False)
    assert _is_channels_last(converted.layers[0].weight) and plain.layers[0].weight.is_contiguous()
    for a, b in zip(fast, slow):
        assert a["lrs"] == b["lrs"]
        for key in ("train_loss", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    assert all(torch.allclose(p, q, atol=1e-4) for p, q in zip(converted.parameters(), plain.parameters()))
    assert evaluate(converted, loaders()[1]) == pytest.approx(evaluate(plain, loaders()[1]), rel=1e-4, abs=1e-5)

    # checkpoints of a channels-last model load into a fresh contiguous model, with the same predictions
    fresh = TinyConvNet()
    fresh.load_state_dict(load_checkpoint(tmp_path / "straight" / "last.pt")["model_state"])
    assert fresh.layers[0].weight.is_contiguous()
    images = loaders()[1].dataset.tensors[0]
    assert torch.allclose(fresh.eval()(images), converted.eval()(images), atol=1e-5)

    # interrupted in epoch 2, resumed from last.pt (epoch 1): the same weights as the straight run
    with pytest.raises(Interrupted):
        _conv_run(True, checkpoint_dir=tmp_path / "resumed", loader=InterruptingLoader)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    resumed, history = _conv_run(True, checkpoint_dir=tmp_path / "resumed")
    assert [result["epoch"] for result in history] == [0, 1, 2, 3] and _is_channels_last(resumed.layers[0].weight)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(resumed.state_dict().values(), converted.state_dict().values()))
    assert [r["train_loss"] for r in history] == pytest.approx([r["train_loss"] for r in fast], abs=1e-6)


def test_classification_metrics_on_known_predictions():
    labels = np.array([0, 0, 0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9], [0.2, 0.8]])
    metrics = classification_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    assert metrics["per_class_accuracy"] == {"female": 0.75, "male": 1.0}
    assert metrics["balanced_accuracy"] == pytest.approx(0.875)
    assert metrics["confusion_matrix"] == [[3, 1], [0, 2]] and metrics["count"] == 6
    json.dumps(metrics)
