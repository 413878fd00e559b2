"""The seed ensemble: runs of one recipe trained with other seeds, found in the run index and averaged by the
prediction path for black-box models."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import tiny_checkpoint_file
from nbhelpers.models.peer import PeerGenderClassifier
from nbhelpers.predict.predictor import Predictor
from nbhelpers.training.runs import INDEX_NAME, seed_siblings

CHIP = 200  # the chip size, so a centre crop of a chip is the chip itself


def _index(checkpoint_dir, runs, make_checkpoint=tiny_checkpoint_file):
    """Checkpoint folders and a run index: ``runs`` are (folder, seed, augment, variant, make the file)."""
    entries = []
    for number, (folder, seed, augment, variant, make) in enumerate(runs):
        if make:
            torch.manual_seed(number)  # different weights per run
            make_checkpoint(checkpoint_dir / folder / "model.pt")
        entries.append({"run_id": folder, "model": "simple_cnn", "variant": variant,
                        "checkpoint": f"{folder}/model.pt",
                        "config": {"model": "simple_cnn", "seed": seed, "augment": augment, "epochs": 2,
                                   "data_dir": f"/data/{number}", "device": "cpu" if number % 2 else ""}})
    (checkpoint_dir / INDEX_NAME).write_text(json.dumps({"runs": entries}))
    return {folder: checkpoint_dir / folder / "model.pt" for folder, *_ in runs}


@pytest.fixture()
def runs(tmp_path):
    return _index(tmp_path, [("seed0", 0, "", "", True), ("seed1", 1, "", "", True),
                             ("seed2-missing", 2, "", "", False), ("context", 1, "context", "", True),
                             ("balanced", 3, "", "gender x age_band", True), ("seed1-again", 1, "", "", True)])


def test_seed_siblings_are_the_other_seeds_of_the_same_recipe(runs, tmp_path):
    # every run has its own data_dir and half another device: folders and devices do not change the recipe
    assert seed_siblings(runs["seed0"]) == [runs["seed1-again"].resolve()]  # the newest run of seed 1; seed 2 has no file
    assert seed_siblings(runs["seed1"]) == [runs["seed0"].resolve()]  # its own seed never counts twice
    assert seed_siblings(runs["context"]) == []  # another recipe: no other seed of it
    assert seed_siblings(runs["balanced"]) == []  # group-balanced variants are not plain runs
    loose = tiny_checkpoint_file(tmp_path / "elsewhere" / "deeper" / "model.pt")
    assert seed_siblings(loose) == []  # not recorded in any index


def test_predictor_averages_the_seeds_with_equal_weights_and_explains_the_named_run(runs):
    chips = np.random.default_rng(5).integers(0, 256, (3, CHIP, CHIP, 3), dtype=np.uint8)
    first = Predictor(runs["seed0"], "cpu", detect=False, peer_ensemble="off", seed_ensemble="off")
    second = Predictor(runs["seed1-again"], "cpu", detect=False, peer_ensemble="off", seed_ensemble="off")
    assert first.members == [] and first.answer_source == "simple_cnn"
    seeds = Predictor(runs["seed0"], "cpu", detect=False, peer_ensemble="off")  # seed_ensemble="auto"
    assert len(seeds.members) == 1 and seeds.answer_source == "simple_cnn x2 seeds"
    own, other = first.classify(chips)[0], second.classify(chips)[0]
    assert not np.allclose(own, other, atol=1e-3)  # the two seeds disagree, so the mean is a real test
    np.testing.assert_allclose(seeds.classify(chips)[0], (own + other) / 2, atol=1e-6)
    with_peer = Predictor(runs["seed0"], "cpu", detect=False)  # both ensembles: thirds
    assert with_peer.answer_source == "simple_cnn x2 seeds + dlib peer (mean)"
    expected = (own + other + PeerGenderClassifier().predict_proba(chips)) / 3
    np.testing.assert_allclose(with_peer.classify(chips)[0], expected, atol=1e-6)
    (result,) = seeds.predict_images([("face.png", chips[0])])
    assert result.faces[0].model_probabilities == pytest.approx(dict(zip(first.classes, own[0])), abs=1e-6)
    with pytest.raises(ValueError, match="seed_ensemble must be one of"):
        Predictor(runs["seed0"], "cpu", detect=False, seed_ensemble="on")


def test_a_sibling_with_another_input_size_is_refused_by_name(tmp_path):
    runs = _index(tmp_path, [("seed0", 0, "", "", True), ("seed1", 1, "", "", False)])
    tiny_checkpoint_file(runs["seed1"], input_size=40)
    with pytest.raises(ValueError, match="seed1.*seed sibling"):
        Predictor(runs["seed0"], "cpu", detect=False)


def test_a_bcos_model_answers_alone_even_with_seed_siblings(tmp_path):
    from tests.test_predict_explain import tiny_bcos_checkpoint_file

    runs = _index(tmp_path, [("seed0", 0, "", "", True), ("seed1", 1, "", "", True)], tiny_bcos_checkpoint_file)
    assert seed_siblings(runs["seed0"]) == [runs["seed1"].absolute()]
    predictor = Predictor(runs["seed0"], "cpu", detect=False)
    assert predictor.members == [] and predictor.seed_note == ""  # its answer stays what its explanation explains


def test_a_broken_index_or_sibling_is_an_error_naming_it_and_the_way_out(tmp_path, runs):
    import shutil

    from nbhelpers.training.checkpoint import CheckpointError

    runs["seed1-again"].write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="seed sibling of .*seed0.*seed1-again.*--seed-ensemble off"):
        Predictor(runs["seed0"], "cpu", detect=False)
    assert Predictor(runs["seed0"], "cpu", detect=False, seed_ensemble="off").members == []
    other = tmp_path / "other"
    shutil.copytree(runs["seed0"].parent, other / "run")
    for broken in ({"runs": [{"run_id": "run", "config": "oops", "checkpoint": "run/model.pt"}]},
                   {"runs": [{"run_id": "run", "config": {"seed": None}, "checkpoint": "run/model.pt"}]},
                   {"runs": ["not an entry"]},
                   {"runs": [{"run_id": "run", "config": {"model": "simple_cnn", "seed": 0, "no_such_setting": 1},
                              "checkpoint": "run/model.pt"}]}):
        (other / INDEX_NAME).write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=f"{INDEX_NAME}.*--seed-ensemble off"):
            Predictor(other / "run" / "model.pt", "cpu", detect=False)


def test_the_command_line_averages_the_seeds_unless_told_not_to(runs, capsys):
    from PIL import Image

    from nbhelpers.predict.cli import main

    photo = runs["seed0"].parent.parent / "face.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (CHIP, CHIP, 3), dtype=np.uint8)).save(photo)
    answers = {}
    for mode in ("auto", "off"):
        assert main(["--checkpoint", str(runs["seed0"]), "--no-detect", "--peer-ensemble", "off",
                     "--seed-ensemble", mode, str(photo)]) == 0
        captured = capsys.readouterr()
        answers[mode] = json.loads(captured.out.splitlines()[-1])["faces"][0]
        assert ("seed ensemble: also averaging" in captured.err and "seed1-again" in captured.err) == (mode == "auto")
    assert answers["off"]["probabilities"] != pytest.approx(answers["auto"]["probabilities"], abs=1e-4)
    assert answers["auto"]["model_probabilities"] == pytest.approx(answers["off"]["probabilities"], abs=1e-6)
