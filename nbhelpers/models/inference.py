"""The one inference path of every model: logits to class probabilities, with optional flip test-time
augmentation (TTA: the mean of the probabilities of the input and of its horizontal mirror).

Training evaluation (``nbhelpers.training.evaluation``), the predictor, the explanation report and the
peer comparison all call these two functions, so a face gets the same probability on every path.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["class_probabilities", "flip_averaged_probabilities"]


def class_probabilities(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """(N, classes) float probabilities from (N, classes) logits: the model's own ``probabilities(logits)``
    (softmax for every model of the suite, B-cos included), or a softmax for a plain module."""
    return model.probabilities(logits) if hasattr(model, "probabilities") else logits.softmax(dim=1)


@torch.no_grad()
def flip_averaged_probabilities(model: nn.Module, inputs: torch.Tensor, flip_tta: bool = True,
                                probabilities: torch.Tensor | None = None) -> torch.Tensor:
    """(N, classes) probabilities of the model's input batch ``inputs`` (N, C, H, W, float, on the model's
    device); with ``flip_tta`` averaged with those of the mirrored batch (``inputs.flip(-1)``).

    ``probabilities``: those of ``inputs`` when already computed (e.g. by an explainer's forward pass),
    so only the mirrored batch is run again. Every pipeline's evaluation transform commutes with a
    horizontal flip (resize, per-channel normalisation, the B-cos encoding), so flipping the model input
    equals flipping the photo."""
    if probabilities is None:
        probabilities = class_probabilities(model, model(inputs).float())
    if flip_tta:
        probabilities = (probabilities + class_probabilities(model, model(inputs.flip(-1)).float())) / 2
    return probabilities
