"""The mitigation experiment of the bias study: one model trained twice from the same seed and settings,
once with plain shuffling and once with group-balanced sampling (every group of a grouping drawn equally
often, with replacement), compared on overall and worst-group accuracy side by side.

Group-balanced sampling is the simple data-balancing baseline of Idrissi et al., "Simple data balancing
achieves competitive worst-group-accuracy" (CLeaR 2022); worst-group accuracy is the target of
Sagawa et al., "Distributionally robust neural networks" (ICLR 2020).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.groups import Grouping
from nbhelpers.fairness.bias import gap_summary, group_table
from nbhelpers.training.profiles import training_profile
from nbhelpers.training.config import TrainConfig
from nbhelpers.training.result import TrainingResult
from nbhelpers.training.run import run_training

__all__ = ["PLAIN", "train_plain_and_balanced", "mitigation_table", "describe_mitigation"]

PLAIN = "plain"


def train_plain_and_balanced(model: str, profile: str, balance: str, dataset: str, data_dir: str, seed: int = 0,
                             progress: bool = True) -> dict[str, TrainingResult]:
    """``run_training`` of ``model`` with the profile's settings, without and with ``balance`` sampling.

    Both take the model's registered pipeline. The plain run has the same settings (and so the same
    checkpoint folder) as the training notebooks', so after them it only resumes its finished checkpoint
    and evaluates.
    """
    settings = dict(training_profile(model, profile), model=model, dataset=dataset, data_dir=data_dir, seed=seed,
                    checkpoint_dir=f"{data_dir}/checkpoints")
    return {PLAIN: run_training(TrainConfig(**settings), progress),
            f"balanced by {balance}": run_training(TrainConfig(**settings, balance=balance), progress)}


def _test_frame(trained: TrainingResult) -> pd.DataFrame:
    return trained.cache.frame.iloc[trained.predictions["test"].rows].reset_index(drop=True)


def mitigation_table(results: dict[str, TrainingResult], groupings: Sequence[Grouping] | None, min_count: int = 30,
                     bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per training variant and grouping: overall and balanced accuracy, the worst group's
    accuracy with its 95% interval, the worst group of the plain run and its accuracy in this variant, and the gap.

    The first entry of ``results`` is the reference (plain) run; ``groupings`` None means the manifest's defaults.
    """
    tables = {variant: group_table(_test_frame(result), result.predictions["test"].probabilities, groupings, min_count=min_count,
                                   bootstrap=bootstrap, seed=seed) for variant, result in results.items()}
    reference = gap_summary(tables[next(iter(tables))]).set_index("grouping")
    rows = []
    for variant, table in tables.items():
        test = results[variant].metrics["test"]
        for _, gap in gap_summary(table).iterrows():
            groups = table[table["grouping"] == gap["grouping"]].set_index("group")
            worst, reference_group = gap["worst_group"], reference.loc[gap["grouping"], "worst_group"]
            rows.append({"variant": variant, "grouping": gap["grouping"], "accuracy": test["accuracy"],
                         "balanced_accuracy": test["balanced_accuracy"], "worst_group": worst,
                         "worst_accuracy": gap["worst_value"],
                         "worst_low": groups.loc[worst, "accuracy_low"] if worst is not None else np.nan,
                         "worst_high": groups.loc[worst, "accuracy_high"] if worst is not None else np.nan,
                         "plain_worst_group": reference_group,
                         "plain_worst_group_accuracy": groups.loc[reference_group, "accuracy"]
                         if reference_group in groups.index else np.nan,
                         "gap": gap["gap"]})
    return pd.DataFrame(rows)


def describe_mitigation(table: pd.DataFrame, digits: int = 1) -> str:
    """Markdown generated from ``mitigation_table``: the change in overall and worst-group accuracy."""
    plain, others = table[table["variant"] == PLAIN].set_index("grouping"), table[table["variant"] != PLAIN]
    lines = []
    for variant, rows in others.groupby("variant", sort=False):
        first = rows.iloc[0]
        overall = 100 * (first["accuracy"] - plain["accuracy"].iloc[0])
        lines.append(f"**{variant}** vs plain training: overall accuracy {100 * first['accuracy']:.{digits}f}% "
                     f"({overall:+.{digits}f} pp), balanced accuracy {100 * first['balanced_accuracy']:.{digits}f}%.")
        for _, row in rows.iterrows():
            before = plain.loc[row["grouping"]]
            change = 100 * (row["worst_accuracy"] - before["worst_accuracy"])
            lines.append(f"- {row['grouping']}: worst group {row['worst_group']} at "
                         f"{100 * row['worst_accuracy']:.{digits}f}% (plain: {before['worst_group']} at "
                         f"{100 * before['worst_accuracy']:.{digits}f}%, {change:+.{digits}f} pp); "
                         f"gap {100 * row['gap']:.{digits}f} pp (plain {100 * before['gap']:.{digits}f}).")
    return "\n".join(lines) if lines else "No balanced run to compare."

