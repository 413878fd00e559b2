"""``ImageClassificationBase``: the training and validation steps of the classic ResNet-9 tutorial.

Every model of the suite derives from it, so ``fit_one_cycle`` can train any of them. A model that
trains with another loss (the B-cos models use binary cross-entropy on one-hot targets) overrides
``loss``. Every training loss takes either int64 class labels (N,) or float class-probability targets
(N, classes), the soft targets of knowledge distillation (Hinton, Vinyals and Dean, "Distilling the
Knowledge in a Neural Network", 2015; ``nbhelpers.training.distillation``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as functional

__all__ = ["ImageClassificationBase", "accuracy", "target_probabilities"]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of rows whose arg-max equals the label."""
    return (logits.argmax(dim=1) == labels).float().mean()


def target_probabilities(labels: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, classes) targets of dtype ``dtype``: float soft targets (N, classes) as they are, int64 labels (N,)
    one-hot encoded."""
    if labels.is_floating_point() and labels.dim() == 2:
        return labels.to(dtype)
    return functional.one_hot(labels, classes).to(dtype)


class ImageClassificationBase(nn.Module):
    """Base class with ``loss``, ``probabilities``, ``training_step``, ``validation_step`` and ``epoch_end``.

    ``nbhelpers.training.fit.evaluate`` reduces the ``validation_step`` outputs of an epoch (size-weighted,
    across ranks in distributed runs).
    """

    label_smoothing: float = 0.0  # set by run_training from TrainConfig.label_smoothing

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (with ``label_smoothing``) against int64 labels (N,) or float soft targets (N, classes);
        smoothing mixes soft targets with the uniform distribution as it does one-hot ones. Override for other
        training losses."""
        if labels.is_floating_point():
            labels = labels.to(logits.dtype)
        return functional.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities from logits (softmax); override to match another loss."""
        return logits.softmax(dim=1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], forward: nn.Module | None = None) -> torch.Tensor:
        """Loss of one training batch; ``forward`` is a wrapper to call instead (e.g. DistributedDataParallel)."""
        images, labels = batch
        return self.loss((forward or self)(images), labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss, accuracy and size of one validation batch (detached)."""
        images, labels = batch
        logits = self(images)
        return {"val_loss": self.loss(logits, labels).detach(), "val_acc": accuracy(logits, labels),
                "count": torch.tensor(float(labels.shape[0]))}

    def epoch_end(self, epoch: int, result: dict[str, float]) -> None:
        """Print one line per epoch, as the tutorial does."""
        lr = result.get("lrs", [float("nan")])[-1]
        print(f"Epoch [{epoch}], last_lr: {lr:.5f}, train_loss: {result.get('train_loss', float('nan')):.4f}, "
              f"val_loss: {result['val_loss']:.4f}, val_acc: {result['val_acc']:.4f}")
