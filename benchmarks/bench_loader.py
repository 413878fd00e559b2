"""Benchmark: cached memory-mapped loader vs decoding JPEGs every epoch, side by side in one run.

    python benchmarks/bench_loader.py --data ../shared/data/UTKFace.tar.gz --size 64 --images 4000

Prints images/second of both paths (same images, same batch transform), their ratio, and the
cached loader's time per batch next to one training step of a ResNet-18 on that batch, to show
whether loading is ever the bottleneck. Goal: cached >= 10x the JPEG path at 64 px.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision

from nbhelpers.data.cache import build_cache
from nbhelpers.data.datasets import build_manifest
from nbhelpers.data.images import load_rgb, square_resize
from nbhelpers.data.loaders import CachedBatchLoader, labels_of
from nbhelpers.data.transforms import build_pipeline, channel_stats


class JpegDataset(torch.utils.data.Dataset):
    """The baseline: decode and resize each JPEG on every access."""

    def __init__(self, cache, rows: np.ndarray, size: int) -> None:
        self.paths = cache.frame["path"].to_numpy()[rows]
        self.labels = labels_of(cache, rows)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = square_resize(load_rgb(self.paths[index]).image, self.size)
        return torch.from_numpy(np.asarray(image).copy()), int(self.labels[index])


def images_per_second(loader, transform=None) -> float:
    count, start = 0, time.perf_counter()
    for images, _ in loader:
        if transform is not None:
            transform(images)
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/UTKFace.tar.gz")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=4000, help="files read from the archive")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the JPEG path")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame, _, _ = build_manifest("utkface", args.data, Path(work), limit=args.images)
        start = time.perf_counter()
        cache = build_cache(frame, "utkface", args.size, Path(work) / "cache")
        build_seconds = time.perf_counter() - start
        rows = cache.split_indices("train")
        transform = build_pipeline("pad_crop_flip", True, *channel_stats(cache.images, rows))
        cached = CachedBatchLoader(cache, "train", args.batch_size, shuffle=True)
        jpeg = torch.utils.data.DataLoader(JpegDataset(cache, rows, args.size), args.batch_size, shuffle=True,
                                           num_workers=args.workers)
        images_per_second(cached)  # warm the page cache for both paths alike
        rates = {(path, augmented): images_per_second(loader, transform if augmented else None)
                 for path, loader in (("jpeg", jpeg), ("cached", cached)) for augmented in (False, True)}
        cached_rate = rates["cached", True]
        model = torchvision.models.resnet18(num_classes=2)
        optimizer = torch.optim.Adam(model.parameters())
        images, labels = next(iter(cached))
        inputs = transform(images)
        start = time.perf_counter()
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
        step_seconds = (time.perf_counter() - start) / 3
    batch_seconds = args.batch_size / cached_rate
    print(f"train images: {len(rows)} at {args.size}px, batch {args.batch_size}; cache built in {build_seconds:.1f} s")
    print(f"{'images/s':>38} {'load only':>10} {'+ augment':>10}")
    for path, label in (("jpeg", f"JPEG decode per epoch ({args.workers} workers)"), ("cached", "cached memory-mapped loader")):
        print(f"{label:>38} {rates[path, False]:10.0f} {rates[path, True]:10.0f}")
    print(f"{'ratio cached / JPEG (goal >= 10x)':>38} {rates['cached', False] / rates['jpeg', False]:9.1f}x "
          f"{rates['cached', True] / rates['jpeg', True]:9.1f}x")
    print(f"cached load+augment per batch:     {batch_seconds * 1000:10.1f} ms")
    print(f"ResNet-18 training step per batch: {step_seconds * 1000:10.1f} ms  "
          f"(loading = {100 * batch_seconds / step_seconds:.1f}% of a step)")


if __name__ == "__main__":
    main()
