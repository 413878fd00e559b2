"""Benchmark: ``fit_one_cycle`` vs a bare PyTorch loop, same model, data and batch size, in one run.

    python benchmarks/bench_training.py --model resnet9 --width 24 --size 48 --batches 20 --rounds 3

Both sides train a freshly seeded model from the same cached UTKFace batches with Adam, a
one-cycle schedule stepped every batch and gradient clipping by value; the bare loop is the
minimum any training loop does. ``fit_one_cycle`` adds progress bars, loss bookkeeping, a
per-epoch validation pass over one batch and (with ``--checkpoint``) the atomic ``last.pt`` /
``best.pt`` writes. Rounds alternate the order of the two sides and the median is reported.
Goal: ``fit_one_cycle`` >= 0.95 of the bare loop's images/second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbhelpers.cache import ImageCache, build_cache
from nbhelpers.datasets import build_manifest
from nbhelpers.device import get_default_device, to_device
from nbhelpers.loaders import CachedBatchLoader
from nbhelpers.manifest import manifest_path, read_manifest
from nbhelpers.models import create_model
from nbhelpers.train import set_seed
from nbhelpers.training import fit_one_cycle
from nbhelpers.transforms import build_pipeline, channel_stats


def bare_loop(model, loader, max_lr: float, grad_clip: float, device: torch.device) -> None:
    """Adam + one-cycle + clipping with nothing else: the reference speed."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), max_lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, epochs=1, steps_per_epoch=len(loader))
    for images, labels in loader:
        images, labels = to_device((images, labels), device)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def load_cache(data: str, data_dir: str, size: int) -> ImageCache:
    path = manifest_path("utkface", data_dir)
    if not path.is_file():
        build_manifest("utkface", data, data_dir=data_dir)
    return build_cache(read_manifest(path), "utkface", size, Path(data_dir) / "cache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/UTKFace.tar.gz")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--model", default="resnet9")
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20, help="training batches per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint", action="store_true", help="let fit_one_cycle write last.pt/best.pt")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = get_default_device(args.device)
    cache = load_cache(args.data, args.data_dir, args.size)
    mean, std = channel_stats(cache.images, cache.split_indices("train"))
    limit = args.batches * args.batch_size

    def loaders():
        train = CachedBatchLoader(cache, "train", args.batch_size, shuffle=True, seed=0, limit=limit,
                                  transform=build_pipeline("pad_crop_flip", True, mean, std))
        val = CachedBatchLoader(cache, "val", args.batch_size, limit=args.batch_size,
                                transform=build_pipeline("pad_crop_flip", False, mean, std))
        return train, val

    def fresh_model():
        set_seed(0)
        kwargs = {"width": args.width} if args.width else {}
        return create_model(args.model, **kwargs)

    def run_bare() -> float:
        train, _ = loaders()
        return timed(lambda: bare_loop(fresh_model(), train, 0.01, 0.1, device))

    def run_fit() -> float:
        train, val = loaders()
        with tempfile.TemporaryDirectory() as folder:
            return timed(lambda: fit_one_cycle(1, 0.01, fresh_model(), train, val, 1e-4, 0.1, device=device,
                                               checkpoint_dir=folder if args.checkpoint else None,
                                               progress=True, verbose=False))

    run_bare()  # warm-up: first-call allocations and kernel selection
    bare, fit = [], []
    for round_index in range(args.rounds):
        order = (run_bare, run_fit) if round_index % 2 == 0 else (run_fit, run_bare)
        for function in order:
            (bare if function is run_bare else fit).append(function())
    images = limit
    bare_rate, fit_rate = images / statistics.median(bare), images / statistics.median(fit)
    print(f"model {args.model} width {args.width} at {args.size} px, batch {args.batch_size}, {args.batches} batches, "
          f"device {device}, {args.rounds} rounds (median); checkpoint writes: {args.checkpoint}")
    print(f"bare loop     {bare_rate:8.1f} img/s   (times {np.round(bare, 2).tolist()})")
    print(f"fit_one_cycle {fit_rate:8.1f} img/s   (times {np.round(fit, 2).tolist()}, incl. 1 validation batch)")
    print(f"ratio fit_one_cycle / bare = {fit_rate / bare_rate:.3f}   (goal >= 0.95)")


if __name__ == "__main__":
    main()
