"""Run every explanation metric for several models x methods over the same faces; tidy table and CSV.

One row per (model, method, image, metric): ``target_probability``, ``deletion_auc`` and
``insertion_auc`` (Petsiuk et al., BMVC 2018), ``road_morf``, ``road_lerf``, ``road_combined`` (Rong
et al., ICML 2022), ``face_focus`` (share inside the inner-face box), ``randomisation_spearman`` and
``randomisation_pearson`` (Adebayo et al., NeurIPS 2018; top ``randomised_layers`` units reset) and,
on mosaics (``image`` is then the mosaic index), ``pointing_game`` for each of the two classes and, on
grids with one face of the target class (``image`` is then the grid index), ``grid_pointing_game``, the
localisation metric of the B-cos papers (Böhle et al., CVPR 2022 / TPAMI 2024; Arya et al., NeurIPS
2024; see ``nbhelpers.explain.metrics``). Every method explains the class the model predicts on faces,
the given class on mosaics and grids. The ``random`` method gives the chance level of each metric in
the same table.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from nbhelpers.explain.explainers import create_explainer, explainer_supports
from nbhelpers.explain.faithfulness import (
    ROAD_PERCENTILES,
    deletion_insertion,
    road_scores,
)
from nbhelpers.explain.metrics import (
    FACE_BOX,
    face_focus,
    grid_pointing_game_score,
    make_mosaics,
    make_target_grids,
    pointing_game_score,
)
from nbhelpers.explain.sanity_checks import randomisation_correlation, randomise_layers
from nbhelpers.utils.atomic import atomic_write_csv
from nbhelpers.utils.progress import progress_bar

__all__ = ["ExplainedModel", "COLUMNS", "evaluate_explanations", "summarise_metrics", "write_metrics_csv"]

ExplainedModel = tuple[str, nn.Module, Callable[[torch.Tensor], torch.Tensor]]  # name, model, uint8 NHWC -> input
COLUMNS = ["model", "method", "image", "label", "predicted", "target", "metric", "value"]


def _rows(model: str, method: str, image: np.ndarray, label: np.ndarray, predicted: np.ndarray, target: np.ndarray,
          metrics: Mapping[str, torch.Tensor | np.ndarray]) -> pd.DataFrame:
    frames = [pd.DataFrame({"model": model, "method": method, "image": image, "label": label, "predicted": predicted,
                            "target": target, "metric": name, "value": np.asarray(values, dtype=np.float64)})
              for name, values in metrics.items()]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class _Settings:
    """The options of one ``evaluate_explanations`` call that every batch needs."""

    batch_size: int
    steps: int
    baseline: Any
    road_percentiles: Sequence[int] | None
    road_total: int  # ROAD on the first ``road_total`` faces
    seed: int
    explainer_kwargs: Mapping[str, dict[str, Any]]
    mosaic_count: int = 0
    grid_count: int = 0
    grid: int = 2  # cells per side of the grid pointing game


def _image_metrics(model: nn.Module, explainer: Any, random_explainer: Any, inputs: torch.Tensor, boxes: np.ndarray,
                   road_count: int, seed: int, settings: _Settings) -> tuple[Any, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The attribution of one batch, its per-image metrics, and ROAD on its first ``road_count`` images."""
    attribution = explainer(inputs)
    metrics: dict[str, torch.Tensor] = {"target_probability": attribution.target_probabilities.cpu()}
    curves = deletion_insertion(model, inputs, attribution.maps, attribution.targets, settings.steps, settings.baseline,
                                seed=seed)
    metrics.update(deletion_auc=curves["deletion_auc"], insertion_auc=curves["insertion_auc"])
    metrics["face_focus"] = face_focus(attribution.maps, boxes).cpu()
    if random_explainer is not None:
        correlation = randomisation_correlation(attribution.maps, random_explainer(inputs, attribution.targets).maps)
        metrics["randomisation_spearman"] = correlation["spearman"]
        metrics["randomisation_pearson"] = correlation["pearson"]
    road: dict[str, torch.Tensor] = {}
    if settings.road_percentiles and road_count > 0:
        part = slice(0, road_count)
        road = road_scores(model, inputs[part], attribution.maps[part], attribution.targets[part],
                           settings.road_percentiles, seed)
    return attribution, metrics, road


def _localisation_sets(name: str, model: nn.Module, inputs: torch.Tensor, labels: np.ndarray,
                       settings: _Settings) -> tuple[Any, Any]:
    """Mosaics (pointing game) and target grids (grid pointing game) of correctly classified faces, or None each."""
    if not (settings.mosaic_count or settings.grid_count):
        return None, None
    with torch.no_grad():
        predicted = torch.cat([model(inputs[start:start + settings.batch_size]).argmax(1).cpu()
                               for start in range(0, len(inputs), settings.batch_size)])
    correct = [int(((predicted.numpy() == labels) & (labels == label)).sum()) for label in (0, 1)]
    mosaics = grids = None
    if settings.mosaic_count and min(correct) < 2:
        warnings.warn(f"{name}: pointing game skipped, only {correct} correctly classified faces per class "
                      "(need 2 of each)", stacklevel=4)
    elif settings.mosaic_count:
        mosaics = make_mosaics(inputs, labels, settings.mosaic_count, settings.seed, predicted)
    needed = settings.grid ** 2 - 1
    if settings.grid_count and min(correct) < needed:
        warnings.warn(f"{name}: grid pointing game skipped, only {correct} correctly classified faces per class "
                      f"(need {needed} of each for {settings.grid} x {settings.grid} grids)", stacklevel=4)
    elif settings.grid_count:
        grids = make_target_grids(inputs, labels, settings.grid_count, settings.grid, settings.seed, predicted)
    return mosaics, grids


def _prepare(spec: ExplainedModel, images: torch.Tensor, labels: np.ndarray, randomised_layers: int,
             settings: _Settings) -> tuple[torch.Tensor, nn.Module | None, Any, Any]:
    """Model inputs of all faces, the randomised copy, and the mosaics and grids of correctly classified faces."""
    _, model, preprocess = spec
    model.eval()
    device = next(model.parameters()).device
    inputs = torch.cat([preprocess(images[start:start + settings.batch_size]).to(device)
                        for start in range(0, len(images), settings.batch_size)])
    randomised = randomise_layers(model, randomised_layers, settings.seed) if randomised_layers else None
    return inputs, randomised, *_localisation_sets(spec[0], model, inputs, labels, settings)


def _checked_inputs(images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                    face_boxes: Sequence[float] | np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Images as a uint8 tensor, labels as int64 and one face box per image; errors for mismatched shapes."""
    images_t = torch.as_tensor(np.asarray(images))
    labels_np = np.asarray(labels).astype(np.int64)
    if images_t.dim() != 4 or images_t.shape[-1] != 3 or images_t.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images_t.dtype} {tuple(images_t.shape)}")
    if labels_np.shape != (len(images_t),):
        raise ValueError(f"need one label per image ({len(images_t)}), got shape {labels_np.shape}")
    boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
    return images_t, labels_np, np.repeat(boxes, len(images_t), axis=0) if len(boxes) == 1 else boxes


def _plan(models: Sequence[ExplainedModel], methods: Sequence[str]) -> list[tuple[ExplainedModel, list[str]]]:
    """Each model with the methods that apply to it; a warning for every (method, model) pair skipped."""
    plan = []
    for spec in models:
        for method in methods:
            if not explainer_supports(method, spec[1]):
                warnings.warn(f"skipping {method!r} on {spec[0]!r}: the method does not apply to this model", stacklevel=3)
        plan.append((spec, [method for method in methods if explainer_supports(method, spec[1])]))
    return plan


def _batch_frames(spec: ExplainedModel, method: str, explainers: tuple[Any, Any], inputs: torch.Tensor, labels: np.ndarray,
                  boxes: np.ndarray, start: int, settings: _Settings) -> list[pd.DataFrame]:
    """The rows of the faces ``start`` .. ``start + batch_size``: per-image metrics, then ROAD where it runs."""
    part = slice(start, start + settings.batch_size)
    road_count = max(0, min(settings.batch_size, settings.road_total - start))
    attribution, metrics, road = _image_metrics(spec[1], *explainers, inputs[part], boxes[part], road_count,
                                                settings.seed + start, settings)
    index = np.arange(len(inputs))[part]
    predicted, targets = attribution.predicted.cpu().numpy(), attribution.targets.cpu().numpy()
    frames = [_rows(spec[0], method, index, labels[part], predicted, targets, metrics)]
    if road:
        count = len(road["road_combined"])
        frames.append(_rows(spec[0], method, index[:count], labels[part][:count], predicted[:count], targets[:count], road))
    return frames


def _method_frames(spec: ExplainedModel, method: str, prepared: tuple[torch.Tensor, nn.Module | None, Any, Any],
                   labels: np.ndarray, boxes: np.ndarray, settings: _Settings, bar: Any) -> list[pd.DataFrame]:
    """Every row of one (model, method) pair: the faces batch by batch, the pointing game, the grid pointing game."""
    inputs, randomised, mosaics, grids = prepared
    kwargs = settings.explainer_kwargs.get(method, {})
    frames: list[pd.DataFrame] = []
    with create_explainer(method, spec[1], **kwargs) as explainer:
        random_explainer = create_explainer(method, randomised, **kwargs) if randomised is not None else None
        try:
            for start in range(0, len(inputs), settings.batch_size):
                frames += _batch_frames(spec, method, (explainer, random_explainer), inputs, labels, boxes, start, settings)
                bar.update()
            if mosaics is not None:
                frames.append(_pointing_rows(spec[0], method, explainer, mosaics, settings.batch_size))
                bar.update()
            if grids is not None:
                frames.append(_grid_rows(spec[0], method, explainer, grids, settings))
                bar.update()
        finally:
            if random_explainer is not None:
                random_explainer.release()
    return frames


def evaluate_explanations(models: Sequence[ExplainedModel], methods: Sequence[str], images: torch.Tensor | np.ndarray,
                          labels: torch.Tensor | np.ndarray, *, batch_size: int = 50, steps: int = 16,
                          baseline: Any = "mean", road_percentiles: Sequence[int] | None = ROAD_PERCENTILES,
                          road_limit: int | None = None, mosaic_count: int = 50, grid_count: int | None = None,
                          grid: int = 2, randomised_layers: int = 2,
                          face_boxes: Sequence[float] | np.ndarray = FACE_BOX, seed: int = 0,
                          explainer_kwargs: Mapping[str, dict[str, Any]] | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """All metrics for every (model, method) pair on ``images`` (uint8 N, H, W, 3) with ``labels`` (N,).

    ``models``: (name, model, preprocess) triples, ``preprocess`` mapping a uint8 NHWC batch to the
    model's input (e.g. ``build_pipeline(name, train=False, ...)``). Methods that do not apply to a
    model (``bcos`` on a non-B-cos model) are skipped with a warning. ``road_limit`` evaluates ROAD on
    the first faces only (``None``: all; ``road_percentiles=None``: none), ``mosaic_count`` mosaics of
    correctly classified faces feed the pointing game (0: none), ``grid_count`` grids of ``grid`` x ``grid``
    faces feed the grid pointing game (``None``: ``mosaic_count``; 0: none; the models see ``grid`` times the input
    size, which every registered model accepts as it pools adaptively), ``randomised_layers`` top units
    are re-initialised for the sanity check (0: none), ``face_boxes`` one relative box or one per face.
    ValueError for mismatched images, labels or boxes and for ``grid`` < 2.
    """
    images_t, labels_np, boxes = _checked_inputs(images, labels, face_boxes)
    grid_count = mosaic_count if grid_count is None else grid_count
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2 (cells per side), got {grid!r}")
    settings = _Settings(batch_size, steps, baseline, road_percentiles,
                         len(images_t) if road_limit is None else min(road_limit, len(images_t)), seed,
                         explainer_kwargs or {}, mosaic_count, grid_count, int(grid))
    plan = _plan(models, methods)
    steps_per_method = len(range(0, len(images_t), batch_size)) + (1 if mosaic_count else 0) + (1 if grid_count else 0)
    bar = progress_bar(total=sum(len(names) for _, names in plan) * steps_per_method, desc="explanation metrics",
               disable=not progress)
    frames: list[pd.DataFrame] = []
    for spec, names in plan:
        prepared = _prepare(spec, images_t, labels_np, randomised_layers, settings)
        for method in names:
            bar.set_description(f"{spec[0]} / {method}")
            frames += _method_frames(spec, method, prepared, labels_np, boxes, settings, bar)
        del prepared
    bar.close()
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)


def _pointing_rows(model_name: str, method: str, explainer: Any, mosaics: Any, batch_size: int) -> pd.DataFrame:
    frames = []
    classes = torch.unique(mosaics.layout).tolist()
    for start in range(0, len(mosaics.images), batch_size):
        part = slice(start, start + batch_size)
        for target in classes:
            attribution = explainer(mosaics.images[part], target)
            scores = pointing_game_score(attribution.maps, mosaics.layout[part], target)
            index = np.arange(len(mosaics.images))[part]
            frames.append(_rows(model_name, method, index, np.full(len(index), -1), attribution.predicted.cpu().numpy(),
                                np.full(len(index), target), {"pointing_game": scores.cpu()}))
    return pd.concat(frames, ignore_index=True)


def _grid_rows(model_name: str, method: str, explainer: Any, grids: Any, settings: _Settings) -> pd.DataFrame:
    """``grid_pointing_game`` rows: each grid's map of its target class, scored in its target cell."""
    frames = []
    for start in range(0, len(grids.images), settings.batch_size):
        part = slice(start, start + settings.batch_size)
        targets = grids.target_class[part]
        attribution = explainer(grids.images[part], targets)
        scores = grid_pointing_game_score(attribution.maps, grids.target_cell[part], settings.grid)
        index = np.arange(len(grids.images))[part]
        frames.append(_rows(model_name, method, index, np.full(len(index), -1), attribution.predicted.cpu().numpy(),
                            targets.numpy(), {"grid_pointing_game": scores.cpu()}))
    return pd.concat(frames, ignore_index=True)


def summarise_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, standard error and count of every metric per model and method (NaN skipped)."""
    grouped = frame.groupby(["model", "method", "metric"])["value"]
    summary = grouped.agg(["mean", "std", "count"]).reset_index()
    summary["sem"] = summary["std"] / np.sqrt(summary["count"].clip(lower=1))
    return summary


def write_metrics_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` to ``path`` as CSV atomically (a reader never sees a half-written file)."""
    return atomic_write_csv(path, frame)
