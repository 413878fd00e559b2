"""The deep ensemble: runs of one recipe trained with other seeds or the context swap, found in the run index and
averaged by the
prediction path for black-box models."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import tiny_checkpoint_file
from nbhelpers.models.peer import PeerGenderClassifier
from nbhelpers.predict.predictor import Predictor
from nbhelpers.training.runs import INDEX_NAME, ensemble_recipes, ensemble_siblings

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
                             ("balanced", 3, "", "gender x age_band", True), ("seed1-again", 1, "", "", True),
                             ("photo", 4, "photo", "", True)])


def test_ensemble_siblings_are_the_other_seeds_and_the_context_swap_runs_of_the_recipe(runs, tmp_path):
    # every run has its own data_dir and half another device: folders and devices do not change the recipe;
    # the newest run of plain seed 1 counts, seed 2 has no file; plain seeds first, then context-swap runs
    assert ensemble_siblings(runs["seed0"]) == [runs["seed1-again"].resolve(), runs["context"].resolve()]
    assert ensemble_siblings(runs["seed1"]) == [runs["seed0"].resolve(), runs["context"].resolve()]  # not itself twice
    # the context-swap run of seed 1 is another member than the plain run of seed 1
    assert ensemble_siblings(runs["context"]) == [runs["seed0"].resolve(), runs["seed1-again"].resolve()]
    assert ensemble_siblings(runs["photo"]) == []  # another augmentation is another recipe: no member of it
    assert ensemble_siblings(runs["balanced"]) == []  # group-balanced variants are not plain runs
    loose = tiny_checkpoint_file(tmp_path / "elsewhere" / "deeper" / "model.pt")
    assert ensemble_siblings(loose) == []  # not recorded in any index


def test_predictor_averages_the_members_with_equal_weights_and_explains_the_named_run(runs):
    chips = np.random.default_rng(5).integers(0, 256, (3, CHIP, CHIP, 3), dtype=np.uint8)
    alone = {name: Predictor(runs[name], "cpu", detect=False, peer_ensemble="off", deep_ensemble="off")
             for name in ("seed0", "seed1-again", "context")}
    first = alone["seed0"]
    assert first.members == [] and first.answer_source == "simple_cnn"
    seeds = Predictor(runs["seed0"], "cpu", detect=False, peer_ensemble="off")  # deep_ensemble="auto"
    assert len(seeds.members) == 2 and seeds.answer_source == "simple_cnn x3 runs"
    own, other, context = (predictor.classify(chips)[0] for predictor in alone.values())
    assert not np.allclose(own, other, atol=1e-3)  # the runs disagree, so the mean is a real test
    np.testing.assert_allclose(seeds.classify(chips)[0], (own + other + context) / 3, atol=1e-6)
    with_peer = Predictor(runs["seed0"], "cpu", detect=False)  # both ensembles: quarters
    assert with_peer.answer_source == "simple_cnn x3 runs + dlib peer (mean)"
    expected = (own + other + context + PeerGenderClassifier().predict_proba(chips)) / 4
    np.testing.assert_allclose(with_peer.classify(chips)[0], expected, atol=1e-6)
    (result,) = seeds.predict_images([("face.png", chips[0])])
    assert result.faces[0].model_probabilities == pytest.approx(dict(zip(first.classes, own[0])), abs=1e-6)
    with pytest.raises(ValueError, match="deep_ensemble must be one of"):
        Predictor(runs["seed0"], "cpu", detect=False, deep_ensemble="on")


def test_a_sibling_with_another_input_size_is_refused_by_name(tmp_path):
    runs = _index(tmp_path, [("seed0", 0, "", "", True), ("seed1", 1, "", "", False)])
    tiny_checkpoint_file(runs["seed1"], input_size=40)
    with pytest.raises(ValueError, match="seed1.*ensemble sibling"):
        Predictor(runs["seed0"], "cpu", detect=False)


def test_a_bcos_model_answers_alone_even_with_ensemble_siblings(tmp_path):
    from tests.test_predict_explain import tiny_bcos_checkpoint_file

    runs = _index(tmp_path, [("seed0", 0, "", "", True), ("seed1", 1, "", "", True)], tiny_bcos_checkpoint_file)
    assert ensemble_siblings(runs["seed0"]) == [runs["seed1"].absolute()]
    predictor = Predictor(runs["seed0"], "cpu", detect=False)
    assert predictor.members == [] and predictor.ensemble_note == ""  # its answer stays what its explanation explains


def test_a_broken_index_or_sibling_is_an_error_naming_it_and_the_way_out(tmp_path, runs):
    import shutil

    from nbhelpers.training.checkpoint import CheckpointError

    runs["seed1-again"].write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="ensemble sibling of .*seed0.*seed1-again.*--deep-ensemble off"):
        Predictor(runs["seed0"], "cpu", detect=False)
    assert Predictor(runs["seed0"], "cpu", detect=False, deep_ensemble="off").members == []
    other = tmp_path / "other"
    shutil.copytree(runs["seed0"].parent, other / "run")
    for broken in ({"runs": [{"run_id": "run", "config": "oops", "checkpoint": "run/model.pt"}]},
                   {"runs": [{"run_id": "run", "config": {"seed": None}, "checkpoint": "run/model.pt"}]},
                   {"runs": ["not an entry"]},
                   {"runs": [{"run_id": "run", "config": {"model": "simple_cnn", "seed": 0, "no_such_setting": 1},
                              "checkpoint": "run/model.pt"}]}):
        (other / INDEX_NAME).write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=f"{INDEX_NAME}.*--deep-ensemble off"):
            Predictor(other / "run" / "model.pt", "cpu", detect=False)


def test_the_command_line_averages_the_members_unless_told_not_to(runs, capsys):
    from PIL import Image

    from nbhelpers.predict.cli import main

    photo = runs["seed0"].parent.parent / "face.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (CHIP, CHIP, 3), dtype=np.uint8)).save(photo)
    answers = {}
    for mode in ("auto", "off"):
        assert main(["--checkpoint", str(runs["seed0"]), "--no-detect", "--peer-ensemble", "off",
                     "--deep-ensemble", mode, str(photo)]) == 0
        captured = capsys.readouterr()
        answers[mode] = json.loads(captured.out.splitlines()[-1])["faces"][0]
        assert ("ensemble: also averaging" in captured.err and "seed1-again" in captured.err
                and "context" in captured.err) == (mode == "auto")
    assert answers["off"]["probabilities"] != pytest.approx(answers["auto"]["probabilities"], abs=1e-4)
    assert answers["auto"]["model_probabilities"] == pytest.approx(answers["off"]["probabilities"], abs=1e-6)


def test_ensemble_recipes_train_the_named_seed_last():
    assert ensemble_recipes(0) == [{"seed": 0, "augment": ""}]
    assert ensemble_recipes(3, seeds=2, context_seeds=2) == [
        {"seed": 4, "augment": ""}, {"seed": 3, "augment": "context"}, {"seed": 4, "augment": "context"},
        {"seed": 3, "augment": ""}]
    named_context = ensemble_recipes(0, seeds=1, context_seeds=1, augment="context")
    assert named_context == [{"seed": 1, "augment": "context"}, {"seed": 0, "augment": "context"}]  # no seed twice
    for wrong in ({"seeds": 0}, {"context_seeds": -1}, {"context_seeds": 1, "augment": "photo"}):
        with pytest.raises(ValueError, match="ensemble"):
            ensemble_recipes(0, **wrong)
