"""Figures shared by the notebooks: image grids, class balance and group balance plots."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from nbhelpers.data.images import load_rgb, square_resize

__all__ = ["show_grid", "plot_class_balance", "plot_group_balance", "show_before_after", "to_display", "sample_faces"]


def to_display(batch: torch.Tensor | np.ndarray) -> np.ndarray:
    """Turn uint8 NHWC or float NCHW (0..1, first 3 channels) into float NHWC in 0..1 for imshow."""
    if isinstance(batch, torch.Tensor):
        batch = batch.detach().cpu()
        if batch.dtype == torch.uint8:
            return batch.numpy().astype(np.float32) / 255.0
        return batch[:, :3].permute(0, 2, 3, 1).clamp(0, 1).numpy()
    return batch.astype(np.float32) / 255.0 if batch.dtype == np.uint8 else batch


def show_grid(images: torch.Tensor | np.ndarray, titles: Sequence[str] = (), columns: int = 8,
              cell_inches: float = 1.6) -> plt.Figure:
    """Show images in a grid with an optional title under each."""
    images = to_display(images)
    rows = int(np.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * cell_inches, rows * (cell_inches + 0.3)), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index])
            if index < len(titles):
                axis.set_title(titles[index], fontsize=8)
    figure.tight_layout()
    return figure


def plot_class_balance(frame: pd.DataFrame) -> plt.Figure:
    """Bar chart of female/male counts per split."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    sns.countplot(data=frame, x="split", hue="gender", order=["train", "val", "test"], hue_order=["female", "male"], ax=axis)
    axis.set_title("Class balance per split")
    figure.tight_layout()
    return figure


def plot_group_balance(frame: pd.DataFrame, columns: Sequence[str]) -> plt.Figure:
    """One bar chart per group attribute, split by gender (missing values shown as 'unknown')."""
    columns = [column for column in columns if column in frame.columns]
    figure, axes = plt.subplots(1, max(len(columns), 1), figsize=(5 * max(len(columns), 1), 3.5), squeeze=False)
    for axis, column in zip(axes.flat, columns):
        values = frame[column].astype("string").fillna("unknown")
        order = sorted(values.unique(), key=lambda v: (v == "unknown", _sort_key(v)))
        sns.countplot(x=values, hue=frame["gender"], order=order, hue_order=["female", "male"], ax=axis)
        axis.set_title(f"Group balance: {column}")
        axis.tick_params(axis="x", rotation=45)
    figure.tight_layout()
    return figure


def _sort_key(value: str) -> tuple:
    head = value.split("-")[0].rstrip("+")
    return (0, int(head), "") if head.isdigit() else (1, 0, value)


def show_before_after(before: torch.Tensor | np.ndarray, after: torch.Tensor | np.ndarray, title: str,
                      cell_inches: float = 1.6) -> plt.Figure:
    """Two rows: the original images and the same images after a transform."""
    before, after = to_display(before), to_display(after)
    columns = len(before)
    figure, axes = plt.subplots(2, columns, figsize=(columns * cell_inches, 2 * cell_inches + 0.6), squeeze=False)
    for row, images, label in ((0, before, "before"), (1, after, "after")):
        for column in range(columns):
            axes[row, column].imshow(images[column])
            axes[row, column].axis("off")
        axes[row, 0].set_title(label, fontsize=9, loc="left")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def sample_faces(frame: pd.DataFrame, count: int, size: int = 96, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A reproducible random sample of faces from a manifest, with "gender, split" titles."""
    rows = frame.sample(n=min(count, len(frame)), random_state=seed)
    images = np.stack([np.asarray(square_resize(load_rgb(path).image, size)) for path in rows["path"]])
    titles = [f"{gender}, {split}" + (f", {age}" if age == age else "")
              for gender, split, age in zip(rows["gender"], rows["split"], rows.get("age", [float("nan")] * len(rows)))]
    return images, titles
