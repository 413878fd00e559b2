"""Benchmark: every explanation metric for N test faces x the methods of one trained model (issue 6 target:
500 faces x 4 methods within 10 minutes on a 2-core CPU, default profile).

    python benchmarks/bench_explanations.py --data-dir data --model bcos_resnet18 --faces 500

Times ``evaluate_explanations`` (pointing game on the mosaics, deletion/insertion, ROAD on every face,
face focus, randomisation check) per method, so the share of each is visible, and prints the total against
the 10-minute goal and the mean localisation (pointing game) per method.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nbhelpers.explain.evaluation import evaluate_explanations
from nbhelpers.training.runs import load_trained_models, split_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", default="utkface")
    parser.add_argument("--model", default="bcos_resnet18")
    parser.add_argument("--methods", default="gradcam,gradcam++,xgradcam,bcos")
    parser.add_argument("--faces", type=int, default=500)
    parser.add_argument("--mosaics", type=int, default=250)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--goal-minutes", type=float, default=10.0)
    arguments = parser.parse_args()
    run, = load_trained_models(f"{arguments.data_dir}/checkpoints", [arguments.model])
    faces, labels, _ = split_faces(arguments.data_dir, arguments.dataset, "test", arguments.faces,
                                   run.spec.input_size, 0)
    total, rows = 0.0, []
    for method in arguments.methods.split(","):
        start = time.perf_counter()
        frame = evaluate_explanations([run.explanation_entry], [method], faces, labels, steps=arguments.steps, road_limit=None,
                                      mosaic_count=arguments.mosaics, seed=0, progress=False)
        seconds = time.perf_counter() - start
        total += seconds
        pointing = frame.loc[frame["metric"] == "pointing_game", "value"]
        rows.append((method, seconds, float(np.nanmean(pointing)) if len(pointing) else float("nan"), len(pointing)))
    print(f"{arguments.model}, {len(faces)} faces, {arguments.mosaics} mosaics, ROAD on all faces, "
          f"{arguments.steps} deletion/insertion steps")
    print(f"{'method':<12}{'seconds':>10}{'pointing game':>16}{'mosaics':>9}")
    for method, seconds, pointing, count in rows:
        print(f"{method:<12}{seconds:>10.1f}{pointing:>16.3f}{count:>9d}")
    goal = 60 * arguments.goal_minutes
    print(f"total {total:.1f} s for {len(rows)} methods = {total / goal:.2f}x the {arguments.goal_minutes:.0f}-minute goal "
          f"({'met' if total <= goal else 'not met'})")


if __name__ == "__main__":
    main()
