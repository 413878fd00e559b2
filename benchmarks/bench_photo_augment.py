"""Benchmark: cost of the real-photo degradations against one training step, side by side in one run.

    python benchmarks/bench_photo_augment.py                      # EfficientNet-Lite0 at 96 px, batch 64
    python benchmarks/bench_photo_augment.py --model resnet18 --size 64 --batch-size 128

Each round times, on the same uint8 batch (random pixels of a memory-mapped array shaped like the
cache: speed does not depend on the content), (a) slicing the batch from the memory map as
``CachedBatchLoader`` does, (b) ``degrade_photos`` on it (affine jitter, blur, lighting, JPEG) and
(c) one training step of the model (forward, backward, Adam step; channels-last on CPU, as
``fit_one_cycle`` trains). It prints the median milliseconds of each and the share of a step that
loading plus degradation take (goal: under 5%).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbhelpers.data.photo_augment import degrade_photos
from nbhelpers.data.transforms import build_pipeline
from nbhelpers.models import create_model, model_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    arguments = parser.parse_args()
    torch.manual_seed(0)
    rows = 4096
    with tempfile.TemporaryDirectory() as folder:
        images = np.lib.format.open_memmap(Path(folder) / "cache.npy", mode="w+", dtype=np.uint8,
                                           shape=(rows, arguments.size, arguments.size, 3))
        images[:] = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
        model = create_model(arguments.model, num_classes=2).to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), 1e-4)
        pipeline = build_pipeline(model_spec(arguments.model).pipeline, True, (0.5,) * 3, (0.25,) * 3)
        generator = torch.Generator().manual_seed(0)
        timings: dict[str, list[float]] = {"load": [], "degrade": [], "step": []}
        for round_index in range(arguments.rounds + 1):
            start = time.perf_counter()
            picked = np.sort(np.random.default_rng(round_index).choice(rows, arguments.batch_size, replace=False))
            batch = torch.from_numpy(np.ascontiguousarray(images[picked]))
            loaded = time.perf_counter()
            degraded = degrade_photos(batch, generator=generator)
            done = time.perf_counter()
            inputs = pipeline(degraded).contiguous(memory_format=torch.channels_last)
            labels = torch.randint(0, 2, (arguments.batch_size,))
            step_start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            stepped = time.perf_counter()
            if round_index:  # the first round warms up
                timings["load"].append(1000 * (loaded - start))
                timings["degrade"].append(1000 * (done - loaded))
                timings["step"].append(1000 * (stepped - step_start))
    median = {name: statistics.median(values) for name, values in timings.items()}
    share = (median["load"] + median["degrade"]) / median["step"]
    print(f"{arguments.model} @{arguments.size} px, batch {arguments.batch_size}: load {median['load']:.1f} ms, "
          f"degrade {median['degrade']:.1f} ms, training step {median['step']:.0f} ms "
          f"({1000 * arguments.batch_size / median['step']:.0f} img/s); load + degrade = {share:.1%} of a step")


if __name__ == "__main__":
    main()
