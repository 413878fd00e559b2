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

from nbhelpers.predict.faces import FaceDetector, centre_crop
from nbhelpers.predict.cli import main
from nbhelpers.predict.cli import expand_inputs
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import NO_FACE
from nbhelpers.training.checkpoint import CheckpointError
from tests.conftest import ROOT, face_like, save, smooth_photo, tiny_checkpoint_file


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint_file(tmp_path_factory.mktemp("run") / "tiny.pt")


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
    results = list(predictor.predict_paths(list(files.values()), batch_size=2, progress=False))
    assert [result.name for result in results] == [str(path) for path in files.values()]
    for (name, path), result in zip(files.items(), results):
        record = result.to_json()
        if name in ("empty", "truncated", "text", "tiny", "bomb"):
            assert set(record) == {"path", "error"} and str(path) in record["error"] and not result.ok, name
        else:
            assert result.ok and "error" not in record, (name, record)
            for face in record["faces"]:
                assert face["label"] in ("female", "male", "uncertain")
                assert sum(face["probabilities"].values()) == pytest.approx(1.0)
    assert "too small" in results[3].error and "decompression bomb" in results[4].error
    no_face = results[-1].to_json()
    assert no_face["face_detected"] is False and no_face["faces"] == [] and NO_FACE in no_face["notes"]


def test_real_face_in_a_wider_canvas_is_found(predictor, utkface_face, tmp_path):
    canvas = Image.new("RGB", (600, 400), (90, 120, 90))
    canvas.paste(utkface_face, (300, 120))
    (result,) = predictor.predict_paths([save(canvas, tmp_path / "scene.jpg", quality=95)], progress=False,
                                        explain="gradcam")
    assert result.face_detected is True and result.faces[0].detector == "ssd" and result.faces[0].search == "ssd"
    left, top, right, bottom = result.faces[0].box
    assert 290 <= left < right <= 510 and 110 <= top < bottom <= 330 and right - left > 80
    assert result.faces[0].attribution.shape == (32, 32) and result.faces[0].explanation_method == "gradcam"
    with open(tmp_path / "scene.jpg", "rb") as stream:  # the same photo as bytes in memory: the same answer
        (in_memory,) = predictor.predict_images([("scene", stream.read())])
    assert in_memory.faces[0].probabilities == pytest.approx(result.faces[0].probabilities)


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
    make_image("photos/b.jpg", 1), make_image("photos/a.png", 2, fmt="PNG"), make_image("photos/c.jfif", 3)
    (tmp_path / "photos" / "notes.txt").write_text("x")
    paths, skipped = expand_inputs([tmp_path / "photos", "x.jpg"])
    assert [p.name for p in paths] == ["a.png", "b.jpg", "c.jfif", "x.jpg"]
    assert [(p.name, "not an image" in reason) for p, reason in skipped] == [("notes.txt", True)]


def test_no_detect_uses_centre_crops_and_cli_exit_zero(checkpoint, tmp_path, make_image, capsys):
    make_image("photos/a.jpg", 1, size=48), make_image("photos/b.jpg", 2, size=48)
    (result,) = Predictor(checkpoint, "cpu", detect=False).predict_paths([tmp_path / "photos" / "a.jpg"], progress=False)
    assert result.faces[0].detector == "centre" and result.faces[0].box == (0, 0, 48, 48)
    assert main(["--checkpoint", str(checkpoint), "--no-detect", "--no-progress", str(tmp_path / "photos")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"].rsplit("/", 1)[1] for line in lines] == ["a.jpg", "b.jpg"]


def run_cli(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbhelpers.predict", *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_json_lines_and_exit_one_when_a_file_is_unreadable(checkpoint, tmp_path, make_image):
    (tmp_path / "broken.jpg").write_text("text")
    result = run_cli("--checkpoint", checkpoint, make_image("face.jpg", 3, size=64), tmp_path / "broken.jpg",
                     save(smooth_photo(), tmp_path / "scene.png"))
    assert result.returncode == 1, result.stderr
    good, bad, scene = (json.loads(line) for line in result.stdout.splitlines())
    assert good["path"].endswith("face.jpg") and "broken.jpg" in bad["error"]
    assert scene["faces"] == [] and scene["face_detected"] is False and NO_FACE in scene["notes"]  # no face, no gender
    crops = run_cli("--checkpoint", checkpoint, "--no-detect", make_image("crop.jpg", 3, size=64))
    assert json.loads(crops.stdout)["faces"][0]["label"] in ("female", "male", "uncertain"), crops.stderr


def test_corrupt_checkpoint_exits_two_naming_the_file(tmp_path, make_image):
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    result = run_cli("--checkpoint", tmp_path / "bad.pt", make_image("face.jpg", 3))
    assert result.returncode == 2 and "bad.pt" in result.stderr and result.stdout == ""
    with pytest.raises(CheckpointError, match="bad.pt"):
        Predictor(tmp_path / "bad.pt", "cpu")


def file_upload_value(name: str, content: bytes, size: int | None = None) -> tuple[dict, ...]:
    """What ipywidgets 8's FileUpload holds after a user chose one file."""
    return ({"name": name, "type": "image/jpeg", "size": len(content) if size is None else size,
             "content": memoryview(content), "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def test_upload_app_shows_faces_explanations_and_readable_errors(checkpoint, utkface_face):
    from nbhelpers.predict.upload_app import UploadApp

    app = UploadApp({"tiny": checkpoint}, ["gradcam", "xgradcam"], device="cpu")
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
    app.upload.value = file_upload_value("again.jpg", buffer.getvalue())
    assert app.results.value.count('class="face"') == 1 and "again.jpg" in app.results.value
    assert app.status.value == "1 file(s) done with tiny, explanation gradcam"
    assert app.upload.value == ()  # emptied after each choice: choosing the same file again is a change
    app.results.value = "old"
    app.upload.value = file_upload_value("again.jpg", buffer.getvalue())
    assert "again.jpg" in app.results.value and 'alt="gradcam explanation"' in app.results.value

    app.method.value = "xgradcam"  # a new method runs the last photos again
    assert 'alt="xgradcam explanation"' in app.results.value and 'alt="gradcam explanation"' not in app.results.value
    assert app.status.value == "1 file(s) done with tiny, explanation xgradcam"
    app.method.value = "none"
    assert "again.jpg" in app.results.value and 'class="explanation"' not in app.results.value


def test_upload_app_refuses_files_over_its_limit_without_reading_them(checkpoint):
    from nbhelpers.predict.upload_app import MAX_UPLOAD_MB, UploadApp, read_uploads

    small = io.BytesIO()
    smooth_photo().save(small, format="PNG")
    value = file_upload_value("small.png", small.getvalue()) + file_upload_value(
        "huge.jpg", b"\xff\xd8 not read", size=31_500_000)
    accepted, refused = read_uploads(value)
    assert accepted == [("small.png", small.getvalue())] and [result.name for result in refused] == ["huge.jpg"]
    assert refused[0].error == f"huge.jpg: 31.5 MB is over this page's limit of {MAX_UPLOAD_MB} MB per photo; not read"
    app = UploadApp({"tiny": checkpoint}, ["gradcam"], device="cpu")
    app.upload.value = value
    assert "huge.jpg: 31.5 MB is over this page&#x27;s limit of 30 MB" in app.results.value
    assert "small.png" in app.results.value and "no face found" in app.results.value
    assert app.status.value.endswith("1 file(s) done with tiny, explanation gradcam; 1 refused (over 30 MB)")


def test_boxed_photo_draws_each_face_box(tmp_path):
    from nbhelpers.predict.upload_app import boxed_photo

    picture = boxed_photo(Image.new("RGB", (720, 480), (0, 0, 0)), [(100, 100, 300, 300)], side=360)
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


def test_a_face_from_a_permissive_search_is_never_answered_with_a_label(checkpoint):
    from nbhelpers.predict.faces import DetectedFace

    predictor = Predictor(checkpoint, "cpu", uncertain_below=0)  # would answer every confident face
    chip = np.asarray(face_like(1, 200))
    for search, uncertain in (("hog-permissive", True), ("haar", True), ("ssd", False), ("hog", False)):
        predictor.detector.detect = lambda image, search=search: [DetectedFace((0, 0, 50, 50), chip, "dlib", search, 0.1)]
        (result,) = predictor.predict_images([("photo", smooth_photo())])
        face = result.to_json()["faces"][0]
        assert face["uncertain"] is uncertain and face["search"] == search and face["score"] == 0.1, search
        assert (face["label"] == "uncertain") is uncertain and face["predicted"] in ("female", "male")
