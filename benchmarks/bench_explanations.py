"""Benchmark: every explanation metric for N test faces x the methods of one trained model (issue 6 target:
500 faces x 4 methods within 10 minutes on a 2-core CPU, default profile).

    python benchmarks/bench_explanations.py --data-dir data --model bcos_resnet18 --faces 500

Times ``evaluate_explanations`` (pointing game on the mosaics, grid pointing game on as many 2 x 2 grids
(``--grid 3``: 3 x 3), deletion/insertion, ROAD on every face, face focus, randomisation check) per method,
so the share of each is visible, and prints the total against the 10-minute goal and the mean localisation
per method: the pointing game (chance 0.5) beside the grid pointing game (chance 1 / grid^2).
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
    parser.add_argument("--grids", type=int, default=None, help="grids for the grid pointing game (default: --mosaics)")
    parser.add_argument("--grid", type=int, default=2, help="cells per side of the grid pointing game")
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
                                      mosaic_count=arguments.mosaics, grid_count=arguments.grids, grid=arguments.grid,
                                      seed=0, progress=False)
        seconds = time.perf_counter() - start
        total += seconds
        games = [frame.loc[frame["metric"] == metric, "value"] for metric in ("pointing_game", "grid_pointing_game")]
        rows.append((method, seconds, *[float(np.nanmean(game)) if len(game) else float("nan") for game in games],
                     *[len(game) for game in games]))
    print(f"{arguments.model}, {len(faces)} faces, {arguments.mosaics} mosaics, "
          f"{arguments.mosaics if arguments.grids is None else arguments.grids} {arguments.grid}x{arguments.grid} grids, "
          f"ROAD on all faces, {arguments.steps} deletion/insertion steps")
    grid_title = f"grid game {arguments.grid}x{arguments.grid}"
    print(f"{'method':<12}{'seconds':>10}{'pointing game':>16}{'rows':>7}{grid_title:>18}{'grids':>7}")
    for method, seconds, pointing, grid_pointing, count, grid_count in rows:
        print(f"{method:<12}{seconds:>10.1f}{pointing:>16.3f}{count:>7d}{grid_pointing:>18.3f}{grid_count:>7d}")
    print(f"chance: pointing game 0.500, grid pointing game {1 / arguments.grid ** 2:.3f}")
    goal = 60 * arguments.goal_minutes
    print(f"total {total:.1f} s for {len(rows)} methods = {total / goal:.2f}x the {arguments.goal_minutes:.0f}-minute goal "
          f"({'met' if total <= goal else 'not met'})")


if __name__ == "__main__":
    main()
