"""The dlib-models peer: the package's preprocessing, probabilities, and real accuracy on UTKFace faces."""

from __future__ import annotations

import numpy as np
import pytest

from nbhelpers.data.cache import build_cache
from nbhelpers.data.datasets import build_manifest
from nbhelpers.data.loaders import labels_of
from nbhelpers.models.peer import PeerGenderClassifier, peer_model_files
from nbhelpers.training.evaluation import classification_metrics
from nbhelpers.training.peer_comparison import compare_with_peer


@pytest.fixture(scope="module")
def peer() -> PeerGenderClassifier:
    return PeerGenderClassifier()


def test_model_files_and_labels():
    path, spec = peer_model_files()
    assert path.is_file() and path.suffix == ".onnx"
    assert [label.lower() for label in spec["labels"]] == ["female", "male"]


def test_prepare_follows_the_manifest(peer):
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images[1] = 200
    prepared = peer.prepare(images)
    assert prepared.shape == (2, 3, 32, 32) and prepared.dtype == np.float32
    np.testing.assert_allclose(prepared[1, :, 0, 0], (200 - peer.means) / 256, rtol=1e-6)
    assert peer.prepare(np.zeros((1, 64, 64, 3), dtype=np.uint8)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="uint8"):
        peer.prepare(np.zeros((1, 32, 32, 3), dtype=np.float32))


def test_probabilities_sum_to_one(peer):
    images = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    probabilities = peer.predict_proba(images)
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-4)
    assert peer.predict_proba(images[:0]).shape == (0, 2)


def test_peer_recognises_real_faces(peer, utkface_archive, tmp_path):
    frame, _, _ = build_manifest("utkface", utkface_archive, data_dir=tmp_path, limit=300)
    cache = build_cache(frame, "utkface", 64, tmp_path / "cache")
    rows = np.arange(len(frame))
    labels = labels_of(cache, rows)
    probabilities = peer.predict_proba(np.asarray(cache.images[rows]))
    table, paired = compare_with_peer(labels, probabilities, np.eye(2)[1 - labels])
    assert table.loc["ours", "accuracy"] > 0.85, "wrong channel order or normalisation would fall near chance"
    assert list(table.index) == ["ours", "dlib peer", "ours + dlib peer (mean)"]
    assert table.loc["ours + dlib peer (mean)", "accuracy"] == classification_metrics(labels, (probabilities + np.eye(2)[1 - labels]) / 2)["accuracy"]
    assert table.loc["dlib peer", "accuracy"] == 0.0 and paired["only ours right"] == int(table.loc["ours", "accuracy"] * len(rows) + 0.5)


def test_compare_run_with_peer_averages_seed_members_with_equal_votes():
    from types import SimpleNamespace

    from nbhelpers.training.peer_comparison import compare_run_with_peer, comparison_summary

    rng = np.random.default_rng(0)
    labels, rows = rng.integers(0, 2, 40), np.arange(40)
    images = np.zeros((40, 8, 8, 3), np.uint8)

    def run(run_id, probabilities, run_rows=rows):
        split = SimpleNamespace(rows=run_rows, labels=labels, probabilities=probabilities)
        return SimpleNamespace(predictions={"test": split}, cache=SimpleNamespace(images=images), name="tiny",
                               trained=SimpleNamespace(run_id=run_id))

    first, second, peer = (rng.dirichlet((1, 1), 40) for _ in range(3))
    fake_peer = SimpleNamespace(predict_proba=lambda faces: peer)
    table, paired = compare_run_with_peer(run("a", first), "test", fake_peer, members=[run("b", second)])
    assert list(table.index) == ["a", "b", "tiny x2 runs", "dlib peer (32 px)", "tiny x2 runs + dlib peer (32 px) (mean)"]
    assert table.loc["b", "accuracy"] == classification_metrics(labels, second)["accuracy"]
    assert table.loc["tiny x2 runs", "accuracy"] == classification_metrics(labels, (first + second) / 2)["accuracy"]
    thirds = classification_metrics(labels, (first + second + peer) / 3)["accuracy"]
    assert table.loc["tiny x2 runs + dlib peer (32 px) (mean)", "accuracy"] == pytest.approx(thirds)
    assert sum(paired.values()) == 40
    with pytest.raises(ValueError, match="b: evaluated on other test images"):
        compare_run_with_peer(run("a", first), "test", fake_peer, members=[run("b", second, rows[::-1])])
    probe = rng.dirichlet((1, 1), 40)
    with_probe, _ = compare_run_with_peer(run("a", first), "test", fake_peer, members=[run("b", second)], probe=probe)
    assert list(with_probe.index)[:5] == list(table.index)
    quarters = classification_metrics(labels, (first + second + peer + probe) / 4)["accuracy"]  # one vote each
    assert with_probe.loc["tiny x2 runs + dlib peer (32 px) + descriptor probe (mean)", "accuracy"] == pytest.approx(quarters)
    summary = comparison_summary(with_probe)
    assert summary["probe_ensemble"]["accuracy"] == pytest.approx(quarters)
    assert summary["peer_ensemble"]["accuracy"] == pytest.approx(thirds)
    assert summary["deep_ensemble"] == {"row": "tiny x2 runs", **table.loc["tiny x2 runs"].to_dict()}
    assert summary["descriptor_probe"]["accuracy"] == classification_metrics(labels, probe)["accuracy"]
    alone, _ = compare_run_with_peer(run("a", first), "test", fake_peer)
    roles = comparison_summary(alone)  # one run, no probe: the other roles are None, to replace earlier rows
    assert roles["deep_ensemble"] is roles["descriptor_probe"] is roles["probe_ensemble"] is None
    assert roles["peer_ensemble"]["row"] == "tiny + dlib peer (32 px) (mean)"
    with pytest.raises(ValueError, match="dlib peer"):
        comparison_summary(table.drop(index="dlib peer (32 px)"))
    with pytest.raises(ValueError, match="probe"):
        compare_run_with_peer(run("a", first), "test", fake_peer, probe=probe[:10])
