"""Knowledge distillation: cached teacher probabilities, soft targets through the loader into every loss."""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as functional

from nbhelpers.data.cache import build_cache
from nbhelpers.data.loaders import CachedBatchLoader
from nbhelpers.data.manifest import labels_of, manifest_path, read_manifest
from nbhelpers.models.bcos_efficientnet_lite import one_hot_binary_cross_entropy
from nbhelpers.models.bcos_resnet import BcosResNet
from nbhelpers.models.inference import flip_averaged_probabilities
from nbhelpers.training.config import TrainConfig, run_directory
from nbhelpers.training.distillation import load_teacher, soft_targets, teacher_probabilities
from nbhelpers.training.run import run_training
from nbhelpers.training.runs import find_run, load_run
from tests.conftest import tiny_checkpoint_file
from tests.training_helpers import TinyNet, separable_data

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: threads only add contention


@pytest.fixture
def toy_frame(toy_data):
    return read_manifest(manifest_path("folder", toy_data))


def teacher_file(path, seed):
    torch.manual_seed(seed)
    return tiny_checkpoint_file(path)


def test_targets_contradicting_the_labels_are_learned():
    torch.manual_seed(0)
    images, labels = separable_data(256, seed=0).tensors
    targets = functional.one_hot(1 - labels, 2).float()  # a teacher that always says the other class
    model = TinyNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(100):
        batch = slice(step % 8 * 32, step % 8 * 32 + 32)
        loss = model.training_step((images[batch], targets[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert (model(images).argmax(1) == labels).float().mean() < 0.1  # the teacher's answer, not the label


def test_losses_take_soft_targets_as_they_are():
    logits, labels = torch.randn(6, 2), torch.tensor([0, 1, 1, 0, 1, 0])
    soft = torch.rand(6, 1).expand(6, 2) * torch.tensor([1.0, -1.0]) + torch.tensor([0.0, 1.0])
    expected = functional.binary_cross_entropy_with_logits(logits, soft)
    assert torch.allclose(one_hot_binary_cross_entropy(logits, soft), expected)
    assert torch.allclose(BcosResNet.loss(None, logits, soft), expected)
    one_hot = functional.binary_cross_entropy_with_logits(logits, functional.one_hot(labels, 2).float())
    assert torch.allclose(one_hot_binary_cross_entropy(logits, labels), one_hot)
    assert torch.allclose(BcosResNet.loss(None, logits, labels), one_hot)
    model = TinyNet()
    model.label_smoothing = 0.2  # smoothing mixes the soft targets with the uniform distribution
    assert torch.allclose(model.loss(logits, soft), functional.cross_entropy(logits, 0.8 * soft + 0.1))
    assert torch.allclose(model.loss(logits, labels), functional.cross_entropy(logits, labels, label_smoothing=0.2))


def test_teacher_probabilities_are_computed_once_with_the_teachers_transform(toy_frame, tmp_path):
    cache = build_cache(toy_frame, "folder", 32, tmp_path / "cache")
    teacher = load_run(teacher_file(tmp_path / "teacher.pt", seed=1), "cpu")
    probabilities = teacher_probabilities(teacher, cache, batch_size=16)
    assert probabilities.shape == (60, 2) and probabilities.dtype == np.float32
    expected = flip_averaged_probabilities(teacher.model, teacher.preprocess(np.array(cache.images))).numpy()
    assert np.allclose(probabilities, expected, atol=1e-5)
    [stored] = (tmp_path / "cache").glob("folder_32.teacher-*.npy")
    stamp = os.stat(stored).st_mtime_ns
    assert np.array_equal(teacher_probabilities(teacher, cache, batch_size=16), probabilities)
    assert os.stat(stored).st_mtime_ns == stamp  # reused, not recomputed
    smaller = build_cache(toy_frame.iloc[:40].reset_index(drop=True), "folder", 32, tmp_path / "cache")
    assert np.allclose(teacher_probabilities(teacher, smaller, batch_size=16), probabilities[:40], atol=1e-6)
    assert os.stat(stored).st_mtime_ns != stamp  # a new cache fingerprint: recomputed into the same file
    retrained = load_run(teacher_file(tmp_path / "teacher.pt", seed=2), "cpu")  # same path, new weights
    changed = teacher_probabilities(retrained, smaller, batch_size=16)
    assert len(list((tmp_path / "cache").glob("folder_32.teacher-*.npy"))) == 2  # keyed by the new checkpoint hash
    assert not np.allclose(changed, probabilities[:40])


def test_a_teacher_of_another_size_reads_its_own_cache_and_bad_rows_stay_nan(toy_frame, tmp_path):
    os.remove(toy_frame["path"][5])
    with pytest.warns(UserWarning, match="row 5 left out"):
        cache = build_cache(toy_frame, "folder", 16, tmp_path / "cache")
        teacher = load_run(teacher_file(tmp_path / "teacher.pt", seed=1), "cpu")  # a 32 px model
        probabilities = teacher_probabilities(teacher, cache, batch_size=16, flip_tta=False)
    own = build_cache(toy_frame, "folder", 32, tmp_path / "cache")
    assert own.path.is_file() and np.isnan(probabilities[5]).all()
    assert np.isfinite(np.delete(probabilities, 5, axis=0)).all()
    expected = flip_averaged_probabilities(teacher.model, teacher.preprocess(np.array(own.images[[0, 7]])), False).numpy()
    assert np.allclose(probabilities[[0, 7]], expected, atol=1e-5)
    targets = soft_targets(cache, probabilities, 0.25)
    one_hot = np.eye(2)[labels_of(cache)]
    assert np.allclose(targets[7], 0.75 * one_hot[7] + 0.25 * probabilities[7]) and np.isnan(targets[5]).all()
    loader = CachedBatchLoader(cache, "train", 8, shuffle=True, targets=targets)
    rows = [batch[1] for batch in loader]
    assert all(batch.dtype == torch.float32 and batch.shape[1] == 2 for batch in rows)
    assert torch.isfinite(torch.cat(rows)).all() and len(torch.cat(rows)) == len(cache.split_indices("train"))


def test_the_loader_without_targets_is_unchanged_and_with_them_yields_target_rows(toy_frame, tmp_path):
    cache = build_cache(toy_frame, "folder", 16, tmp_path / "cache")
    targets = np.random.default_rng(0).random((60, 2)).astype(np.float32)
    plain = list(CachedBatchLoader(cache, "train", 8, shuffle=True, seed=3))
    soft = list(CachedBatchLoader(cache, "train", 8, shuffle=True, seed=3, targets=targets))
    for (images, labels), (soft_images, soft_labels) in zip(plain, soft, strict=True):
        assert labels.dtype == torch.int64 and soft_labels.dtype == torch.float32 and torch.equal(images, soft_images)
    order = np.sort(np.random.default_rng([3, 0]).permutation(cache.split_indices("train"))[:8])
    assert torch.equal(plain[0][1], torch.from_numpy(labels_of(cache, order)))
    assert torch.equal(soft[0][1], torch.from_numpy(targets[order]))
    with pytest.raises(ValueError, match=r"one row of class probabilities per cache row.*\(59, 2\)"):
        CachedBatchLoader(cache, "train", targets=targets[:59])


def test_run_directory_names_without_a_teacher_are_unchanged():
    settings = {"model": "simple_cnn", "pipeline": "pad_crop_flip", "image_size": 16, "pretrained": "none",
                "epochs": 2, "checkpoint_dir": "c"}
    assert str(run_directory(TrainConfig(**settings))) == "c/simple_cnn-23503a734f"  # the name before distillation
    assert str(run_directory(TrainConfig(**settings, balance="race"))) == "c/simple_cnn-92e077172d"
    assert run_directory(TrainConfig(**settings, distillation=0.9)) == run_directory(TrainConfig(**settings))
    taught = run_directory(TrainConfig(**settings, teacher="resnet9"))
    assert taught != run_directory(TrainConfig(**settings))
    assert taught != run_directory(TrainConfig(**settings, teacher="resnet9", distillation=0.9))


def test_a_missing_teacher_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"runs.json: no 'resnet9' run recorded.*train it first"):
        load_teacher("resnet9", tmp_path / "ckpt")
    with pytest.raises(ValueError, match="set --checkpoint-dir or pass the teacher's checkpoint file"):
        load_teacher("resnet9", "")
    with pytest.raises(ValueError, match=r"'gone.pt' is neither a checkpoint file nor a registered model"):
        load_teacher("gone.pt", tmp_path)


def test_run_training_distils_from_a_teacher_checkpoint(toy_data, tmp_path):
    teacher = teacher_file(tmp_path / "teacher.pt", seed=1)
    config = TrainConfig(model="simple_cnn", dataset="folder", data_dir=str(toy_data), image_size=16, epochs=1,
                         batch_size=8, train_limit=16, teacher=str(teacher), distillation=0.5,
                         checkpoint_dir=str(tmp_path / "ckpt"), device="cpu")
    result = run_training(config, progress=False)
    assert result.summary()["teacher"] == str(teacher)
    assert find_run(tmp_path / "ckpt", "simple_cnn")["teacher"] == str(teacher)  # recorded in the run index
    assert len(list((toy_data / "cache").glob("folder_16.teacher-*.npy"))) == 1  # beside the student's cache
    assert (toy_data / "cache" / "folder_32.npy").is_file()  # the teacher's own input size
