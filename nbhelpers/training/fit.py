"""Training core: ``fit_one_cycle`` with early stopping, atomic checkpoints and exact resume.

One-cycle learning rate (Smith & Topin, "Super-Convergence", 2018) stepped every batch, weight
decay, gradient clipping, Adam by default, as in the classic ResNet-9 tutorial. Mixed precision on
CUDA, plain float32 elsewhere. Channels-last memory format (model and 4-D input batches) by default
on CUDA and CPU: on a 2-core CPU it trains EfficientNet-Lite0 at 96 px about 1.5-1.7x faster, the
ResNets 1.05-1.15x (``benchmarks/bench_training.py``), with the same losses up to float rounding.
Under ``torchrun`` the model is wrapped in DistributedDataParallel and the logged metrics are
averaged over all ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.distributed as distributed

from nbhelpers.models.base import ImageClassificationBase
from nbhelpers.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from nbhelpers.utils.device import get_default_device, to_device
from nbhelpers.utils.progress import progress_bar

__all__ = ["EarlyStopping", "evaluate", "fit_one_cycle", "is_main_process", "parameter_groups"]


def is_main_process() -> bool:
    """True outside distributed runs and on rank 0 inside them."""
    return not distributed.is_initialized() or distributed.get_rank() == 0


def _all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks (a no-op outside distributed runs)."""
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
        """What a checkpoint needs to continue early stopping."""
        return {"best": self.best, "bad_epochs": self.bad_epochs, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by ``state_dict``."""
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self.best_epoch, self.best_state = state["best_epoch"], state["best_state"]


def _use_channels_last(channels_last: bool | None, device: torch.device) -> bool:
    """Resolve the ``channels_last`` argument: ``None`` means on for CUDA and CPU, off elsewhere (MPS)."""
    return device.type in ("cuda", "cpu") if channels_last is None else bool(channels_last)


def _is_channels_last(model: torch.nn.Module) -> bool:
    """Whether the model's 4-D weights are in channels-last format (as ``fit_one_cycle`` leaves them)."""
    return any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in model.parameters())


def _prepare(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """Move ``batch`` to ``device``; with ``channels_last``, put a 4-D image tensor (its first item) in that format."""
    batch = to_device(batch, device)
    if channels_last and isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor) \
            and batch[0].dim() == 4:
        batch = type(batch)((batch[0].contiguous(memory_format=torch.channels_last), *batch[1:]))
    return batch


@torch.no_grad()
def evaluate(model: ImageClassificationBase, loader: Iterable, device: torch.device | None = None,
             progress: bool = False, channels_last: bool | None = None) -> dict[str, float]:
    """Validation loss and accuracy over ``loader`` (averaged over ranks in distributed runs).

    ``channels_last``: feed 4-D image batches in channels-last format; ``None`` follows the model's weights.
    """
    device = device or next(model.parameters()).device
    channels_last = _is_channels_last(model) if channels_last is None else channels_last
    model.eval()
    outputs = [model.validation_step(_prepare(batch, device, channels_last))
               for batch in progress_bar(loader, desc="evaluate", leave=False, disable=not progress)]
    counts = torch.stack([output["count"] for output in outputs]).to(device)
    sums = torch.stack([(torch.stack([o[key].float() for o in outputs]) * counts).sum() for key in ("val_loss", "val_acc")])
    totals = _all_reduce_sum(torch.cat([sums, counts.sum().view(1)]))
    return {"val_loss": float(totals[0] / totals[2]), "val_acc": float(totals[1] / totals[2])}


def _autocast(device: torch.device) -> torch.autocast:
    """Mixed precision on CUDA (bfloat16 where supported, else float16), float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


@dataclass
class _Trainer:
    """One training run: the model, the module to call (DDP wrapper or the model), optimizer, schedule, settings."""

    model: ImageClassificationBase
    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    scaler: torch.amp.GradScaler
    device: torch.device
    grad_clip: float | None
    channels_last: bool
    progress: bool

    def step(self, batch: Any) -> torch.Tensor:
        """Forward, backward, gradient clipping and optimizer step on one batch; return the detached loss."""
        with _autocast(self.device):
            loss = self.model.training_step(_prepare(batch, self.device, self.channels_last), self.forward)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_value_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach().float()

    def epoch(self, epoch: int, train_dl: Iterable, val_dl: Iterable) -> dict[str, Any]:
        """Train one epoch, then validate; the result has ``train_loss``, ``val_loss``, ``val_acc``, ``lrs``, ``epoch``."""
        if hasattr(train_dl, "set_epoch"):
            train_dl.set_epoch(epoch)
        self.model.train()
        losses, lrs = [], []
        for batch in progress_bar(train_dl, desc=f"epoch {epoch}", leave=False, disable=not self.progress):
            loss = self.step(batch)
            lrs.append(self.optimizer.param_groups[0]["lr"])
            self.scheduler.step()
            losses.append(loss)
        result = evaluate(self.model, val_dl, self.device, channels_last=self.channels_last)
        count = torch.tensor(float(len(losses)), device=self.device)
        loss_sum = _all_reduce_sum(torch.stack([torch.stack(losses).sum(), count]))
        result.update(train_loss=float(loss_sum[0] / loss_sum[1]), lrs=lrs, epoch=epoch)
        return result

    def save(self, checkpoint_dir: Path, payload: dict[str, Any], improved: bool) -> None:
        """Write ``last.pt`` (model, optimizer, schedule and RNG states added to ``payload``), and ``best.pt`` if improved."""
        payload = {"model_state": self.model.state_dict(), **payload, "optimizer_state": self.optimizer.state_dict(),
                   "scheduler_state": self.scheduler.state_dict(), "rng": rng_state()}
        save_checkpoint(checkpoint_dir / "last.pt", payload)
        if improved:
            save_checkpoint(checkpoint_dir / "best.pt", {**payload, "early_stopping": None})


def parameter_groups(model: torch.nn.Module, max_lr: float, head: tuple[str, float] | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups, each with its peak ``lr``: one group at ``max_lr``, or with ``head`` =
    (parameter-name prefix, scale) the backbone at ``max_lr`` and the head at ``scale * max_lr``
    (discriminative fine-tuning, Howard and Ruder, ACL 2018). Raises ``ValueError`` if no parameter has the prefix."""
    parameters = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    if head is None or head[1] == 1.0:
        return [{"params": [parameter for _, parameter in parameters], "lr": max_lr}]
    prefix, scale = head
    in_head = [parameter for name, parameter in parameters if name.startswith(prefix)]
    if not in_head:
        raise ValueError(f"no parameter of {type(model).__name__} starts with the head prefix {prefix!r}")
    rest = [parameter for name, parameter in parameters if not name.startswith(prefix)]
    return [{"params": rest, "lr": max_lr}, {"params": in_head, "lr": scale * max_lr}]


def _trainer(model: ImageClassificationBase, steps_per_epoch: int, epochs: int, max_lr: float, weight_decay: float,
             grad_clip: float | None, opt_func: Callable[..., torch.optim.Optimizer], device: torch.device,
             channels_last: bool, progress: bool, head: tuple[str, float] | None = None) -> _Trainer:
    """Move (and with ``channels_last`` convert) the model, wrap it for DDP, build optimizer, schedule and scaler."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # only 4-D weights change; other models are untouched
    forward = model
    if distributed.is_initialized():
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    groups = parameter_groups(model, max_lr, head)
    optimizer = opt_func(groups, max_lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, [group["lr"] for group in groups], epochs=epochs,
                                                    steps_per_epoch=steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    return _Trainer(model, forward, optimizer, scheduler, scaler, device, grad_clip, channels_last, progress)


_RESUME_KEYS = ("optimizer_state", "scheduler_state", "rng", "epoch", "history")


def _resume(path: Path, trainer: _Trainer, early_stopping: EarlyStopping | None,
            metadata: dict[str, Any] | None) -> tuple[int, list[dict]]:
    """Load ``last.pt`` into the run (``load_state_dict`` copies into the model's own memory format)."""
    payload = load_checkpoint(path)
    missing = [key for key in _RESUME_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: cannot resume from it, it lacks {', '.join(missing)}; delete it to start "
                              "the run afresh, or pass resume=False")
    if metadata and payload["metadata"].get("model") != metadata.get("model"):
        raise CheckpointError(f"{path}: holds a {payload['metadata'].get('model')!r} run, not {metadata.get('model')!r}; "
                              "use another checkpoint_dir or resume=False")
    trainer.model.load_state_dict(payload["model_state"])
    trainer.optimizer.load_state_dict(payload["optimizer_state"])
    trainer.scheduler.load_state_dict(payload["scheduler_state"])
    if early_stopping is not None and payload.get("early_stopping"):
        early_stopping.load_state_dict(payload["early_stopping"])
    restore_rng_state(payload["rng"])
    return payload["epoch"] + 1, payload["history"]


def fit_one_cycle(epochs: int, max_lr: float, model: ImageClassificationBase, train_dl: Iterable, val_dl: Iterable,
                  weight_decay: float = 0.0, grad_clip: float | None = None,
                  opt_func: Callable[..., torch.optim.Optimizer] = torch.optim.Adam, *,
                  early_stopping: EarlyStopping | None = None, checkpoint_dir: str | Path | None = None,
                  metadata: dict[str, Any] | None = None, resume: bool = True, device: torch.device | None = None,
                  progress: bool = True, verbose: bool = True, channels_last: bool | None = None,
                  head: tuple[str, float] | None = None) -> list[dict[str, Any]]:
    """Train with a one-cycle schedule stepped every batch; return one result dict per epoch.

    Each result has ``train_loss``, ``val_loss``, ``val_acc`` and ``lrs`` (the learning rate of
    every batch). ``head`` = (parameter-name prefix, scale) gives the classifier head a peak rate of
    ``scale * max_lr`` (``parameter_groups``). With ``checkpoint_dir``, ``last.pt`` is saved after every epoch and ``best.pt``
    when the monitored metric improves; a later call with ``resume=True`` continues from ``last.pt``.
    ``channels_last`` (``None``: on for CUDA and CPU) converts the model's 4-D weights and every 4-D
    input batch to channels-last memory format; the model is left in it. Its checkpoints load into
    any model (``load_state_dict`` copies values, not strides). Losses match a contiguous run up to
    float rounding, except that dropout applied to a 4-D activation draws its mask in memory order
    (the suite's models drop out only after ``Flatten``).
    """
    device = device or get_default_device()
    show = progress and is_main_process()
    trainer = _trainer(model, len(train_dl), epochs, max_lr, weight_decay, grad_clip, opt_func, device,
                       _use_channels_last(channels_last, device), show, head)
    tracker = early_stopping or EarlyStopping(patience=epochs + 1)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    start_epoch, history = 0, []
    if checkpoint_dir and resume and (checkpoint_dir / "last.pt").is_file():
        start_epoch, history = _resume(checkpoint_dir / "last.pt", trainer, tracker, metadata)
    for epoch in progress_bar(range(start_epoch, epochs), desc="epochs", disable=not show, initial=start_epoch,
                              total=epochs):
        result = trainer.epoch(epoch, train_dl, val_dl)
        history.append(result)
        if verbose and is_main_process():
            model.epoch_end(epoch, result)
        improved = tracker.improved(result[tracker.monitor])
        stop = tracker.step(epoch, result, model)
        if checkpoint_dir and is_main_process():
            trainer.save(checkpoint_dir, {"metadata": metadata or {}, "epoch": epoch, "history": history,
                                          "early_stopping": tracker.state_dict()}, improved)
        if early_stopping is not None and stop:
            break
    if early_stopping is not None:
        early_stopping.restore(model)
    return history
