"""Benchmark: ``fit_one_cycle`` training speed, channels-last vs contiguous, and vs a bare PyTorch loop.

    python benchmarks/bench_training.py                          # channels-last vs contiguous, 5 models
    python benchmarks/bench_training.py --models resnet18,efficientnet_lite0 --batch-size 64 --batches 8
    python benchmarks/bench_training.py --mode fit-vs-bare --model resnet9 --width 24 --size 48 --batches 20

``--mode channels-last`` (the default) trains each model with ``fit_one_cycle(channels_last=False)``
and ``fit_one_cycle(channels_last=True)`` on the same synthetic batches (random pixels: speed does not
depend on the data; B-cos models get their 6-channel encoding) at the model's default input size
(``RunSpec.input_size``: 40, 64 or 96 px) unless ``--size`` is given, random weights. Each round
runs both sides, alternating which goes first; the median images/second of each side and their
ratio are printed, one row per model, with the load average before and after.

``--mode fit-vs-bare``: both sides train a freshly seeded model from the same cached UTKFace batches with Adam, a
one-cycle schedule stepped every batch and gradient clipping by value; the bare loop is the
minimum any training loop does. ``fit_one_cycle`` adds progress bars, loss bookkeeping, a
per-epoch validation pass over one batch and (with ``--checkpoint``) the atomic ``last.pt`` /
``best.pt`` writes. Rounds alternate the order of the two sides and the median is reported.
Goal: ``fit_one_cycle`` >= 0.95 of the bare loop's images/second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbhelpers.data.cache import ImageCache, build_cache
from nbhelpers.data.datasets import build_manifest
from nbhelpers.data.loaders import CachedBatchLoader
from nbhelpers.data.manifest import manifest_path, read_manifest
from nbhelpers.data.transforms import build_pipeline, channel_stats
from nbhelpers.models import create_model, model_spec
from nbhelpers.training.fit import fit_one_cycle
from nbhelpers.training.config import set_seed
from nbhelpers.utils.device import get_default_device, to_device


DEFAULT_MODELS = "simple_cnn,resnet9,resnet18,efficientnet_lite0,bcos_resnet18"


def bare_loop(model, loader, max_lr: float, grad_clip: float, device: torch.device, channels_last: bool = False) -> None:
    """Adam + one-cycle + clipping with nothing else: the reference speed."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), max_lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, epochs=1, steps_per_epoch=len(loader))
    for images, labels in loader:
        images, labels = to_device((images, labels), device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function) -> float:
    """Seconds that ``function()`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def load_cache(data: str, data_dir: str, size: int) -> ImageCache:
    """The UTKFace cache at ``size`` px (the manifest and the cache are built on first use)."""
    path = manifest_path("utkface", data_dir)
    if not path.is_file():
        build_manifest("utkface", data, data_dir=data_dir)
    return build_cache(read_manifest(path), "utkface", size, Path(data_dir) / "cache")


def synthetic_batches(name: str, size: int, batch_size: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` random batches shaped as ``name`` is fed (B-cos: the encoding [x, 1 - x], 6 channels)."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        if model_spec(name).pipeline == "bcos":
            pixels = torch.rand(batch_size, 3, size, size, generator=generator)
            images = torch.cat([pixels, 1 - pixels], dim=1)
        else:
            images = torch.randn(batch_size, 3, size, size, generator=generator)
        batches.append((images, torch.randint(0, 2, (batch_size,), generator=generator)))
    return batches


def compare_memory_formats(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Median training images/second of ``fit_one_cycle`` with ``channels_last`` False and True, interleaved."""
    size = args.size or model_spec(name).input_size
    kwargs = {"width": args.width} if args.width and name in ("simple_cnn", "resnet9", "bcos_resnet18") else {}
    train = synthetic_batches(name, size, args.batch_size or 64, args.batches or 6)
    val = train[:1]
    set_seed(0)
    initial = create_model(name, **kwargs).state_dict()

    def run(channels_last: bool, batches: list) -> float:
        model = create_model(name, **kwargs)
        model.load_state_dict(initial)
        return timed(lambda: fit_one_cycle(1, 0.001, model, batches, val, 1e-4, 0.1, device=device,
                                           channels_last=channels_last, progress=False, verbose=False))

    for channels_last in (False, True):
        run(channels_last, train[:1])  # warm-up: oneDNN primitive creation for each format
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_index in range(args.rounds):
        for channels_last in ((False, True) if round_index % 2 == 0 else (True, False)):
            times[channels_last].append(run(channels_last, train))
    images = len(train) * train[0][0].shape[0]
    rates = {key: images / statistics.median(value) for key, value in times.items()}
    return {"size": size, "contiguous": rates[False], "channels_last": rates[True], "ratio": rates[True] / rates[False],
            "times": f"{np.round(times[False], 2).tolist()} / {np.round(times[True], 2).tolist()}"}


def memory_format_table(args: argparse.Namespace, device: torch.device) -> None:
    """Print one row per model: img/s contiguous, img/s channels-last, ratio."""
    batch_size, batches = args.batch_size or 64, args.batches or 6
    print(f"fit_one_cycle training img/s, contiguous vs channels_last; batch {batch_size}, {batches} batches "
          f"(+1 validation batch) per measurement, {args.rounds} interleaved rounds (median), device {device}, "
          f"{torch.get_num_threads()} threads, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'model':20s} {'px':>4s} {'contiguous':>11s} {'channels_last':>14s} {'ratio':>6s}   seconds per round "
          "(contiguous / channels_last)")
    for name in [item.strip() for item in args.models.split(",") if item.strip()]:
        row = compare_memory_formats(name, args, device)
        print(f"{name:20s} {row['size']:4d} {row['contiguous']:11.1f} {row['channels_last']:14.1f} {row['ratio']:6.2f}   {row['times']}",
              flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")


def fit_versus_bare(args: argparse.Namespace, device: torch.device) -> None:
    """``fit_one_cycle`` vs the bare loop on cached UTKFace batches, both in the same memory format."""
    size, batch_size, batches = args.size or 48, args.batch_size or 128, args.batches or 20
    channels_last = args.memory_format == "channels_last"
    cache = load_cache(args.data, args.data_dir, size)
    mean, std = channel_stats(cache.images, cache.split_indices("train"))
    limit = batches * batch_size

    def loaders():
        train = CachedBatchLoader(cache, "train", batch_size, shuffle=True, seed=0, limit=limit,
                                  transform=build_pipeline("pad_crop_flip", True, mean, std))
        val = CachedBatchLoader(cache, "val", batch_size, limit=batch_size,
                                transform=build_pipeline("pad_crop_flip", False, mean, std))
        return train, val

    width = 24 if args.width is None else args.width

    def fresh_model():
        set_seed(0)
        kwargs = {"width": width} if width else {}
        return create_model(args.model, **kwargs)

    def run_bare() -> float:
        train, _ = loaders()
        return timed(lambda: bare_loop(fresh_model(), train, 0.01, 0.1, device, channels_last))

    def run_fit() -> float:
        train, val = loaders()
        with tempfile.TemporaryDirectory() as folder:
            return timed(lambda: fit_one_cycle(1, 0.01, fresh_model(), train, val, 1e-4, 0.1, device=device,
                                               checkpoint_dir=folder if args.checkpoint else None,
                                               progress=True, verbose=False, channels_last=channels_last))

    run_bare()  # warm-up: first-call allocations and kernel selection
    bare, fit = [], []
    for round_index in range(args.rounds):
        order = (run_bare, run_fit) if round_index % 2 == 0 else (run_fit, run_bare)
        for function in order:
            (bare if function is run_bare else fit).append(function())
    bare_rate, fit_rate = limit / statistics.median(bare), limit / statistics.median(fit)
    print(f"model {args.model} width {width or 'default'} at {size} px, batch {batch_size}, {batches} batches, "
          f"device {device}, {args.memory_format}, {args.rounds} rounds (median); checkpoint writes: {args.checkpoint}")
    print(f"bare loop     {bare_rate:8.1f} img/s   (times {np.round(bare, 2).tolist()})")
    print(f"fit_one_cycle {fit_rate:8.1f} img/s   (times {np.round(fit, 2).tolist()}, incl. 1 validation batch)")
    print(f"ratio fit_one_cycle / bare = {fit_rate / bare_rate:.3f}   (goal >= 0.95)")


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of both modes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("channels-last", "fit-vs-bare"), default="channels-last",
                        help="channels-last: contiguous vs channels-last img/s per model (default); "
                             "fit-vs-bare: fit_one_cycle vs a bare loop on cached UTKFace batches")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="channels-last mode: comma-separated model names")
    parser.add_argument("--model", default="resnet9", help="fit-vs-bare mode: the model to train")
    parser.add_argument("--width", type=int, default=None,
                        help="channel width of simple_cnn, resnet9, bcos_resnet18 (default: the model's own; "
                             "24 in fit-vs-bare mode; 0: the model's own)")
    parser.add_argument("--size", type=int, default=0,
                        help="input size in px (0: each model's default size in channels-last mode, 48 in fit-vs-bare)")
    parser.add_argument("--batch-size", type=int, default=0, help="images per batch (0: 64 channels-last, 128 fit-vs-bare)")
    parser.add_argument("--batches", type=int, default=0,
                        help="training batches per measurement (0: 6 channels-last, 20 fit-vs-bare)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median of each side is reported")
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last",
                        help="fit-vs-bare mode: the memory format of both sides (fit_one_cycle's CPU default is channels_last)")
    parser.add_argument("--checkpoint", action="store_true", help="fit-vs-bare mode: let fit_one_cycle write last.pt/best.pt")
    parser.add_argument("--data", default="../shared/data/UTKFace.tar.gz", help="fit-vs-bare mode: the UTKFace archive")
    parser.add_argument("--data-dir", default="data", help="fit-vs-bare mode: where the manifest and cache live")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: $NBHELPERS_DEVICE, else the best available)")
    return parser


def main() -> None:
    """Run the mode chosen on the command line."""
    args = build_parser().parse_args()
    device = get_default_device(args.device)
    if args.mode == "channels-last":
        memory_format_table(args, device)
    else:
        fit_versus_bare(args, device)


if __name__ == "__main__":
    main()
