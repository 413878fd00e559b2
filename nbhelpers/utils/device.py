"""Device helpers in the style of the classic ResNet-9 tutorial: pick cuda, then mps, then cpu.

``NBHELPERS_DEVICE`` in the environment overrides the automatic choice (tests and CI use it).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import torch

__all__ = ["get_default_device", "to_device", "DeviceDataLoader"]


def get_default_device(preferred: str | None = None) -> torch.device:
    """Return ``preferred`` (or ``$NBHELPERS_DEVICE``) if given, else cuda, then mps, then cpu."""
    name = preferred or os.environ.get("NBHELPERS_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(data: Any, device: torch.device | str, non_blocking: bool = True) -> Any:
    """Move a tensor, or every tensor inside a list/tuple/dict, to ``device``."""
    if isinstance(data, (list, tuple)):
        return type(data)(to_device(item, device, non_blocking) for item in data)
    if isinstance(data, dict):
        return {key: to_device(value, device, non_blocking) for key, value in data.items()}
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=non_blocking)
    return data


class DeviceDataLoader:
    """Wrap a data loader so that every batch arrives on ``device``."""

    def __init__(self, dataloader: Iterable, device: torch.device | str) -> None:
        self.dataloader = dataloader
        self.device = torch.device(device)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.dataloader:
            yield to_device(batch, self.device)

    def __len__(self) -> int:
        return len(self.dataloader)  # type: ignore[arg-type]

