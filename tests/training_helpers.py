"""Tiny separable data and models for the training tests (importable by subprocesses too)."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, TensorDataset

from nbhelpers.models.base import ImageClassificationBase


class TinyNet(ImageClassificationBase):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 16), torch.nn.ReLU(),
                                          torch.nn.Dropout(0.1), torch.nn.Linear(16, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def separable_data(count: int, seed: int) -> TensorDataset:
    """Class 1 images are brighter than class 0 images, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=generator)
    images = torch.randn(count, 3, 4, 4, generator=generator) * 0.5 + labels.view(-1, 1, 1, 1) * 1.0
    return TensorDataset(images, labels)


def loaders(seed: int = 0, batch_size: int = 16) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(separable_data(256, seed), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    return train, DataLoader(separable_data(64, seed + 1), batch_size=32)


class EpochLoader:
    """A shuffling loader whose order depends only on (seed, epoch), like DistributedSampler.set_epoch."""

    def __init__(self, loader: DataLoader, seed: int = 0, die_at: tuple[int, int] | None = None) -> None:
        self.loader, self.seed, self.die_at, self.epoch = loader, seed, die_at, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.generator.manual_seed(self.seed * 1000 + epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if (self.epoch, index) == self.die_at:
                os._exit(17)  # as abrupt as a kill: no clean-up, no flush
            yield batch
