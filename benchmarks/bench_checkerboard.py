"""Benchmark: pixel-level checkerboard of B-cos explanations, strided vs anti-aliased (BlurPool) downsampling.

    python benchmarks/bench_checkerboard.py --manifest data/manifests/utkface.csv --cache-dir data/cache

Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016 (the artefact);
Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019 (the fix). For the untrained
``bcos_resnet18`` (width 64, seeded) and the just-converted ``bcos_efficientnet_lite0`` (ImageNet,
B-cosified), each with ``downsampling="stride"``, ``"blur_stem"`` and ``"blur"`` (same weights in all
three): the checkerboard index (``nbhelpers.explain.checkerboard_index``) of the contribution maps of
``--count`` test faces from the existing cache (never rebuilt: a stale cache is an error) and of their
weights W(x), the relative completeness error, the multiply-accumulates of one forward pass
(convolutions and linear layers only, not the element-wise B-cos and pooling work) and the images per
second of a training step (forward, loss, backward, SGD step; train mode; batch ``--batch``), the
variants interleaved round-robin in rotating order, so that load from other processes hits them alike
(median of rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from nbhelpers.data.cache import build_cache, manifest_fingerprint
from nbhelpers.data.transforms import bcos_encode
from nbhelpers.explain.bcos import explain
from nbhelpers.explain.checkerboard import checkerboard_index
from nbhelpers.models import create_model
from nbhelpers.models.bcos_layers import DOWNSAMPLING

__all__ = ["load_faces", "build_variants", "explanation_scores", "forward_macs", "step_rates", "main"]

MODELS = ("bcos_resnet18", "bcos_efficientnet_lite0")


def load_faces(manifest: Path, cache_dir: Path, size: int, count: int) -> torch.Tensor:
    """The first ``count`` test faces of the existing cache as encoded (count, 6, size, size) float32."""
    frame = pd.read_csv(manifest)
    meta_path = cache_dir / f"utkface_{size}.json"
    if json.loads(meta_path.read_text())["fingerprint"] != manifest_fingerprint(frame, size):
        raise ValueError(f"{meta_path}: cache does not match {manifest}; not rebuilding it here")
    cache = build_cache(frame, "utkface", size, cache_dir)
    rows = cache.split_indices("test")[:count]
    images = torch.from_numpy(cache.images[rows].copy()).permute(0, 3, 1, 2).float() / 255
    return bcos_encode(images)


def build_variants(name: str, width: int) -> dict[str, nn.Module]:
    """Model ``name`` with each ``downsampling`` option (``stride``, ``blur_stem``, ``blur``), identical weights."""
    options = {"width": width} if name == "bcos_resnet18" else {}
    torch.manual_seed(0)
    reference = create_model(name, pretrained=name != "bcos_resnet18", **options)
    variants = {"stride": reference}
    for downsampling in DOWNSAMPLING[1:]:
        variants[downsampling] = create_model(name, downsampling=downsampling, **options)
        variants[downsampling].load_state_dict(reference.state_dict())
    return variants


def explanation_scores(model: nn.Module, faces: torch.Tensor) -> dict[str, float]:
    """Mean checkerboard index of the contribution maps and of the six weight maps W(x), and the largest
    completeness error relative to the largest target logit."""
    model.eval()
    explanation = explain(model, faces)
    index = checkerboard_index(explanation.contributions)
    error = (explanation.contributions.sum((1, 2)) + model.logit_bias - explanation.target_logits).abs().max()
    return {"index": float(index.mean()), "index_sd": float(index.std()),
            "weights_index": float(checkerboard_index(explanation.weights.flatten(0, 1)).mean()),
            "completeness": float(error / explanation.target_logits.abs().max())}


def forward_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of the convolutions and linear layers in one forward pass of one image."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        pooled = getattr(module, "pool_stride", 1)  # BlurPool layers convolve at stride 1, then pool
        factor = pooled[0] * pooled[1] if isinstance(pooled, tuple) else pooled * pooled
        total += module.weight[0].numel() * output.numel() * factor  # taps per value (grouped convs included)

    layers = [module for module in model.modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        model.eval()
        with torch.no_grad():
            model(bcos_encode(torch.rand(1, 3, size, size)))
    finally:
        for handle in handles:
            handle.remove()
    return total


def step_rates(models: dict[str, nn.Module], batch: int, size: int, rounds: int) -> dict[str, float]:
    """Median images per second of one SGD training step per model, interleaved round-robin."""
    images = bcos_encode(torch.rand(batch, 3, size, size))
    labels = torch.randint(0, 2, (batch,))
    optimisers = {label: torch.optim.SGD(model.parameters(), lr=1e-4) for label, model in models.items()}
    times: dict[str, list[float]] = {label: [] for label in models}
    labels_in_order = list(models)
    for round_index in range(rounds + 1):
        shift = round_index % len(labels_in_order)  # rotate the order: no variant always runs first
        for label in labels_in_order[shift:] + labels_in_order[:shift]:
            model = models[label]
            model.train()
            start = time.perf_counter()
            optimisers[label].zero_grad(set_to_none=True)
            model.loss(model(images), labels).backward()
            optimisers[label].step()
            if round_index:  # the first round warms up
                times[label].append(time.perf_counter() - start)
    return {label: batch / statistics.median(values) for label, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("data/manifests/utkface.csv"))
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=64)
    arguments = parser.parse_args()
    faces = load_faces(arguments.manifest, arguments.cache_dir, arguments.size, arguments.count)
    for name in MODELS:
        variants = build_variants(name, arguments.width)
        results = {label: explanation_scores(model, faces) for label, model in variants.items()}  # before training
        macs = {label: forward_macs(model, arguments.size) for label, model in variants.items()}
        rates = step_rates(variants, arguments.batch, arguments.size, arguments.rounds)
        for label, scores in results.items():
            print(f"{name:24s} {label:10s} checkerboard {scores['index']:.4f} (sd {scores['index_sd']:.4f}), "
                  f"of W(x) {scores['weights_index']:.4f}; relative completeness error {scores['completeness']:.1e}; "
                  f"{macs[label] / 1e6:.0f} M MAC ({macs[label] / macs['stride']:.2f} x), "
                  f"{rates[label]:.1f} img/s ({rates[label] / rates['stride']:.2f} x)", flush=True)


if __name__ == "__main__":
    main()
