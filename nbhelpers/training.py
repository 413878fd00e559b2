"""Training core: ``fit_one_cycle`` with early stopping, atomic checkpoints and exact resume.

One-cycle learning rate (Smith & Topin, "Super-Convergence", 2018) stepped every batch, weight
decay, gradient clipping, Adam by default, as in the classic ResNet-9 tutorial. Mixed precision
and channels-last on CUDA, plain float32 elsewhere. Under ``torchrun`` the model is wrapped in
DistributedDataParallel and the logged metrics are averaged over all ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.distributed as distributed
from tqdm.auto import tqdm

from nbhelpers.checkpoint import CheckpointError, load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from nbhelpers.classification_base import ImageClassificationBase
from nbhelpers.device import get_default_device, to_device

__all__ = ["EarlyStopping", "evaluate", "fit_one_cycle", "is_main_process"]


def is_main_process() -> bool:
    """True outside distributed runs and on rank 0 inside them."""
    return not distributed.is_initialized() or distributed.get_rank() == 0


def _all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if distributed.is_initialized():
        values = values.clone()
        distributed.all_reduce(values)
    return values


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; keep the best weights."""

    patience: int = 3
    min_delta: float = 0.0
    monitor: str = "val_loss"
    best: float | None = None
    bad_epochs: int = 0
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.monitor.endswith("loss") else value > self.best + self.min_delta

    def step(self, epoch: int, result: dict[str, float], model: torch.nn.Module) -> bool:
        """Record an epoch's result; return True when training should stop."""
        value = result[self.monitor]
        if self.improved(value):
            self.best, self.bad_epochs, self.best_epoch = value, 0, epoch
            self.best_state = {key: tensor.detach().cpu().clone() for key, tensor in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best weights seen back into ``model``."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self.best_epoch, self.best_state = state["best_epoch"], state["best_state"]


@torch.no_grad()
def evaluate(model: ImageClassificationBase, loader: Iterable, device: torch.device | None = None,
             progress: bool = False) -> dict[str, float]:
    """Validation loss and accuracy over ``loader`` (averaged over ranks in distributed runs)."""
    device = device or next(model.parameters()).device
    model.eval()
    outputs = [model.validation_step(to_device(batch, device))
               for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress)]
    counts = torch.stack([output["count"] for output in outputs]).to(device)
    sums = torch.stack([(torch.stack([o[key].float() for o in outputs]) * counts).sum() for key in ("val_loss", "val_acc")])
    totals = _all_reduce_sum(torch.cat([sums, counts.sum().view(1)]))
    return {"val_loss": float(totals[0] / totals[2]), "val_acc": float(totals[1] / totals[2])}


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


def _resume(path: Path, model, optimizer, scheduler, early_stopping, metadata) -> tuple[int, list[dict]]:
    payload = load_checkpoint(path)
    if metadata and payload["metadata"].get("model") != metadata.get("model"):
        raise CheckpointError(f"{path}: holds a {payload['metadata'].get('model')!r} run, not {metadata.get('model')!r}; "
                              "use another checkpoint_dir or resume=False")
    model.load_state_dict(payload["model_state"])
    optimizer.load_state_dict(payload["optimizer_state"])
    scheduler.load_state_dict(payload["scheduler_state"])
    if early_stopping is not None and payload.get("early_stopping"):
        early_stopping.load_state_dict(payload["early_stopping"])
    restore_rng_state(payload["rng"])
    return payload["epoch"] + 1, payload["history"]


def fit_one_cycle(epochs: int, max_lr: float, model: ImageClassificationBase, train_dl: Iterable, val_dl: Iterable,
                  weight_decay: float = 0.0, grad_clip: float | None = None,
                  opt_func: Callable[..., torch.optim.Optimizer] = torch.optim.Adam, *,
                  early_stopping: EarlyStopping | None = None, checkpoint_dir: str | Path | None = None,
                  metadata: dict[str, Any] | None = None, resume: bool = True, device: torch.device | None = None,
                  progress: bool = True, verbose: bool = True) -> list[dict[str, Any]]:
    """Train with a one-cycle schedule stepped every batch; return one result dict per epoch.

    Each result has ``train_loss``, ``val_loss``, ``val_acc`` and ``lrs`` (the learning rate of
    every batch). With ``checkpoint_dir``, ``last.pt`` is saved after every epoch and ``best.pt``
    when the monitored metric improves; a later call with ``resume=True`` continues from ``last.pt``.
    """
    device = device or get_default_device()
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    forward = model
    if distributed.is_initialized():
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = opt_func(model.parameters(), max_lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, epochs=epochs, steps_per_epoch=len(train_dl))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    tracker = early_stopping or EarlyStopping(patience=epochs + 1)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    start_epoch, history = 0, []
    if checkpoint_dir and resume and (checkpoint_dir / "last.pt").is_file():
        start_epoch, history = _resume(checkpoint_dir / "last.pt", model, optimizer, scheduler, tracker, metadata)
    for epoch in tqdm(range(start_epoch, epochs), desc="epochs", disable=not progress or not is_main_process(),
                      initial=start_epoch, total=epochs):
        if hasattr(train_dl, "set_epoch"):
            train_dl.set_epoch(epoch)
        model.train()
        losses, lrs = [], []
        for batch in tqdm(train_dl, desc=f"epoch {epoch}", leave=False, disable=not progress or not is_main_process()):
            batch = to_device(batch, device)
            with _autocast(device):
                loss = model.training_step(batch, forward)
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lrs.append(optimizer.param_groups[0]["lr"])
            scheduler.step()
            losses.append(loss.detach().float())
        result = evaluate(model, val_dl, device)
        loss_sum = _all_reduce_sum(torch.stack([torch.stack(losses).sum(), torch.tensor(float(len(losses)), device=device)]))
        result.update(train_loss=float(loss_sum[0] / loss_sum[1]), lrs=lrs, epoch=epoch)
        history.append(result)
        if verbose and is_main_process():
            model.epoch_end(epoch, result)
        improved = tracker.improved(result[tracker.monitor])
        stop = tracker.step(epoch, result, model)
        if checkpoint_dir and is_main_process():
            payload = {"model_state": model.state_dict(), "metadata": metadata or {}, "epoch": epoch, "history": history,
                       "optimizer_state": optimizer.state_dict(), "scheduler_state": scheduler.state_dict(),
                       "early_stopping": tracker.state_dict(), "rng": rng_state()}
            save_checkpoint(checkpoint_dir / "last.pt", payload)
            if improved:
                save_checkpoint(checkpoint_dir / "best.pt", {**payload, "early_stopping": None})
        if early_stopping is not None and stop:
            break
    if early_stopping is not None:
        early_stopping.restore(model)
    return history
