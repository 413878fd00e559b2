"""Figures of a training run: loss curves, accuracy, learning rate per batch, confusion matrix,
and a grid of single test images with their predicted probability."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from nbhelpers.data.loaders import CLASSES
from nbhelpers.data.plots import show_grid
from nbhelpers.training.result import TrainingResult

__all__ = ["plot_history", "plot_confusion", "show_predictions", "show_split_predictions", "metrics_table"]


def plot_history(history: list[dict[str, Any]], title: str = "") -> plt.Figure:
    """Train/val loss per epoch, val accuracy per epoch, and the learning rate of every batch."""
    figure, (loss_axis, accuracy_axis, lr_axis) = plt.subplots(1, 3, figsize=(14, 3.5))
    epochs = [result.get("epoch", index) for index, result in enumerate(history)]
    loss_axis.plot(epochs, [r["train_loss"] for r in history], "-o", label="train")
    loss_axis.plot(epochs, [r["val_loss"] for r in history], "-o", label="val")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss_axis.legend()
    accuracy_axis.plot(epochs, [r["val_acc"] for r in history], "-o", color="C2")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
    lr_axis.plot(np.concatenate([r["lrs"] for r in history]))
    lr_axis.set(xlabel="batch", ylabel="learning rate", title="Learning rate (one-cycle)")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_confusion(metrics: dict[str, Any], title: str = "", classes: Sequence[str] = CLASSES) -> plt.Figure:
    """Heat map of the confusion matrix (rows: true class, columns: predicted)."""
    figure, axis = plt.subplots(figsize=(3.8, 3.2))
    sns.heatmap(np.asarray(metrics["confusion_matrix"]), annot=True, fmt="d", cmap="Blues", cbar=False,
                xticklabels=classes, yticklabels=classes, ax=axis)
    axis.set(xlabel="predicted", ylabel="true", title=title or f"accuracy {metrics['accuracy']:.3f}")
    figure.tight_layout()
    return figure


def show_predictions(images: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, count: int = 16,
                     seed: int = 0, classes: Sequence[str] = CLASSES) -> plt.Figure:
    """A grid of test faces titled with the predicted class, its probability and the true class."""
    pick = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    titles = []
    for index in pick:
        predicted = int(probabilities[index].argmax())
        mark = "" if predicted == labels[index] else f" (true {classes[labels[index]]})"
        titles.append(f"{classes[predicted]} {probabilities[index, predicted]:.2f}{mark}")
    return show_grid(images[pick], titles, columns=8)


def show_split_predictions(trained: TrainingResult, split: str = "test", count: int = 16, seed: int = 0) -> plt.Figure:
    """``show_predictions`` for the faces of one split of a ``run_training`` result."""
    predictions = trained.predictions[split]
    return show_predictions(trained.cache.images[predictions.rows], predictions.probabilities, predictions.labels,
                            count, seed)


def metrics_table(results: dict[str, dict[str, Any]]) -> "Any":
    """A DataFrame with one row per (model, split): accuracy, per-class and balanced accuracy."""
    import pandas as pd

    rows = [{"model": model, "split": split, "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
             **{f"{name}_accuracy": value for name, value in m["per_class_accuracy"].items()}, "count": m["count"]}
            for model, splits in results.items() for split, m in splits.items()]
    return pd.DataFrame(rows).round(4)
