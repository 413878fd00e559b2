"""Benchmark: forward + backward of the B-cosified EfficientNet-Lite0 vs the plain EfficientNet-Lite0.

    python benchmarks/bench_bcos_lite.py --size 96 --batch 64 --rounds 5

B-cosification: Arya, Rao, Böhle, Schiele, NeurIPS 2024. Both models start from the ImageNet
weights, train mode, on the same random batch (RGB normalised for the plain model, the 6-channel
encoding for the B-cos one) with their own losses. The passes are interleaved round-robin, so load
from other processes hits both alike; the median images per second is reported with the ratio, and
the cost of one explanation (one image, explanation mode) of the B-cos model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn as nn

from nbhelpers.data.transforms import bcos_encode
from nbhelpers.explain.bcos import explain
from nbhelpers.models import create_model

__all__ = ["make_pass", "main"]


def make_pass(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One forward and backward pass of ``model`` (train mode, its own ``loss``) on a fixed batch."""
    model.train()

    def run() -> None:
        model.zero_grad(set_to_none=True)
        model.loss(model(images), labels).backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    rgb = torch.rand(args.batch, 3, args.size, args.size, device=device)
    labels = torch.randint(0, 2, (args.batch,), device=device)
    bcos = create_model("bcos_efficientnet_lite0", pretrained=True).to(device)
    passes = {"efficientnet_lite0": make_pass(create_model("efficientnet_lite0", pretrained=True).to(device),
                                              (rgb - 0.45) / 0.225, labels),
              "bcos_efficientnet_lite0": make_pass(bcos, bcos_encode(rgb), labels)}
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch {args.batch} x {args.size} px, {device}")
    for run in passes.values():
        for _ in range(args.warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.rounds):
        for name, run in passes.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times["efficientnet_lite0"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} {args.batch / median:7.1f} img/s  ({median:.3f} s per pass, min {min(values):.3f})  "
              f"{median / baseline:.2f}x the plain model's time")
    bcos.eval()
    durations = []
    for _ in range(4):
        start = time.perf_counter()
        explain(bcos, bcos_encode(rgb[:1]))
        durations.append(time.perf_counter() - start)
    milliseconds = statistics.median(durations[1:]) * 1000
    print(f"one explanation (1 image, forward + backward + colour map): {milliseconds:.1f} ms")


if __name__ == "__main__":
    main()
