"""Benchmark: training step of our B-cos ResNet-18 vs torchvision's ResNet-18 vs the ``bcos`` package's.

    python benchmarks/bench_bcos.py --size 64 --batch 32 --rounds 8

All three train on the same random batch (forward, backward, Adam step) with the same small-input
stem (3x3 stride-1 first convolution, no max-pool; torchvision's model is modified that way). The
steps are interleaved round-robin, so load from other processes hits every model alike, and the
median seconds per step is reported with the ratio to torchvision. Also prints the cost of one
explanation (forward + backward in explanation mode) of a single image with ``explain``.
Goal: ours <= 1.8x torchvision and faster than the ``bcos`` package.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torchvision

from nbhelpers.explain.bcos import explain
from nbhelpers.models.bcos_resnet import bcos_resnet18


def torchvision_small_resnet18() -> nn.Module:
    model = torchvision.models.resnet18(num_classes=2)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def package_bcos_resnet18() -> nn.Module | None:
    try:
        from bcos.models.resnet import resnet18
        from bcos.modules import BcosConv2d, norms
    except ImportError as error:
        print(f"bcos package not importable ({error}); skipping it")
        return None
    return resnet18(num_classes=2, small_inputs=True, norm_layer=norms.NoBias(norms.BatchNormUncentered2d),
                    conv_layer=partial(BcosConv2d, b=2, max_out=1), logit_bias=0.0)


def make_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, loss: Callable) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(model(images), labels).backward()
        optimizer.step()

    return step


def bce_one_hot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, nn.functional.one_hot(labels, 2).float())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    rgb = torch.rand(args.batch, 3, args.size, args.size)
    encoded = torch.cat([rgb, 1 - rgb], dim=1)
    labels = torch.randint(0, 2, (args.batch,))
    ours = bcos_resnet18(num_classes=2, small_input=True)
    steps = {"torchvision resnet18": make_step(torchvision_small_resnet18(), rgb, labels, nn.functional.cross_entropy),
             "ours bcos_resnet18": make_step(ours, encoded, labels, ours.loss)}
    package = package_bcos_resnet18()
    if package is not None:
        steps["bcos package resnet18"] = make_step(package, encoded, labels, bce_one_hot)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x {args.size} px, CPU")
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times["torchvision resnet18"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} {median:.3f} s/step  (min {min(values):.3f})  {median / baseline:.2f}x torchvision")
    ours.eval()
    explain(ours, encoded[:1])
    durations = []
    for _ in range(5):
        start = time.perf_counter()
        explain(ours, encoded[:1])
        durations.append(time.perf_counter() - start)
    print(f"one explanation (1 image, forward+backward+colour map): {statistics.median(durations) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
