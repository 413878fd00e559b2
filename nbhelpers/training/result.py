"""The two result types of training: ``TrainedModel`` (a model with its run spec and checkpoint: what
the run index loads and what the analysis and prediction code use) and ``TrainingResult`` (what
``run_training`` returns: the trained model plus its history, metrics, predictions and the image cache
it was evaluated on). A loaded run is a ``TrainedModel`` and has no cache, history or predictions;
functions that need them take a ``TrainingResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nbhelpers.data.transforms import build_pipeline
from nbhelpers.models import RunSpec, model_spec

__all__ = ["SplitPredictions", "TrainedModel", "TrainingResult"]


@dataclass
class SplitPredictions:
    """Predicted probabilities (N, classes), true labels (N) and manifest rows (N) of one split."""

    probabilities: np.ndarray
    labels: np.ndarray
    rows: np.ndarray


@dataclass
class TrainedModel:
    """A model built by ``create_model`` (its ``RunSpec`` attached as ``model.spec``), the checkpoint that
    holds exactly these weights and the run id in the run index (empty when not saved)."""

    model: torch.nn.Module
    checkpoint: Path | None = None
    run_id: str = ""

    @property
    def spec(self) -> RunSpec:
        """The run spec attached to the model: preprocessing, classes, CAM layer, abstention threshold."""
        return model_spec(self.model)

    @property
    def name(self) -> str:
        """The registered model name."""
        return self.spec.model

    def eval_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The run's evaluation preprocessing: uint8 NHWC batches of any size -> float NCHW model input."""
        spec = self.spec
        return build_pipeline(spec.pipeline, False, spec.mean, spec.std, input_size=spec.input_size)

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) faces of any size -> the model's float (N, C, size, size) input on its device."""
        return self.eval_transform()(torch.as_tensor(np.asarray(images))).to(next(self.model.parameters()).device)

    @property
    def explanation_entry(self) -> tuple[str, torch.nn.Module, Any]:
        """``(name, model, preprocess)`` as ``evaluate_explanations`` takes it."""
        return self.name, self.model, self.preprocess


@dataclass
class TrainingResult:
    """What ``run_training`` returns: the trained model with its history, val/test metrics and predictions,
    the image cache it was evaluated on, the seconds the run took and the distillation teacher (its run id or
    checkpoint; empty without distillation)."""

    trained: TrainedModel
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[str, SplitPredictions] = field(default_factory=dict)
    cache: Any = field(default=None, repr=False)  # the ImageCache the run was evaluated on
    seconds: float = 0.0
    teacher: str = ""

    @property
    def model(self) -> torch.nn.Module:
        """The trained model (``model.spec`` is its run spec)."""
        return self.trained.model

    @property
    def spec(self) -> RunSpec:
        """The run spec of the trained model."""
        return self.trained.spec

    @property
    def name(self) -> str:
        """The registered model name."""
        return self.trained.name

    @property
    def epochs_run(self) -> int:
        """Epochs trained (resumed epochs included)."""
        return len(self.history)

    def loader(self, split: str, batch_size: int = 256) -> Any:
        """A ``CachedBatchLoader`` of ``split`` with the run's evaluation preprocessing."""
        from nbhelpers.data.loaders import CachedBatchLoader

        return CachedBatchLoader(self.cache, split, batch_size, transform=self.trained.eval_transform())

    def summary(self) -> dict[str, Any]:
        """The key figures of the run, for ``reports/summary.json`` and the run index."""
        test, val, spec = self.metrics.get("test", {}), self.metrics.get("val", {}), self.spec
        checkpoint = self.trained.checkpoint
        return {"test_accuracy": test.get("accuracy"), "test_per_class_accuracy": test.get("per_class_accuracy"),
                "test_balanced_accuracy": test.get("balanced_accuracy"), "test_count": test.get("count"),
                "val_accuracy": val.get("accuracy"), "epochs_run": self.epochs_run, "seconds": round(self.seconds, 1),
                "input_size": spec.input_size, "pipeline": spec.pipeline, "pretrained_source": spec.pretrained_source,
                "checkpoint": str(checkpoint) if checkpoint else None, "run_id": self.trained.run_id,
                **({"teacher": self.teacher} if self.teacher else {})}
