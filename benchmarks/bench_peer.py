"""Benchmark: the suite's best model vs the dlib-models peer, on the same UTKFace test faces.

    python benchmarks/bench_peer.py                        # best run in data/checkpoints/runs.json
    python benchmarks/bench_peer.py --checkpoint data/checkpoints/efficientnet_lite0-<hash>/model.pt

The suite's model is evaluated as in the notebooks (its own input size and normalisation from the
checkpoint, flip test-time augmentation); the peer (``nbhelpers.models.peer``) sees the same faces at its
32x32 input. Prints accuracy, per-class and balanced accuracy side by side, and the paired counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from nbhelpers.data.cache import build_cache
from nbhelpers.data.loaders import CachedBatchLoader
from nbhelpers.data.manifest import manifest_path, read_manifest
from nbhelpers.training.evaluation import predict_probabilities
from nbhelpers.training.peer_comparison import compare_run_with_peer
from nbhelpers.training.result import SplitPredictions, TrainingResult
from nbhelpers.training.runs import load_run, read_index
from nbhelpers.utils.device import get_default_device


def best_checkpoint(checkpoint_dir: Path) -> Path:
    """The checkpoint of the plain run with the highest test accuracy in the run index."""
    runs = [run for run in read_index(checkpoint_dir) if not run.get("variant") and run.get("test_accuracy") is not None]
    if not runs:
        raise SystemExit(f"{checkpoint_dir}: no trained run recorded; run `make reports` or pass --checkpoint")
    return checkpoint_dir / max(runs, key=lambda run: run["test_accuracy"])["checkpoint"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="", help="checkpoint to compare (default: the best indexed run)")
    parser.add_argument("--data-dir", default="data", help="folder with manifests/, cache/ and checkpoints/")
    parser.add_argument("--split", default="test", help="split compared on")
    args = parser.parse_args()

    checkpoint = Path(args.checkpoint) if args.checkpoint else best_checkpoint(Path(args.data_dir) / "checkpoints")
    trained = load_run(checkpoint)
    spec = trained.spec
    frame = read_manifest(manifest_path(spec.dataset or "utkface", args.data_dir))
    cache = build_cache(frame, spec.dataset or "utkface", spec.input_size, Path(args.data_dir) / "cache")
    loader = CachedBatchLoader(cache, args.split, 256, transform=trained.eval_transform())
    probabilities, labels = predict_probabilities(trained.model, loader, get_default_device(), flip_tta=True)
    result = TrainingResult(trained, predictions={args.split: SplitPredictions(probabilities, labels, loader.rows)},
                            cache=cache)
    table, paired = compare_run_with_peer(result, args.split)
    print(f"checkpoint: {checkpoint}")
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
        print(table)
    print("paired:", paired)
    gap = table.iloc[0]["accuracy"] - table.iloc[1]["accuracy"]
    print(f"accuracy difference (ours - peer): {100 * gap:+.2f} percentage points on {int(table.iloc[0]['images'])} faces")


if __name__ == "__main__":
    main()
