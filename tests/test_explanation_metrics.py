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
    grid_pointing_game_score,
    make_mosaics,
    make_target_grids,
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


@pytest.mark.parametrize("grid", [2, 3])
def test_grid_pointing_game_known_answers(grid):
    size = 4 * grid
    maps = torch.zeros(grid * grid, size, size)
    for cell in range(grid * grid):  # map `cell` has all its positive mass in cell `cell`, negatives elsewhere
        row, column = divmod(cell, grid)
        maps[cell] = -3.0
        maps[cell, 4 * row:4 * row + 4, 4 * column:4 * column + 4] = torch.arange(16.0).view(4, 4)
    cells = torch.arange(grid * grid)
    assert grid_pointing_game_score(maps, cells, grid).tolist() == [1.0] * grid ** 2
    assert grid_pointing_game_score(maps, (cells + 1) % grid ** 2, grid).tolist() == [0.0] * grid ** 2
    uniform = grid_pointing_game_score(torch.ones(grid * grid, size, size), cells, grid)
    assert uniform.dtype == torch.float64 and torch.allclose(uniform, torch.full_like(uniform, 1 / grid ** 2))
    assert grid_pointing_game_score(torch.ones(size, size), grid * grid - 1, grid).item() == pytest.approx(1 / grid ** 2)
    assert grid_pointing_game_score(maps[1], 1, grid).dim() == 0
    random_maps = torch.rand(400, size, size, generator=torch.Generator().manual_seed(0))
    mean = grid_pointing_game_score(random_maps, 0, grid).mean().item()
    assert mean == pytest.approx(1 / grid ** 2, abs=0.01)
    assert torch.isnan(grid_pointing_game_score(-torch.ones(2, size, size), 0, grid)).all()


def test_grid_pointing_game_rejects_bad_inputs():
    maps = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="divisible by 3"):
        grid_pointing_game_score(maps, 0, 3)
    with pytest.raises(ValueError, match=r"target cells must lie in 0\.\.3"):
        grid_pointing_game_score(maps, torch.tensor([0, 4]), 2)
    with pytest.raises(ValueError, match=r"one target cell per map \(2\), got 3"):
        grid_pointing_game_score(maps, [0, 1, 2], 2)
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        grid_pointing_game_score(maps, 0, 1)
    with pytest.raises(ValueError, match=r"shape \(M, nH, nW\)"):
        grid_pointing_game_score(torch.rand(1, 1, 8, 8), 0, 2)


@pytest.mark.parametrize("grid", [2, 3])
def test_target_grids_hold_one_correct_target_face(grid):
    images = torch.arange(24, dtype=torch.float32).view(24, 1, 1, 1).expand(24, 2, 4, 4).clone()  # image i is all i
    labels = torch.tensor([0, 1] * 12)
    predicted = labels.clone()
    predicted[[0, 1, 2]] = 1 - labels[[0, 1, 2]]  # faces 0, 1 and 2 are misclassified
    grids = make_target_grids(images, labels, count=21, grid=grid, seed=3, predicted=predicted)
    assert grids.images.shape == (21, 2, 4 * grid, 4 * grid) and grids.sources.shape == (21, grid, grid)
    assert grids.target_class.tolist() == [0, 1] * 10 + [0]  # both classes, half the grids each
    assert len(set(grids.target_cell.tolist())) > 1 and grids.target_cell.dtype == torch.int64
    assert not torch.isin(grids.sources, torch.tensor([0, 1, 2])).any()
    for index in range(21):
        cell_labels = labels[grids.sources[index]].flatten()
        expected = torch.full((grid * grid,), 1 - int(grids.target_class[index]))
        expected[grids.target_cell[index]] = grids.target_class[index]
        assert torch.equal(cell_labels, expected)  # exactly one target-class face, in the recorded cell
        assert len(set(grids.sources[index].flatten().tolist())) == grid * grid
        for row in range(grid):
            for column in range(grid):
                cell = grids.images[index, :, 4 * row:4 * row + 4, 4 * column:4 * column + 4]
                assert (cell == grids.sources[index, row, column]).all()
    again = make_target_grids(images, labels, count=21, grid=grid, seed=3, predicted=predicted)
    assert torch.equal(again.sources, grids.sources) and torch.equal(again.target_cell, grids.target_cell)


def test_target_grids_reject_bad_inputs():
    images = torch.rand(12, 3, 4, 4)
    labels = torch.tensor([0] * 9 + [1] * 3)
    with pytest.raises(ValueError, match="needs at least 8 .* faces of class 1, found 3"):
        make_target_grids(images, labels, count=2, grid=3)
    assert make_target_grids(images, labels, count=4, grid=2).images.shape == (4, 3, 8, 8)
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        make_target_grids(images, labels, count=2, grid=1)
    with pytest.raises(ValueError, match="one label per image"):
        make_target_grids(images, labels[:5], count=2)
    with pytest.raises(ValueError, match="two classes"):
        make_target_grids(images, labels, count=2, classes=(0, 1, 2))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        make_target_grids(images[0], labels, count=2)


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
    assert counts[("gradcam", "grid_pointing_game")] == 3  # grid_count defaults to mosaic_count
    grid_rows = frame[frame["metric"] == "grid_pointing_game"]
    assert grid_rows["value"].between(0, 1).all() and set(grid_rows["target"]) == {0, 1}
    random_rows = frame[(frame["method"] == "random") & (frame["metric"] == "randomisation_spearman")]
    assert np.allclose(random_rows["value"], 1.0)  # random maps ignore the model: the sanity check flags them
    summary = summarise_metrics(frame)
    assert {"mean", "std", "count", "sem"} <= set(summary.columns)
    path = write_metrics_csv(frame, tmp_path / "metrics.csv")
    assert len(pd.read_csv(path)) == len(frame) and list(tmp_path.iterdir()) == [path]


def test_evaluate_explanations_grid_pointing_game_on_3x3_grids():
    generator = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1] * 12)
    images = (torch.rand(24, 16, 16, 3, generator=generator) * 100 + labels.view(-1, 1, 1, 1) * 150).to(torch.uint8)
    model = trained_simple_cnn(images, labels)
    preprocess = lambda batch: batch.permute(0, 3, 1, 2).float().div(255)  # noqa: E731
    options = dict(batch_size=8, steps=2, road_percentiles=None, randomised_layers=0, progress=False)
    frame = evaluate_explanations([("tiny", model, preprocess)], ["gradcam", "random"], images, labels, mosaic_count=0,
                                  grid_count=4, grid=3, **options)
    rows = frame[frame["metric"] == "grid_pointing_game"]
    assert len(rows) == 8 and "pointing_game" not in set(frame["metric"])
    assert rows["target"].tolist() == [0, 1, 0, 1] * 2 and rows["value"].dropna().between(0, 1).all()
    means = rows.groupby("method")["value"].mean()  # NaN (a map without positive attribution) skipped
    assert means["random"] == pytest.approx(1 / 9, abs=0.03) and means["gradcam"] > 0.5  # dark vs bright: found
    assert "grid_pointing_game" in set(summarise_metrics(frame)["metric"])
    off = evaluate_explanations([("tiny", model, preprocess)], ["random"], images, labels, mosaic_count=3, grid_count=0,
                                **options)
    assert "grid_pointing_game" not in set(off["metric"]) and "pointing_game" in set(off["metric"])
    with pytest.warns(UserWarning, match="grid pointing game skipped"):
        evaluate_explanations([("tiny", model, preprocess)], ["random"], images[:12], labels[:12], mosaic_count=0,
                              grid_count=2, grid=3, **options)
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        evaluate_explanations([("tiny", model, preprocess)], ["random"], images, labels, grid=1, **options)


def test_checkerboard_index_separates_period_two_patterns_from_smooth_maps():
    from nbhelpers.explain.checkerboard import checkerboard_index, nyquist_band_mask

    rows, columns = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    checkerboard = (-1.0) ** (rows + columns)
    stripes = (-1.0) ** rows
    blob = torch.exp(-((rows - 40) ** 2 + (columns - 55) ** 2) / (2 * 12.0 ** 2))
    noise = torch.randn(64, 96, 96, generator=torch.Generator().manual_seed(0))
    scores = checkerboard_index(torch.stack([checkerboard, stripes, blob, blob + 0.3 * checkerboard]))
    assert scores[0] > 0.99 and scores[1] > 0.99
    assert scores[2] < 1e-3
    assert 0.2 < scores[3] < 0.99  # a smooth map with a faint checkerboard lies in between
    band_share = nyquist_band_mask(96, 96).double().mean()
    assert abs(checkerboard_index(noise).mean() - band_share) < 0.01  # white noise: the band's area
    assert abs(band_share - 3 * (2 / 16) ** 2) < 0.01
    assert checkerboard_index(torch.ones(5, 5)) == 0  # constant map: no power outside DC
    with pytest.raises(ValueError, match="shape"):
        checkerboard_index(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="half_width"):
        nyquist_band_mask(8, 8, half_width=0.3)
