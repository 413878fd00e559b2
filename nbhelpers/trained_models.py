"""Trained runs for the analysis notebooks (06 explanations, 07 bias, 08 predict).

The training notebooks record each run's best checkpoint in ``reports/summary.json``; the analysis
notebooks load them by model name, with the preprocessing the checkpoint's metadata describes (input
size, pipeline, normalisation, B-cos encoding), and draw faces of one split from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nbhelpers.cache import build_cache
from nbhelpers.checkpoint import model_from_checkpoint
from nbhelpers.device import get_default_device
from nbhelpers.loaders import labels_of
from nbhelpers.manifest import manifest_path, read_manifest
from nbhelpers.reports import read_summary
from nbhelpers.transforms import build_pipeline

__all__ = ["TrainedModel", "summary_checkpoints", "load_trained_models", "split_faces"]


@dataclass
class TrainedModel:
    """A model restored from its checkpoint, with the evaluation preprocessing of its run."""

    name: str
    model: torch.nn.Module
    metadata: dict[str, Any]
    checkpoint: Path

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) faces of any size -> the model's input on its device."""
        metadata = self.metadata
        transform = build_pipeline(metadata["pipeline"], False, metadata["mean"], metadata["std"],
                                   input_size=metadata["input_size"])
        return transform(torch.as_tensor(np.asarray(images))).to(next(self.model.parameters()).device)

    @property
    def spec(self) -> tuple[str, torch.nn.Module, Any]:
        """``(name, model, preprocess)`` as ``evaluate_explanations`` takes it."""
        return self.name, self.model, self.preprocess


def summary_checkpoints(reports_dir: str | Path) -> dict[str, Path]:
    """Model name -> best checkpoint of every run recorded in ``summary.json`` (later notebooks win)."""
    found: dict[str, Path] = {}
    for section in read_summary(reports_dir).values():
        if isinstance(section, dict):
            for name, run in section.items():
                if isinstance(run, dict) and run.get("checkpoint"):
                    found[name] = Path(run["checkpoint"])
    return found


def load_trained_models(reports_dir: str | Path, names: Sequence[str],
                        device: str | torch.device | None = None) -> list[TrainedModel]:
    """Load the best checkpoint of each named model; a missing run is a clear error naming the fix."""
    device = get_default_device(str(device) if device else None)
    available = summary_checkpoints(reports_dir)
    loaded = []
    for name in names:
        if name not in available:
            raise FileNotFoundError(f"{Path(reports_dir) / 'summary.json'}: no trained {name!r} run recorded "
                                    f"(have {sorted(available)}); run the notebook that trains it first (03-05)")
        model, metadata = model_from_checkpoint(available[name], map_location=device)
        loaded.append(TrainedModel(name, model.to(device).eval(), metadata, available[name]))
    return loaded


def split_faces(data_dir: str | Path, dataset: str, split: str, count: int, size: int,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` faces of ``split`` drawn with ``seed`` (all if ``count`` is 0): uint8 images, labels, manifest rows."""
    frame = read_manifest(manifest_path(dataset, data_dir))
    cache = build_cache(frame, dataset, size, Path(data_dir) / "cache")
    rows = cache.split_indices(split)
    if count and count < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))
    return np.asarray(cache.images[rows]), labels_of(cache, rows), rows
