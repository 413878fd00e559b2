"""Figures comparing explanation methods: overlays side by side and metric box plots.

The methods are Grad-CAM (Selvaraju et al., ICCV 2017), Grad-CAM++ (Chattopadhay et al., WACV 2018),
XGrad-CAM (Fu et al., BMVC 2020) and B-cos contribution maps (Böhle, Fritz, Schiele, CVPR 2022 /
TPAMI 2024); see ``nbhelpers.explain.explainers``. Overlays show each map's positive part divided by its
maximum, so every panel uses its full colour range.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from nbhelpers.data.loaders import CLASSES
from nbhelpers.data.plots import to_display
from nbhelpers.explain.base import Attribution

__all__ = ["normalise_map", "overlay", "plot_explanations", "plot_metric_boxes", "plot_metrics"]


def normalise_map(attribution_map: torch.Tensor | np.ndarray) -> np.ndarray:
    """The positive part of a (H, W) map divided by its maximum (all zeros stay zeros)."""
    values = np.asarray(attribution_map.detach().cpu() if isinstance(attribution_map, torch.Tensor) else attribution_map,
                        dtype=np.float64).clip(min=0)
    peak = values.max()
    return values / peak if peak > 0 else values


def overlay(image: np.ndarray, attribution_map: torch.Tensor | np.ndarray, cmap: str = "jet",
            alpha: float = 0.5) -> np.ndarray:
    """Blend the colour-mapped, normalised map onto an RGB image (H, W, 3) in 0..1; returns (H, W, 3)."""
    heat = plt.get_cmap(cmap)(normalise_map(attribution_map))[..., :3]
    return ((1 - alpha) * image + alpha * heat).clip(0, 1)


def plot_explanations(faces: torch.Tensor | np.ndarray, attributions: Mapping[str, Attribution],
                      labels: Sequence[int] | np.ndarray | None = None, classes: Sequence[str] = CLASSES,
                      count: int = 6, cmap: str = "jet", alpha: float = 0.5, cell_inches: float = 1.5) -> plt.Figure:
    """One row per face: the face titled with prediction and probability, then one overlay per method.

    ``faces``: uint8 (N, H, W, 3) or float NCHW in 0..1, at the maps' resolution or any other (the
    maps are resized to the face). ``attributions``: method name -> ``Attribution`` of the same faces.
    """
    images = to_display(faces)[:count]
    methods = list(attributions)
    if not methods:
        raise ValueError("no attributions to plot")
    rows, columns = len(images), 1 + len(methods)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * cell_inches, rows * (cell_inches + 0.25)),
                                squeeze=False)
    first = attributions[methods[0]]
    for row, image in enumerate(images):
        predicted = int(first.predicted[row])
        probability = float(first.probabilities[row, predicted])
        truth = "" if labels is None or int(labels[row]) == predicted else f" (true {classes[int(labels[row])]})"
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"{classes[predicted]} {probability:.2f}{truth}", fontsize=8)
        for column, method in enumerate(methods, start=1):
            attribution = attributions[method]
            attribution_map = attribution.maps[row][None, None].float().cpu()
            resized = torch.nn.functional.interpolate(attribution_map, size=image.shape[:2], mode="bilinear",
                                                      align_corners=False)[0, 0]
            axes[row, column].imshow(overlay(image, resized, cmap, alpha))
            if row == 0:
                axes[row, column].set_title(method, fontsize=9)
            target = int(attribution.targets[row])
            axes[row, column].text(0.02, 0.02, f"why {classes[target]}", transform=axes[row, column].transAxes,
                                   fontsize=6, color="white", va="bottom")
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    return figure


def plot_metric_boxes(frame: pd.DataFrame, metric: str, x: str = "method", hue: str | None = "model",
                      chance: float | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Box plot of one metric of an ``evaluate_explanations`` table per method (and model); NaN rows dropped.

    ``chance`` draws a dashed reference line (e.g. 0.5 for the pointing game).
    """
    rows = frame[frame["metric"] == metric].dropna(subset=["value"])
    if rows.empty:
        raise ValueError(f"no values of metric {metric!r}; found {sorted(frame['metric'].unique())}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 1.1 * rows[x].nunique(), 3.2))
    sns.boxplot(data=rows, x=x, y="value", hue=hue, ax=ax, fliersize=1.5)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_xlabel("")
    return ax


def plot_metrics(frame: pd.DataFrame, chances: dict[str, float | None]) -> list[plt.Axes]:
    """``plot_metric_boxes`` of each metric in ``chances`` (metric -> chance level or None) that has values;
    a warning names the ones without (e.g. the pointing game, skipped when too few faces were classified right)."""
    present = set(frame.dropna(subset=["value"])["metric"])
    missing = [metric for metric in chances if metric not in present]
    if missing:
        warnings.warn(f"no values of {', '.join(missing)}: not plotted", stacklevel=2)
    return [plot_metric_boxes(frame, metric, chance=chance) for metric, chance in chances.items() if metric in present]

