"""What real users send (``../shared/bad-inputs``): every file gives the outcome its README asks, through the
command line and the upload widget's code path; the rest of a run goes on and nothing already computed is lost."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import NO_FACE
from nbhelpers.predict.upload_app import predict_uploads
from tests.conftest import ROOT, tiny_checkpoint_file

BAD_INPUTS = Path(os.environ.get("BAD_INPUTS_PATH", ROOT.parent / "shared" / "bad-inputs"))
pytestmark = pytest.mark.skipif(not (BAD_INPUTS / "README.md").is_file(),
                                reason=f"bad-input files not found at {BAD_INPUTS} (set BAD_INPUTS_PATH)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint_file(tmp_path_factory.mktemp("run") / "tiny.pt")


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor(checkpoint, "cpu")


def run_cli(checkpoint, *inputs) -> tuple[int, list[dict], str]:
    out = subprocess.run([sys.executable, "-m", "nbhelpers.predict", "--checkpoint", str(checkpoint), "--no-progress",
                          *map(str, inputs)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return out.returncode, [json.loads(line) for line in out.stdout.splitlines()], out.stderr


def test_the_cli_reads_every_bad_input_and_loses_nothing(checkpoint, tmp_path):
    broken = tmp_path / "cut_short.jpg"
    broken.write_bytes((BAD_INPUTS / "jpeg_without_end_marker.jpg").read_bytes()[:3000])  # cut mid-image: an error
    files = [BAD_INPUTS / "phone_exif_xresolution_as_text.jpg", broken, BAD_INPUTS / "gray_16bit_12bit_range.png",
             BAD_INPUTS / "jpeg_without_end_marker.jpg", BAD_INPUTS / "blank_no_face.png", BAD_INPUTS / "folder"]
    code, lines, stderr = run_cli(checkpoint, *files)
    assert code == 1, stderr  # one file cut short; every other result is still printed
    by_name = {Path(line["path"]).name: line for line in lines}
    assert set(by_name) == {"phone_exif_xresolution_as_text.jpg", "cut_short.jpg", "gray_16bit_12bit_range.png",
                            "jpeg_without_end_marker.jpg", "blank_no_face.png", "a_camera.JPG",
                            "b_saved_by_chrome.jfif", "c_android.avif", "e_old_camera.jpe"}
    assert "cut_short.jpg" in by_name["cut_short.jpg"]["error"]
    phone = by_name["phone_exif_xresolution_as_text.jpg"]
    assert phone["image_size"] == [360, 448] and phone["face_detected"]  # upright (EXIF orientation 6), a face
    assert any("malformed EXIF ignored" in note for note in phone["notes"])
    assert any("end-of-image marker" in note for note in by_name["jpeg_without_end_marker.jpg"]["notes"])
    blank = by_name["blank_no_face.png"]
    assert blank["faces"] == [] and NO_FACE in blank["notes"]  # no face, no gender
    for name in ("a_camera.JPG", "b_saved_by_chrome.jfif", "c_android.avif", "e_old_camera.jpe"):
        assert by_name[name]["face_detected"], name  # read by content, whatever the suffix
    assert "skipped" not in stderr


def test_twelve_bit_gray_gets_the_answer_of_its_eight_bit_copy(predictor):
    sixteen = np.asarray(Image.open(BAD_INPUTS / "gray_16bit_12bit_range.png"), dtype=np.float64)
    eight = Image.fromarray(np.clip(np.rint(sixteen * 255 / 4095), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    eight.save(buffer, format="PNG")
    (original,), (copy,) = (list(predictor.predict_images([(name, data)])) for name, data in
                            [("16-bit", (BAD_INPUTS / "gray_16bit_12bit_range.png").read_bytes()),
                             ("8-bit", buffer.getvalue())])
    assert original.faces and copy.faces and original.faces[0].box == copy.faces[0].box
    assert original.faces[0].probabilities == pytest.approx(copy.faces[0].probabilities, abs=0.02)


def test_the_widget_path_shows_every_good_photo_beside_the_bad_ones(predictor):
    uploads = [(path.name, path.read_bytes()) for path in sorted(BAD_INPUTS.glob("*.*")) if path.suffix != ".md"]
    uploads.insert(1, ("notes.jpg", b"not an image"))
    results = predict_uploads(predictor, uploads)
    assert [result.name for result in results] == [name for name, _ in uploads]
    assert [result.ok for result in results] == [name != "notes.jpg" for name, _ in uploads]
    assert "notes.jpg: not an image file" in results[1].error
    photos = {result.name: result for result in results}
    assert photos["phone_exif_xresolution_as_text.jpg"].faces and photos["blank_no_face.png"].faces == ()
    assert all(face.chip is not None for result in results for face in result.faces)


def test_a_folder_names_what_it_skips(checkpoint, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(BAD_INPUTS / "folder", folder)
    (folder / "readme.txt").write_text("not a photo")
    code, lines, stderr = run_cli(checkpoint, folder)
    assert code == 0 and len(lines) == 4
    assert "readme.txt" in stderr and "not an image file" in stderr
