"""``TrainedModel``: the one type of a trained model, returned by ``run_training`` and by the run index.

It carries the model with the metadata of its run (name and arguments, classes, input size, pipeline
and normalisation), the checkpoint that holds exactly these weights, and, when it comes straight from
training, the history, the metrics and the predictions of each evaluated split. The analysis code
(explanations, bias study, prediction) uses it as it is: ``preprocess`` turns uint8 faces into the
model's input, ``spec`` is the ``(name, model, preprocess)`` triple the explanation metrics take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbhelpers.data.transforms import build_pipeline

__all__ = ["SplitPredictions", "TrainedModel"]


@dataclass
class SplitPredictions:
    """Predicted probabilities (N, classes), true labels (N) and manifest rows (N) of one split."""

    probabilities: np.ndarray
    labels: np.ndarray
    rows: np.ndarray


@dataclass
class TrainedModel:
    """A trained model with its run's metadata and, after training, history, metrics and predictions."""

    name: str
    model: torch.nn.Module
    metadata: dict[str, Any]
    checkpoint: Path | None = None
    run_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[str, SplitPredictions] = field(default_factory=dict)
    seconds: float = 0.0
    cache: Any = field(default=None, repr=False)  # the ImageCache it was evaluated on, when trained here

    @property
    def epochs_run(self) -> int:
        """Epochs trained (resumed epochs included)."""
        return len(self.history)

    def eval_transform(self) -> Any:
        """The run's evaluation preprocessing: uint8 NHWC batches of any size -> float NCHW model input."""
        metadata = self.metadata
        return build_pipeline(metadata["pipeline"], False, metadata["mean"], metadata["std"],
                              input_size=metadata["input_size"])

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) faces of any size -> the model's input on its device."""
        return self.eval_transform()(torch.as_tensor(np.asarray(images))).to(next(self.model.parameters()).device)

    def loader(self, split: str, batch_size: int = 256) -> Any:
        """A ``CachedBatchLoader`` of ``split`` with this run's evaluation preprocessing (needs ``cache``)."""
        from nbhelpers.data.loaders import CachedBatchLoader

        if self.cache is None:
            raise ValueError(f"{self.name}: no cache attached; this run was loaded from a checkpoint, not trained here")
        return CachedBatchLoader(self.cache, split, batch_size, transform=self.eval_transform())

    @property
    def spec(self) -> tuple[str, torch.nn.Module, Any]:
        """``(name, model, preprocess)`` as ``evaluate_explanations`` takes it."""
        return self.name, self.model, self.preprocess

    def summary(self) -> dict[str, Any]:
        """The key figures of the run, for ``reports/summary.json`` and the run index."""
        test, val = self.metrics.get("test", {}), self.metrics.get("val", {})
        return {"test_accuracy": test.get("accuracy"), "test_per_class_accuracy": test.get("per_class_accuracy"),
                "test_balanced_accuracy": test.get("balanced_accuracy"), "test_count": test.get("count"),
                "val_accuracy": val.get("accuracy"), "epochs_run": self.epochs_run, "seconds": round(self.seconds, 1),
                "input_size": self.metadata["input_size"], "pipeline": self.metadata["pipeline"],
                "pretrained_source": self.metadata.get("pretrained_source"),
                "checkpoint": str(self.checkpoint) if self.checkpoint else None, "run_id": self.run_id}
