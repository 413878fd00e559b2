"""Explanation metrics on constructed cases with known answers, and a tiny end-to-end evaluation."""

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from nbhelpers.explain.evaluation import (
    COLUMNS,
    evaluate_explanations,
    summarise_metrics,
    write_metrics_csv,
)
from nbhelpers.explain.explainers import create_explainer
from nbhelpers.explain.faithfulness import (
    deletion_insertion,
    relevance_ranks,
    road_scores,
)
from nbhelpers.explain.metrics import (
    FACE_BOX,
    detect_face_boxes,
    face_box_mask,
    face_focus,
    make_mosaics,
    pointing_game_score,
)
from nbhelpers.explain.sanity_checks import (
    cascade_layers,
    randomisation_correlation,
    randomise_layers,
    rank_correlation,
)
from nbhelpers.models import create_model

DEVICE = torch.device(os.environ.get("NBHELPERS_DEVICE", "cpu"))


pytestmark = pytest.mark.usefixtures("single_thread")


class LinearModel(nn.Module):
    """Two-class model with logit_1 = w . x = -logit_0: the map w * x is its exact attribution."""

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) / size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        score = (images * self.weight).flatten(1).sum(1)
        return torch.stack([-score, score], dim=1)


LAYOUT = torch.tensor([[[0, 1], [1, 0]]])


def test_pointing_game_known_answers():
    on_class_0 = torch.zeros(1, 8, 8)
    on_class_0[0, :4, :4] = 2.0
    on_class_0[0, 4:, 4:] = 1.0
    on_class_0[0, :4, 4:] = -5.0  # negative evidence does not count
    assert pointing_game_score(on_class_0, LAYOUT, 0).item() == 1.0
    assert pointing_game_score(on_class_0, LAYOUT, 1).item() == 0.0
    assert pointing_game_score(torch.ones(8, 8), LAYOUT[0], 1).item() == pytest.approx(0.5)
    random_maps = torch.rand(400, 16, 16, generator=torch.Generator().manual_seed(0))
    assert pointing_game_score(random_maps, LAYOUT.expand(400, 2, 2), 1).mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.isnan(pointing_game_score(torch.zeros(1, 8, 8), LAYOUT, 0)).all()


def test_mosaics_hold_two_correct_faces_of_each_class():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 2, 4, 4).clone()  # image i is all i
    labels = torch.tensor([0, 1] * 5)
    predicted = labels.clone()
    predicted[[0, 1]] = 1 - labels[[0, 1]]  # faces 0 and 1 are misclassified
    mosaics = make_mosaics(images, labels, count=20, seed=3, predicted=predicted)
    assert mosaics.images.shape == (20, 2, 8, 8) and mosaics.layout.shape == (20, 2, 2)
    assert ((mosaics.layout == 0).sum(dim=(1, 2)) == 2).all() and ((mosaics.layout == 1).sum(dim=(1, 2)) == 2).all()
    assert not torch.isin(mosaics.sources, torch.tensor([0, 1])).any()
    assert torch.equal(labels[mosaics.sources], mosaics.layout)
    for index in range(20):
        assert len(set(mosaics.sources[index].flatten().tolist())) == 4
        for row in range(2):
            for column in range(2):
                cell = mosaics.images[index, :, 4 * row:4 * row + 4, 4 * column:4 * column + 4]
                assert (cell == mosaics.sources[index, row, column]).all()
    with pytest.raises(ValueError, match="at least two"):
        make_mosaics(images[:3], labels[:3], 1)


@pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")  # grad-cam's ROADCombined
def test_deletion_and_insertion_rank_the_exact_map_first():
    size = 12
    model = LinearModel(size).to(DEVICE)
    images = torch.rand(6, 3, size, size, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    targets = torch.ones(6, dtype=torch.long)
    exact = (images * model.weight).sum(1).detach()
    random_map = torch.rand(6, size, size, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    good = deletion_insertion(model, images, exact, targets, steps=8, baseline="zero", batch_size=40)
    bad = deletion_insertion(model, images, random_map, targets, steps=8, baseline="zero", batch_size=40)
    assert good["deletion"].shape == (6, 9) and good["deletion_auc"].shape == (6,)
    assert torch.allclose(good["deletion"][:, 0], good["insertion"][:, -1])  # both the unperturbed image
    assert (good["deletion_auc"] < bad["deletion_auc"]).all()
    assert (good["insertion_auc"] > bad["insertion_auc"]).all()
    road_good = road_scores(model, images, exact, targets, percentiles=(25, 50, 75))
    road_bad = road_scores(model, images, random_map, targets, percentiles=(25, 50, 75))
    assert road_good["road_combined"].mean() > road_bad["road_combined"].mean()
    assert road_good["road_morf"].mean() < road_bad["road_morf"].mean()
    relevance = (1.0 - relevance_ranks(exact.cpu()).float() / size ** 2).numpy()
    package = ROADCombined(percentiles=[25, 50, 75])(input_tensor=images, cams=relevance,
                                                     targets=[ClassifierOutputSoftmaxTarget(category=1)] * 6, model=model)
    np.testing.assert_allclose(road_good["road_combined"].numpy(), package, atol=0.01)  # up to imputation noise


def test_relevance_ranks_break_ties_and_keep_order():
    maps = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    ranks = relevance_ranks(maps)
    assert ranks[0, 0, 0] == 0 and ranks[0, 1, 1] == 1 and sorted(ranks.flatten().tolist()) == [0, 1, 2, 3]


def test_face_focus():
    mask = face_box_mask(48, 48).float()
    assert face_focus(mask[None]).item() == 1.0
    assert face_focus((1 - mask)[None]).item() == 0.0
    left, top, right, bottom = FACE_BOX
    assert face_focus(torch.ones(1, 200, 200)).item() == pytest.approx((right - left) * (bottom - top), abs=0.01)
    boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    corner = torch.zeros(2, 10, 10)
    corner[:, :5, :5] = 1.0
    assert face_focus(corner, boxes).tolist() == [1.0, 0.0]


def test_detected_face_boxes_match_the_fixed_box(utkface_archive):
    """The calibration of FACE_BOX (benchmarks/calibrate_face_box.py), repeated on 40 real faces spread over
    the archive (every 100th file, read in memory; nothing is written). The median is taken over real
    detections only: faces where detection failed are filled with FACE_BOX itself and would prove nothing.
    The archive-wide detection rate is 0.815 (2,371 faces); this sample's is 37 of 40."""
    import io
    import tarfile

    from PIL import Image

    faces, index = [], 0
    with tarfile.open(utkface_archive) as archive:
        for member in archive:
            if not (member.isfile() and member.name.endswith(".jpg")):
                continue
            if index % 100 == 0:
                faces.append(np.asarray(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")))
            index += 1
            if len(faces) == 40:
                break
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="no eyes and mouth")  # misses go to the mask, not a warning
        boxes, found = detect_face_boxes(np.stack(faces), return_found=True)
    assert boxes.shape == (40, 4) and found.shape == (40,) and found.dtype == bool
    assert found.mean() >= 0.75, f"detectors found eyes and mouth in only {found.sum()} of 40 faces"
    assert (boxes[~found] == FACE_BOX).all()
    assert np.allclose(np.median(boxes[found], axis=0), FACE_BOX, atol=0.02)  # measured: within 3 px of 200
    with pytest.warns(UserWarning, match="no eyes and mouth found in 1 of 1"):
        assert detect_face_boxes(np.zeros((1, 120, 120, 3), np.uint8)).tolist() == [list(FACE_BOX)]
    boxes, found = detect_face_boxes(np.zeros((1, 120, 120, 3), np.uint8), return_found=True)
    assert boxes.tolist() == [list(FACE_BOX)] and found.tolist() == [False]


def bcos_attribution(model, images, targets="predicted"):
    with create_explainer("bcos", model) as explainer:
        return explainer(images, targets)


def test_randomisation_correlation():
    torch.manual_seed(0)
    model = create_model("bcos_resnet18", width=8).to(DEVICE).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4)).to(DEVICE)
    images = torch.cat([images, 1 - images], 1)
    assert cascade_layers(model)[:3] == ["fc", "layer4.1", "layer4.0"] and cascade_layers(model)[-1] == "conv1"
    state = torch.random.get_rng_state()
    trained = bcos_attribution(model, images)
    same, reset = (randomisation_correlation(trained.maps, bcos_attribution(randomised, images, trained.targets).maps)
                   for randomised in (randomise_layers(model, []), randomise_layers(model, 4)))
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.allclose(same["spearman"], torch.ones(3, dtype=torch.float64))
    assert torch.allclose(same["pearson"], torch.ones(3, dtype=torch.float64))
    assert (reset["spearman"] < 0.95).all()
    copy = randomise_layers(model, ["layer4.1"])
    assert not torch.equal(copy.layer4[1].conv1.weight, model.layer4[1].conv1.weight)
    assert torch.equal(copy.layer3[1].conv1.weight, model.layer3[1].conv1.weight)
    maps = torch.rand(2, 5, 5)
    assert torch.allclose(rank_correlation(maps, -maps), -torch.ones(2, dtype=torch.float64))


def trained_simple_cnn(images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    """A tiny CNN that separates dark (0) from bright (1) faces after a few steps."""
    torch.manual_seed(0)
    model = create_model("simple_cnn", width=4).to(DEVICE)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs = images.permute(0, 3, 1, 2).float().div(255).to(DEVICE)
    for _ in range(30):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels.to(DEVICE)).backward()
        optimiser.step()
    return model.eval()


def test_evaluate_explanations_end_to_end(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1] * 6)
    images = (torch.rand(12, 16, 16, 3, generator=generator) * 100 + labels.view(-1, 1, 1, 1) * 150).to(torch.uint8)
    model = trained_simple_cnn(images, labels)
    preprocess = lambda batch: batch.permute(0, 3, 1, 2).float().div(255)  # noqa: E731
    with pytest.warns(UserWarning, match="skipping 'bcos'"):
        frame = evaluate_explanations([("tiny", model, preprocess)], ["gradcam", "bcos", "random"], images, labels,
                                      batch_size=5, steps=4, road_percentiles=(50,), road_limit=7, mosaic_count=3,
                                      progress=False)
    assert list(frame.columns) == COLUMNS and set(frame["method"]) == {"gradcam", "random"}
    counts = frame.groupby(["method", "metric"]).size()
    assert counts[("gradcam", "deletion_auc")] == 12 and counts[("gradcam", "road_combined")] == 7
    assert counts[("random", "pointing_game")] == 6  # 3 mosaics x 2 classes
    random_rows = frame[(frame["method"] == "random") & (frame["metric"] == "randomisation_spearman")]
    assert np.allclose(random_rows["value"], 1.0)  # random maps ignore the model: the sanity check flags them
    summary = summarise_metrics(frame)
    assert {"mean", "std", "count", "sem"} <= set(summary.columns)
    path = write_metrics_csv(frame, tmp_path / "metrics.csv")
    assert len(pd.read_csv(path)) == len(frame) and list(tmp_path.iterdir()) == [path]
