"""The suite's default run and the explanation images: the command line finds the default run without
--checkpoint, writes each face's explanation as a PNG (the B-cos colour explanation for B-cos models, a heat
overlay for CAMs), and the upload page shows exactly the same image."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbhelpers.explain.bcos import explain
from nbhelpers.predict.cli import main
from nbhelpers.predict.explanation_images import explanation_image
from nbhelpers.predict.faces import DetectedFace
from nbhelpers.predict.predictor import Predictor
from nbhelpers.training.runs import DEFAULT_MODELS, INDEX_NAME, default_run
from nbhelpers.utils.atomic import atomic_write_json
from tests.conftest import face_like, save, smooth_photo, tiny_checkpoint_file

CHIP = 200  # px: the aligned face (and centre crop) every front end draws the explanation on


def tiny_bcos_checkpoint_file(path: Path) -> Path:
    """A checkpoint of an untrained narrow B-cos ResNet-18 at 32 px: a B-cos run for tests of behaviour."""
    from nbhelpers.models import create_model
    from nbhelpers.training.checkpoint import save_checkpoint

    model = create_model("bcos_resnet18", width=8)
    spec = model.spec.replace(input_size=32)
    return save_checkpoint(path, {"model_state": model.state_dict(), "metadata": spec.to_dict()})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, single_thread) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    return {"plain": tiny_checkpoint_file(folder / "plain" / "model.pt"),
            "bcos": tiny_bcos_checkpoint_file(folder / "bcos" / "model.pt")}


def write_index(folder: Path, runs: list[tuple[str, str, str]], accuracies: dict[str, float] | None = None) -> Path:
    """A run index in ``folder`` with one entry per (run id, model, variant), oldest first; each run's
    checkpoint is ``<run id>/model.pt`` (relative, as ``record_run`` writes it); test accuracy 0.5 unless
    ``accuracies`` (run id -> accuracy) says otherwise."""
    entries = [{"run_id": run_id, "model": model, "variant": variant, "checkpoint": f"{run_id}/model.pt",
                "test_accuracy": (accuracies or {}).get(run_id, 0.5)} for run_id, model, variant in runs]
    return atomic_write_json(folder / INDEX_NAME, {"runs": entries})


def test_default_run_prefers_the_bcos_lite0_then_the_lite0_then_the_newest(tmp_path):
    assert DEFAULT_MODELS == ("bcos_efficientnet_lite0", "efficientnet_lite0")
    runs = [("lite-1", "efficientnet_lite0", ""), ("bcos-1", "bcos_efficientnet_lite0", ""),
            ("bcos-2", "bcos_efficientnet_lite0", ""), ("bcos-3", "bcos_efficientnet_lite0", "gender"),
            ("lite-2", "efficientnet_lite0", ""), ("resnet-1", "resnet18", "")]
    write_index(tmp_path, runs)
    chosen = default_run(tmp_path)  # the newest plain B-cos run, not the balanced one, not the newer Lite0
    assert chosen["run_id"] == "bcos-2" and chosen["checkpoint"] == str(tmp_path / "bcos-2" / "model.pt")
    write_index(tmp_path, runs, {"bcos-2": 0.931, "lite-2": 0.94})  # within 1 pp: still the B-cos run
    assert default_run(tmp_path)["run_id"] == "bcos-2"
    write_index(tmp_path, runs, {"bcos-2": 0.92, "lite-2": 0.94})  # 2 pp behind: the black box answers
    assert default_run(tmp_path)["run_id"] == "lite-2"
    assert default_run(tmp_path, tolerance=0.05)["run_id"] == "bcos-2"
    write_index(tmp_path, [run for run in runs if not run[1].startswith("bcos")])
    assert default_run(tmp_path)["run_id"] == "lite-2"
    write_index(tmp_path, [("resnet-1", "resnet18", ""), ("cnn-1", "simple_cnn", ""), ("cnn-2", "simple_cnn", "race")])
    assert default_run(tmp_path)["run_id"] == "cnn-1"  # the newest plain run of any model
    write_index(tmp_path, [("cnn-2", "simple_cnn", "race")])
    with pytest.raises(FileNotFoundError, match="runs.json: no trained run recorded.*make reports.*--checkpoint"):
        default_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m nbhelpers.train"):
        default_run(tmp_path / "never_trained")


def test_cli_without_checkpoint_uses_the_default_run(checkpoints, tmp_path, capsys):
    runs = tmp_path / "checkpoints"
    for run_id, kind in (("lite-1", "plain"), ("bcos-1", "bcos")):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "model.pt").write_bytes(checkpoints[kind].read_bytes())
    write_index(runs, [("bcos-1", "bcos_efficientnet_lite0", ""), ("lite-1", "efficientnet_lite0", "")])
    photo = save(face_like(1, 64), tmp_path / "face.jpg")
    assert main(["--checkpoint-dir", str(runs), "--no-detect", "--no-progress", str(photo)]) == 0
    output = capsys.readouterr()
    assert output.err.splitlines()[0] == f"using bcos_efficientnet_lite0 run bcos-1: {runs / 'bcos-1' / 'model.pt'}"
    assert json.loads(output.out)["faces"][0]["label"] in ("female", "male", "uncertain")


def test_cli_without_a_recorded_run_exits_two_with_one_error_line(tmp_path, capsys):
    photo = save(face_like(1, 64), tmp_path / "face.jpg")
    assert main(["--checkpoint-dir", str(tmp_path / "nothing"), "--no-progress", str(photo)]) == 2
    output = capsys.readouterr()
    (line,) = output.err.splitlines()
    assert line.startswith("error: ") and str(tmp_path / "nothing" / "runs.json") in line and "--checkpoint" in line
    assert output.out == ""


def explained_cli(checkpoint: Path, method: str, folder: Path, inputs: list[Path], capsys) -> list[dict]:
    assert main(["--checkpoint", str(checkpoint), "--no-detect", "--no-progress", "--explain", method,
                 "--explain-dir", str(folder), *map(str, inputs)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_cli_writes_the_bcos_colour_explanations_the_predictor_computes(checkpoints, tmp_path, capsys):
    inputs = [save(face_like(seed, 64), tmp_path / folder / name)
              for seed, folder, name in ((1, "a", "face.jpg"), (2, "b", "face.png"), (3, "a", "other.jpg"))]
    folder = tmp_path / "out" / "explanations"  # created by the command
    lines = explained_cli(checkpoints["bcos"], "bcos", folder, inputs, capsys)
    files = [line["faces"][0]["explanation"]["file"] for line in lines]
    assert [Path(file).name for file in files] == ["face_face0_bcos.png", "face-2_face0_bcos.png", "other_face0_bcos.png"]
    assert all(line["faces"][0]["explanation"]["method"] == "bcos" for line in lines)
    assert sorted(path.name for path in folder.iterdir()) == sorted(Path(file).name for file in files)  # no temp files
    predictor = Predictor(checkpoints["bcos"], "cpu", detect=False)
    results = list(predictor.predict_paths(inputs, explain="bcos", keep_chips=True, progress=False))
    for file, result in zip(files, results):
        face = result.faces[0]
        with Image.open(file) as written:
            assert written.format == "PNG" and written.size == (CHIP, CHIP) and written.mode == "RGB"
            assert np.array_equal(np.asarray(written), explanation_image(face))  # the exact image of the page
        answer = predictor.classes.index(face.predicted)  # the map explains the answer's class
        colour = explain(predictor.trained.model, predictor.trained.preprocess(face.chip[None].copy()), answer).colour[0].numpy()
        assert face.explanation_image.shape == (32, 32, 4)
        # colour_explanation of W(x), computed batched there and single here: float sums in another order (and
        # another thread count after other tests) move a value by up to ~4e-4, a quarter of an 8-bit level
        np.testing.assert_allclose(face.explanation_image, colour, atol=1e-3)
    assert not np.array_equal(np.asarray(Image.open(files[0])), np.asarray(Image.open(files[1])))


def test_cli_writes_gradcam_overlays_and_refuses_bcos_for_a_black_box_model(checkpoints, tmp_path, capsys):
    photo = save(face_like(4, 64), tmp_path / "portrait.jpg")
    (line,) = explained_cli(checkpoints["plain"], "gradcam", tmp_path / "cams", [photo], capsys)
    assert line["faces"][0]["explanation"] == {"method": "gradcam", "file": str(tmp_path / "cams" / "portrait_face0_gradcam.png")}
    with Image.open(line["faces"][0]["explanation"]["file"]) as written:
        assert written.size == (CHIP, CHIP) and written.mode == "RGB"
        assert not np.array_equal(np.asarray(written), np.asarray(face_like(4, 64).resize((CHIP, CHIP))))
    assert main(["--checkpoint", str(checkpoints["plain"]), "--no-progress", "--explain", "bcos",
                 "--explain-dir", str(tmp_path / "none"), str(photo)]) == 2
    (error,) = capsys.readouterr().err.splitlines()
    assert error.startswith("error: --explain bcos does not apply to simple_cnn") and "gradcam" in error
    assert not (tmp_path / "none").exists()


def test_cli_no_face_writes_no_file(checkpoints, tmp_path, capsys):
    scene = save(smooth_photo(), tmp_path / "scene.png")
    assert main(["--checkpoint", str(checkpoints["plain"]), "--no-progress", "--explain", "gradcam",
                 "--explain-dir", str(tmp_path / "cams"), str(scene)]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == [] and list((tmp_path / "cams").iterdir()) == []


@pytest.mark.parametrize("arguments, message", [
    (["--explain", "gradcam"], "--explain needs --explain-dir"),
    (["--explain-dir", "out"], "--explain-dir needs --explain"),
    (["--explain", "shap", "--explain-dir", "out"], "argument --explain: invalid choice: 'shap'"),
])
def test_explain_arguments_are_checked(arguments, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--checkpoint", "unused.pt", *arguments, "photo.jpg"])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def explanation_panels(page: str) -> list[tuple[np.ndarray, int, str]]:
    """(decoded image, width shown, alt text) of each explanation image of an upload page."""
    found = re.findall(r'class="explanation" src="data:image/png;base64,([^"]+)" width="(\d+)" alt="([^"]+)"', page)
    return [(np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))), int(width), alt) for data, width, alt in found]


def test_upload_app_starts_a_bcos_model_on_its_own_explanation_shown_large(checkpoints):
    from nbhelpers.predict.upload_app import FACE_SIDE, UploadApp

    app = UploadApp({"plain": checkpoints["plain"], "bcos": checkpoints["bcos"]}, ["gradcam", "xgradcam", "bcos"],
                    device="cpu", model="bcos")
    assert app.model.value == "bcos" and app.method.value == "bcos" and app.explain_method == "bcos"
    chip = np.asarray(face_like(5, CHIP))
    for name in ("plain", "bcos"):  # a face wherever the photo is searched (the drawn test face is no real face)
        app.predictor(name).detector.detect = lambda image: [DetectedFace((10, 10, 90, 90), chip, "ssd", "ssd", 0.9)]
    runs = []
    show = app.show
    app.show = lambda *arguments: runs.append(app.method.value) or show(*arguments)
    photo = io.BytesIO()
    smooth_photo().save(photo, format="PNG")
    page = show([("photo.png", photo.getvalue())])
    ((image, width, alt),) = explanation_panels(page)
    assert alt == "bcos explanation" and width > FACE_SIDE and image.shape == (CHIP, CHIP, 3)
    (result,) = app.predictor("bcos").predict_images([("photo.png", photo.getvalue())], explain="bcos", keep_chips=True)
    assert np.array_equal(image, explanation_image(result.faces[0]))  # what the command line writes
    app.last_uploads = [("photo.png", photo.getvalue())]
    app.model.value = "plain"  # bcos does not apply to a black-box model: its default method, run once
    assert app.method.value == "gradcam" and runs == ["gradcam"]
    ((image, width, alt),) = explanation_panels(app.results.value)
    assert alt == "gradcam explanation" and width == FACE_SIDE
    app.method.value = "xgradcam"
    app.model.value = "bcos"
    assert app.method.value == "bcos" and runs == ["gradcam", "xgradcam", "bcos"]
    app.method.value = "gradcam"  # Grad-CAM stays selectable for the B-cos model
    assert explanation_panels(app.results.value)[0][2] == "gradcam explanation" and app.status.value.endswith("gradcam")
    with pytest.raises(ValueError, match="'resnet18' has no trained run here"):
        UploadApp({"plain": checkpoints["plain"]}, ["gradcam"], device="cpu", model="resnet18")


def test_peer_ensemble_averages_a_black_box_with_the_peer_and_leaves_bcos_alone(checkpoints):
    from nbhelpers.models.peer import PeerGenderClassifier

    chips = np.random.default_rng(3).integers(0, 256, (3, CHIP, CHIP, 3), dtype=np.uint8)
    alone = Predictor(checkpoints["plain"], "cpu", detect=False, peer_ensemble="off")
    ensemble = Predictor(checkpoints["plain"], "cpu", detect=False)  # auto: on for a black box
    assert alone.peer is None and ensemble.peer is not None and "dlib peer" in ensemble.answer_source
    own = alone.classify(chips)[0]
    expected = (own + PeerGenderClassifier().predict_proba(chips)) / 2
    np.testing.assert_allclose(ensemble.classify(chips)[0], expected, atol=1e-6)
    assert not np.allclose(own, expected, atol=1e-3)  # the peer moved the answer
    (result,) = ensemble.predict_images([("face.png", chips[0])], explain="gradcam")
    face = result.faces[0]
    assert face.model_probabilities == pytest.approx(dict(zip(alone.classes, own[0])), abs=1e-6)
    assert face.probabilities == pytest.approx(dict(zip(alone.classes, expected[0])), abs=1e-6)
    assert face.to_json()["model_probabilities"] == pytest.approx(face.model_probabilities)
    from nbhelpers.explain.explainers import create_explainer

    with create_explainer("gradcam", ensemble.trained.model) as explainer:  # evidence for the answer's class
        expected_map = explainer(ensemble.trained.preprocess(chips[:1]), ensemble.classes.index(face.predicted)).maps
    np.testing.assert_allclose(face.attribution, expected_map[0].numpy(), atol=1e-5)
    (plain,) = alone.predict_images([("face.png", chips[0])])
    assert plain.faces[0].model_probabilities is None and "model_probabilities" not in plain.faces[0].to_json()
    bcos = Predictor(checkpoints["bcos"], "cpu", detect=False)  # auto: a B-cos model answers alone
    assert bcos.peer is None and bcos.answer_source == bcos.spec.model
    assert Predictor(checkpoints["bcos"], "cpu", detect=False, peer_ensemble="on").peer is not None
    with pytest.raises(ValueError, match="peer_ensemble must be one of"):
        Predictor(checkpoints["plain"], "cpu", peer_ensemble="yes")


def test_peer_ensemble_refuses_a_model_with_other_classes(tmp_path):
    checkpoint = tiny_checkpoint_file(tmp_path / "model.pt", classes=("cat", "dog"))
    with pytest.raises(ValueError, match="needs the classes"):
        Predictor(checkpoint, "cpu", detect=False, peer_ensemble="on")
    assert Predictor(checkpoint, "cpu", detect=False).peer is None  # auto: off for other classes
