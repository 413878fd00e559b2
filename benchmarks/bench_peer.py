"""Benchmark: the suite's best model vs the dlib-models peer, on the same UTKFace test faces.

    python benchmarks/bench_peer.py                        # best checkpoint listed in reports/summary.json
    python benchmarks/bench_peer.py --checkpoint data/checkpoints/efficientnet_lite0-<hash>/best.pt

The suite's model is evaluated as in the notebooks (its own input size and normalisation from the
checkpoint, flip test-time augmentation); the peer (``nbhelpers.peer``) sees the same faces at its
32x32 input. Prints accuracy, per-class and balanced accuracy side by side, and the paired counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from nbhelpers.cache import build_cache
from nbhelpers.checkpoint import model_from_checkpoint
from nbhelpers.device import get_default_device
from nbhelpers.evaluation import predict_probabilities
from nbhelpers.loaders import CachedBatchLoader
from nbhelpers.manifest import manifest_path, read_manifest
from nbhelpers.peer import compare_run_with_peer
from nbhelpers.transforms import build_pipeline


def best_checkpoint(summary_path: Path, notebooks_dir: Path) -> Path:
    """The checkpoint of the model with the highest test accuracy in ``summary.json``."""
    summary = json.loads(summary_path.read_text())
    runs = [run for notebook in summary.values() if isinstance(notebook, dict)
            for run in notebook.values() if isinstance(run, dict) and run.get("checkpoint")]
    if not runs:
        raise SystemExit(f"{summary_path}: no run with a checkpoint; run `make reports` or pass --checkpoint")
    best = max(runs, key=lambda run: run["test_accuracy"])
    path = Path(best["checkpoint"])
    return path if path.is_absolute() else (notebooks_dir / path).resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--summary", default="reports/summary.json")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    checkpoint = Path(args.checkpoint) if args.checkpoint else best_checkpoint(Path(args.summary), Path("notebooks"))
    model, metadata = model_from_checkpoint(checkpoint)
    frame = read_manifest(manifest_path(metadata.get("dataset", "utkface"), args.data_dir))
    cache = build_cache(frame, metadata.get("dataset", "utkface"), metadata["input_size"], Path(args.data_dir) / "cache")
    transform = build_pipeline(metadata["pipeline"], False, metadata["mean"], metadata["std"])
    loader = CachedBatchLoader(cache, args.split, 256, transform=transform)
    probabilities, _ = predict_probabilities(model, loader, get_default_device(), flip_tta=True)
    result = {"cache": cache, f"{args.split}_rows": loader.rows, f"{args.split}_probabilities": probabilities,
              "metadata": metadata}
    table, paired = compare_run_with_peer(result, args.split)
    print(f"checkpoint: {checkpoint}")
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
        print(table)
    print("paired:", paired)
    gap = table.iloc[0]["accuracy"] - table.iloc[1]["accuracy"]
    print(f"accuracy difference (ours - peer): {100 * gap:+.2f} percentage points on {int(table.iloc[0]['images'])} faces")


if __name__ == "__main__":
    main()
