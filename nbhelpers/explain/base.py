"""The explainer interface every method implements: ``Explainer(model)(images, targets)`` -> ``Attribution``.

Shared by the concrete explainers (``nbhelpers.explain.explainers``), the B-cos explanations
(``nbhelpers.explain.bcos``), the metrics and the predictor: how targets are chosen
(``select_targets``), how a model's logits become probabilities (``model_probabilities``) and which
models take the B-cos input encoding (``is_bcos_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn

from nbhelpers.models.inference import class_probabilities as model_probabilities  # re-exported for explainers

__all__ = ["Attribution", "Targets", "Explainer", "select_targets", "model_probabilities", "is_bcos_model"]

Targets = str | int | torch.Tensor


@dataclass
class Attribution:
    """Explanations of one batch (detached, on the input's device).

    ``maps`` (N, H, W) float32 at input resolution (the positive part is the evidence for the target;
    CAM maps are non-negative, B-cos maps are signed), ``targets`` (N,) the explained classes,
    ``probabilities`` (N, classes) of the unperturbed input, ``predicted`` (N,), ``method`` its name.
    """

    maps: torch.Tensor
    targets: torch.Tensor
    probabilities: torch.Tensor
    predicted: torch.Tensor
    method: str

    @property
    def target_probabilities(self) -> torch.Tensor:
        """Probability of the explained class, (N,)."""
        return self.probabilities.gather(1, self.targets[:, None]).squeeze(1)


def is_bcos_model(model: nn.Module) -> bool:
    """True for models whose run spec (``model.spec``, attached by ``create_model``) says B-cos: they take the
    6-channel B-cos encoding and their explanation is exact. Models without a spec are not B-cos models."""
    spec = getattr(model, "spec", None)
    return bool(spec is not None and spec.is_bcos)


def select_targets(logits: torch.Tensor, target: Targets) -> torch.Tensor:
    """Class index per row: ``"predicted"``, ``"other"`` (the runner-up class), an int, or a tensor of indices."""
    count, classes = logits.shape
    if isinstance(target, str):
        if target == "predicted":
            return logits.argmax(dim=1)
        if target == "other":
            if classes < 2:
                raise ValueError("target='other' needs at least two classes")
            return logits.topk(2, dim=1).indices[:, 1]
        raise ValueError(f"target must be 'predicted', 'other', an int or a tensor, not {target!r}")
    targets = torch.as_tensor(target, device=logits.device).long().reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(count)
    if targets.shape != (count,):
        raise ValueError(f"need one target per image ({count}), got {tuple(targets.shape)}")
    if bool(((targets < 0) | (targets >= classes)).any()):
        raise ValueError(f"target classes must lie in 0..{classes - 1}, got {targets.tolist()}")
    return targets


class Explainer:
    """Base class: ``explainer(images, targets)`` -> ``Attribution``; subclasses implement ``_explain``.

    ``targets``: ``"predicted"``, ``"other"`` (runner-up class), a class index, or one index per image.
    The model is put in eval mode (explanations use the running batch-norm statistics).
    """

    name: ClassVar[str] = ""

    def __init__(self, model: nn.Module) -> None:
        if not self.supports(model):
            raise ValueError(f"the {self.name!r} explainer does not apply to {type(model).__name__}")
        self.model = model.eval()
        self.released = False

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """Whether this method can explain ``model``."""
        return True

    def __call__(self, images: torch.Tensor, targets: Targets = "predicted") -> Attribution:
        if self.released:
            raise RuntimeError(f"the {self.name!r} explainer was released; create a new one")
        if images.dim() != 4:
            raise ValueError(f"expected a batch of shape (N, C, H, W), got {tuple(images.shape)}")
        device = next(self.model.parameters()).device
        maps, logits, chosen = self._explain(images.detach().to(device), targets)
        if maps.shape != (images.shape[0], *images.shape[-2:]):
            raise RuntimeError(f"{self.name}: map shape {tuple(maps.shape)} does not match the input {tuple(images.shape)}")
        logits = logits.detach()
        return Attribution(maps=maps.detach().float(), targets=chosen, probabilities=model_probabilities(self.model, logits),
                           predicted=logits.argmax(dim=1), method=self.name)

    def _explain(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(maps (N, H, W), logits (N, classes), explained classes (N,)) for a batch on the model's device."""
        raise NotImplementedError

    def release(self) -> None:
        """Remove every hook this explainer registered; calling it twice is harmless."""
        self.released = True

    def __enter__(self) -> "Explainer":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.release()  # returns None: exceptions propagate
