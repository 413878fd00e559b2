"""Benchmark: pixel-level checkerboard of B-cos explanations, strided vs anti-aliased (BlurPool) downsampling.

    python benchmarks/bench_checkerboard.py --manifest data/manifests/utkface.csv --cache-dir data/cache

Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016 (the artefact);
Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019 (the fix). For the untrained
``bcos_resnet18`` (width 64, seeded) and the just-converted ``bcos_efficientnet_lite0`` (ImageNet,
B-cosified), each with ``downsampling="stride"``, with only the stem convolution blurred, and with
``downsampling="blur"`` (same weights in all three): the checkerboard index
(``nbhelpers.explain.checkerboard_index``) of the contribution maps of ``--count`` test faces from the
existing cache (never rebuilt: a stale cache is an error) and of their weights W(x), the completeness
error, the floating-point operations of a training step (``FlopCounterMode``: convolutions and matrix
products only, not the element-wise B-cos and pooling work) and the images per second of a training step (forward, loss, backward, SGD step; train mode; batch ``--batch``), the
variants interleaved round-robin so that load from other processes hits them alike (median of rounds).
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
from torch.utils.flop_counter import FlopCounterMode

from nbhelpers.data.cache import build_cache, manifest_fingerprint
from nbhelpers.data.transforms import bcos_encode
from nbhelpers.explain.bcos import explain
from nbhelpers.explain.checkerboard import checkerboard_index
from nbhelpers.models import create_model
from nbhelpers.models.bcos_efficientnet_lite import BlurPoolSamePaddingBcosConv2d
from nbhelpers.models.bcos_layers import BlurPoolBcosConv2d

__all__ = ["load_faces", "build_variants", "explanation_scores", "step_flops", "step_rates", "main"]

STEMS = {"bcos_resnet18": "conv1", "bcos_efficientnet_lite0": "_conv_stem"}


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


def _blur_stem(model: nn.Module, name: str) -> nn.Module:
    stem = model.get_submodule(name)
    if name == "conv1":
        blurred = BlurPoolBcosConv2d(stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride,
                                     stem.padding, b=stem.b)
    else:
        blurred = BlurPoolSamePaddingBcosConv2d(stem.in_channels, stem.out_channels, stem.kernel_size[0],
                                                stem.stride[0], b=stem.b)
    blurred.load_state_dict(stem.state_dict())
    setattr(model, name, blurred)
    return model


def build_variants(name: str, width: int) -> dict[str, nn.Module]:
    """``stride``, ``blur stem`` and ``blur`` versions of model ``name`` with identical weights."""
    options = {"width": width} if name == "bcos_resnet18" else {"pretrained": True}
    torch.manual_seed(0)
    reference = create_model(name, **options)
    variants = {"stride": reference}
    for label, downsampling in (("blur stem", "stride"), ("blur", "blur")):
        model = create_model(name, **{**options, "pretrained": False} if "pretrained" in options else options,
                             downsampling=downsampling)
        model.load_state_dict(reference.state_dict())
        variants[label] = _blur_stem(model, STEMS[name]) if label == "blur stem" else model
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


def step_flops(model: nn.Module, batch: int, size: int) -> float:
    """Floating-point operations (convolutions and matrix products) of one training step's forward and backward."""
    model.train()
    images, labels = bcos_encode(torch.rand(batch, 3, size, size)), torch.zeros(batch, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        model.loss(model(images), labels).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


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
    for name in STEMS:
        variants = build_variants(name, arguments.width)
        results = {label: explanation_scores(model, faces) for label, model in variants.items()}  # before training
        flops = {label: step_flops(model, arguments.batch, arguments.size) for label, model in variants.items()}
        rates = step_rates(variants, arguments.batch, arguments.size, arguments.rounds)
        for label, scores in results.items():
            print(f"{name:24s} {label:10s} checkerboard {scores['index']:.4f} (sd {scores['index_sd']:.4f}), "
                  f"of W(x) {scores['weights_index']:.4f}; relative completeness error {scores['completeness']:.1e}; "
                  f"train step {flops[label] / 1e9:.0f} GFLOP ({flops[label] / flops['stride']:.2f} x), "
                  f"{rates[label]:.1f} img/s ({rates[label] / rates['stride']:.2f} x)", flush=True)


if __name__ == "__main__":
    main()
