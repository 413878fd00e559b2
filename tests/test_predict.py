"""Prediction on arbitrary photos: bad files become error records, faces are found, the CLI's JSON and exit codes."""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbhelpers.models import create_model
from nbhelpers.predict.faces import FaceDetector, centre_crop
from nbhelpers.predict.cli import main
from nbhelpers.predict.predictor import Predictor, expand_inputs
from nbhelpers.training.checkpoint import CheckpointError, save_checkpoint
from tests.conftest import ROOT, face_like, save


def smooth_photo(width: int = 120, height: int = 90) -> Image.Image:
    """A smooth colour gradient: no face for any detector."""
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    return Image.fromarray(np.broadcast_to(np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2), (height, width, 3))
                           .astype(np.uint8))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = create_model("simple_cnn")
    metadata = {"model": "simple_cnn", "model_kwargs": model.model_kwargs, "classes": ["female", "male"],
                "input_size": 32, "pipeline": "finetune", "mean": [0.5] * 3, "std": [0.25] * 3}
    return save_checkpoint(tmp_path_factory.mktemp("run") / "tiny.pt", {"model_state": model.state_dict(), "metadata": metadata})


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def utkface_faces(utkface_archive) -> list[Image.Image]:
    """The first five faces of the real archive (read in memory)."""
    faces = []
    with tarfile.open(utkface_archive, "r:gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".jpg") and len(faces) < 5:
                faces.append(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB"))
            if len(faces) == 5:
                return faces
    return faces


@pytest.fixture(scope="module")
def utkface_face(utkface_faces) -> Image.Image:
    return utkface_faces[0]


def bad_and_odd_files(tmp_path, make_image) -> dict[str, object]:
    """Name -> path of every awkward input; the first five cannot be used."""
    (tmp_path / "empty.jpg").write_bytes(b"")
    good = make_image("good.jpg", 1, size=64).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.jpg").write_text("not an image at all\n")
    rgba = face_like(5, 64).convert("RGBA")
    rgba.putalpha(128)
    sixteen = Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16))
    return {"empty": tmp_path / "empty.jpg", "truncated": tmp_path / "truncated.jpg", "text": tmp_path / "text.jpg",
            "tiny": save(face_like(2, 10), tmp_path / "tiny.png"),
            "bomb": save(Image.new("1", (20000, 20000)), tmp_path / "bomb.png"),
            "gray": save(face_like(3, 64).convert("L"), tmp_path / "gray.jpg"),
            "rgba": save(rgba, tmp_path / "rgba.png"), "cmyk": save(face_like(4, 64).convert("CMYK"), tmp_path / "cmyk.jpg"),
            "sixteen": save(sixteen, tmp_path / "sixteen.png"), "noface": save(smooth_photo(), tmp_path / "noface.png")}


def test_bad_inputs_give_error_records_and_the_rest_goes_on(predictor, tmp_path, make_image):
    files = bad_and_odd_files(tmp_path, make_image)
    with pytest.warns(UserWarning, match="no face found"):
        records = list(predictor.predict_paths(list(files.values()), batch_size=2, progress=False))
    assert [record["path"] for record in records] == [str(path) for path in files.values()]
    for (name, path), record in zip(files.items(), records):
        if name in ("empty", "truncated", "text", "tiny", "bomb"):
            assert set(record) == {"path", "error"} and str(path) in record["error"], name
        else:
            assert "error" not in record, (name, record)
            (face,) = record["faces"]
            assert face["label"] in ("female", "male") and sum(face["probabilities"].values()) == pytest.approx(1.0)
    assert "too small" in records[3]["error"] and "decompression bomb" in records[4]["error"]
    no_face = records[-1]
    assert no_face["face_detected"] is False and no_face["faces"][0]["box"] == [15, 0, 105, 90]


def test_real_face_in_a_wider_canvas_is_found(predictor, utkface_face, tmp_path):
    canvas = Image.new("RGB", (600, 400), (90, 120, 90))
    canvas.paste(utkface_face, (300, 120))
    (record,) = predictor.predict_paths([save(canvas, tmp_path / "scene.jpg", quality=95)], progress=False,
                                        explain="gradcam")
    assert record["face_detected"] is True and record["faces"][0]["detector"] == "ssd"
    left, top, right, bottom = record["faces"][0]["box"]
    assert 290 <= left < right <= 510 and 110 <= top < bottom <= 330 and right - left > 80
    assert record["faces"][0]["attribution"].shape == (32, 32)


def test_chips_of_utkface_crops_match_the_crops(utkface_faces):
    detector, correlations = FaceDetector(), []
    for image in utkface_faces:
        canvas = np.full((400, 400, 3), 128, dtype=np.uint8)
        canvas[100:300, 100:300] = np.asarray(image)
        (face,) = detector.detect(canvas)
        assert face.chip.shape == (200, 200, 3) and face.chip.dtype == np.uint8
        original = np.asarray(image, dtype=np.float64).mean(axis=2).ravel()
        correlations.append(np.corrcoef(face.chip.mean(axis=2).ravel(), original)[0, 1])
    assert np.median(correlations) > 0.8  # 0.93 here with the calibrated padding 0.18


def test_centre_crop_and_expand_inputs(tmp_path, make_image):
    crop = centre_crop(np.zeros((50, 80, 3), dtype=np.uint8), size=20)
    assert crop.box == (15, 0, 65, 50) and crop.chip.shape == (20, 20, 3) and crop.detector == "centre"
    make_image("photos/b.jpg", 1), make_image("photos/a.png", 2, fmt="PNG")
    (tmp_path / "photos" / "notes.txt").write_text("x")
    assert [p.name for p in expand_inputs([tmp_path / "photos", "x.jpg"])] == ["a.png", "b.jpg", "x.jpg"]


def test_no_detect_uses_centre_crops_and_cli_exit_zero(checkpoint, tmp_path, make_image, capsys):
    make_image("photos/a.jpg", 1, size=48), make_image("photos/b.jpg", 2, size=48)
    records = list(Predictor(checkpoint, "cpu", detect=False).predict_paths([tmp_path / "photos" / "a.jpg"], progress=False))
    assert records[0]["face_detected"] is False and records[0]["faces"][0]["detector"] == "centre"
    assert main(["--checkpoint", str(checkpoint), "--no-detect", "--no-progress", str(tmp_path / "photos")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"].rsplit("/", 1)[1] for line in lines] == ["a.jpg", "b.jpg"]


def run_cli(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbhelpers.predict", *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_json_lines_and_exit_one_when_a_file_is_unreadable(checkpoint, tmp_path, make_image):
    (tmp_path / "broken.jpg").write_text("text")
    result = run_cli("--checkpoint", checkpoint, make_image("face.jpg", 3, size=64), tmp_path / "broken.jpg")
    assert result.returncode == 1, result.stderr
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert good["faces"][0]["label"] in ("female", "male") and "broken.jpg" in bad["error"]


def test_corrupt_checkpoint_exits_two_naming_the_file(tmp_path, make_image):
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    result = run_cli("--checkpoint", tmp_path / "bad.pt", make_image("face.jpg", 3))
    assert result.returncode == 2 and "bad.pt" in result.stderr and result.stdout == ""
    with pytest.raises(CheckpointError, match="bad.pt"):
        Predictor(tmp_path / "bad.pt", "cpu")


def test_upload_app_shows_faces_explanations_and_readable_errors(checkpoint, utkface_face):
    from nbhelpers.predict.upload_app import UploadApp

    app = UploadApp({"tiny": checkpoint}, ["gradcam"], device="cpu")
    canvas = Image.new("RGB", (600, 400), (90, 120, 90))
    canvas.paste(utkface_face, (200, 100))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=95)
    page = app.show([("holiday photo.jpg", buffer.getvalue()), ("notes.jpg", b"just some text, not an image")])
    assert page.count('class="face"') == 1 and page.count('class="explanation"') == 1
    assert 'class="label">female<' in page or 'class="label">male<' in page
    assert page.count('class="photo"') == 1  # the photo with its face box drawn, for the readable file only
    error = page[page.index('class="error"'):]
    assert "notes.jpg: not an image file" in error and "<script" not in page
    app.upload.value = ({"name": "again.jpg", "type": "image/jpeg", "size": len(buffer.getvalue()),
                         "content": memoryview(buffer.getvalue()),
                         "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert app.results.value.count('class="face"') == 1 and "again.jpg" in app.results.value
    assert app.status.value == "1 file(s) done"


def test_boxed_photo_draws_each_face_box(tmp_path):
    from nbhelpers.predict.upload_app import boxed_photo

    path = tmp_path / "photo.png"
    Image.new("RGB", (720, 480), (0, 0, 0)).save(path)
    picture = boxed_photo(path, [(100, 100, 300, 300)], side=360)
    assert picture.shape == (240, 360, 3)
    assert tuple(picture[50, 100]) == (255, 200, 0) and tuple(picture[100, 100]) == (0, 0, 0)  # edge drawn, inside not


def test_detector_options_default_to_the_ssd_search_and_accept_none():
    import argparse

    from nbhelpers.predict.faces import HOG_FALLBACK_THRESHOLD, add_detector_arguments, detector_from_arguments

    parser = argparse.ArgumentParser()
    add_detector_arguments(parser)
    detector = detector_from_arguments(parser.parse_args([]))
    assert detector.detector == "ssd" and detector.threshold == 0.0
    assert detector.fallback_threshold is HOG_FALLBACK_THRESHOLD is None
    assert detector_from_arguments(parser.parse_args(["--hog-fallback", "none"])).fallback_threshold is None
    assert detector_from_arguments(parser.parse_args(["--hog-fallback", "-0.5"])).fallback_threshold == -0.5
    hog = detector_from_arguments(parser.parse_args(["--detector", "hog"]))
    assert hog.detector == "hog" and hog.ssd is None
    for wrong in (["--hog-fallback", "lower"], ["--detector", "yunet"]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)


def test_fallback_search_finds_the_face_the_first_search_misses():
    photo = Path(__file__).resolve().parents[2] / "shared" / "data" / "fairface-dev" / "fairface_0075.jpg"
    if not photo.is_file():
        pytest.skip(f"real FairFace dev photo not found at {photo}")
    from nbhelpers.predict.faces import FaceDetector

    image = Image.open(photo)
    assert FaceDetector(detector="hog", fallback_threshold=None).detect(image) == []
    faces = FaceDetector(detector="hog", fallback_threshold=-1.0).detect(image)
    left, top, right, bottom = faces[0].box  # the labelled person, centred in the 448 px photo
    assert len(faces) == 1 and abs((left + right) / 2 - 224) < 40 and abs((top + bottom) / 2 - 224) < 40
    assert faces[0].search == "hog-permissive" and -1.0 <= faces[0].score < 0.0 and faces[0].detector == "dlib"
    (found,) = FaceDetector().detect(image)  # the SSD finds it at once
    assert found.search == "ssd" and found.score >= 0.7 and abs((found.box[0] + found.box[2]) / 2 - 224) < 40
    assert faces[0].chip.shape == (200, 200, 3)
