"""A/B tests of training changes against a baseline on the same seeds and the same labelled photos (issue 21).

A change is kept only if it helps the real photos on both counts without costing in-domain accuracy
(``ab_decision``): the real-photo accuracy rises, the female/male recall gap (male minus female recall)
shrinks in absolute value, and the in-domain (UTKFace test) accuracy drops by at most ``MAX_IN_DOMAIN_DROP``.
Whether a real-photo difference is more than noise is judged with a paired percentile bootstrap over the
photos (``paired_bootstrap_difference``; Efron and Tibshirani, "An Introduction to the Bootstrap", 1993,
ch. 13): both models saw the same photos, so resampling photos and differencing per resample removes the
photo-to-photo variance that two separate intervals would double-count. Nothing here is fitted on the photos:
the rule's thresholds are fixed in advance.

``run_ab`` is the resumable loop: one JSON line per (variant, seed) in a results file, rewritten atomically
after each, with the train and evaluate steps injected (``train_or_reuse`` trains a run or reuses its finished
checkpoint; ``benchmarks/ab_real_photos.py`` evaluates the prediction path). ``ab_table`` turns the lines into
the table; ``seed_spread`` shows how far the same variant moves from seed to seed, the yardstick of a single-seed
change (the bootstrap covers the photos, not the training's randomness).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.manifest import manifest_path, read_manifest
from nbhelpers.training.config import TrainConfig, run_directory
from nbhelpers.training.run import MODEL_FILE, run_training
from nbhelpers.training.runs import find_run
from nbhelpers.utils.atomic import atomic_write_text

__all__ = ["MAX_IN_DOMAIN_DROP", "BASELINE", "KEEP", "DROP", "WITHIN_NOISE", "paired_bootstrap_difference",
           "ab_decision", "finished_run", "train_or_reuse", "read_results", "write_results", "run_ab", "mean_correct", "ab_table",
           "seed_spread"]

MAX_IN_DOMAIN_DROP = 0.003  # in-domain accuracy a kept change may cost, as a fraction (0.3 pp; issue 21)
BASELINE = "baseline"
KEEP, DROP, WITHIN_NOISE = "KEEP", "DROP", "within noise"


def paired_bootstrap_difference(variant_correct: Sequence[float], baseline_correct: Sequence[float],
                                bootstrap: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Accuracy of ``variant`` minus that of ``baseline`` on the same items, with a paired percentile interval.

    ``variant_correct``, ``baseline_correct``: per-item correctness (N,) in [0, 1], aligned item by item (a
    mean over seeds may be fractional). Each resample draws N items with replacement and differences the two
    means on them. Returns ``difference``, ``low``, ``high`` and ``half_width`` (half the interval), as
    fractions. Raises ``ValueError`` when the lengths differ or there are no items."""
    variant, baseline = np.asarray(variant_correct, dtype=float), np.asarray(baseline_correct, dtype=float)
    if variant.shape != baseline.shape or variant.ndim != 1 or not len(variant):
        raise ValueError(f"paired bootstrap needs two equally long non-empty vectors, got shapes {variant.shape} "
                         f"and {baseline.shape}")
    differences = variant - baseline
    draws = np.random.default_rng(seed).integers(0, len(differences), (bootstrap, len(differences)))
    resampled = differences[draws].mean(axis=1)
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": float(differences.mean()), "low": float(low), "high": float(high),
            "half_width": float((high - low) / 2)}


def ab_decision(baseline: Mapping[str, float], variant: Mapping[str, float],
                max_in_domain_drop: float = MAX_IN_DOMAIN_DROP) -> tuple[str, str]:
    """``(KEEP or DROP, the reason)`` for a variant against the baseline on the same seeds.

    Both mappings hold ``photo_accuracy``, ``photo_gap`` (male minus female recall on the photos) and
    ``in_domain_accuracy``, as fractions. KEEP only if the photo accuracy rises, ``|photo_gap|`` shrinks and
    the in-domain accuracy falls by at most ``max_in_domain_drop``; the reason names every failed condition."""
    failed = []
    if not variant["photo_accuracy"] > baseline["photo_accuracy"]:
        failed.append("real-photo accuracy does not improve")
    if not abs(variant["photo_gap"]) < abs(baseline["photo_gap"]):
        failed.append("the female/male gap does not shrink")
    drop = baseline["in_domain_accuracy"] - variant["in_domain_accuracy"]
    if not drop <= max_in_domain_drop + 1e-12:
        failed.append(f"in-domain accuracy drops {100 * drop:.2f} pp (> {100 * max_in_domain_drop:.1f} pp)")
    return (DROP, "; ".join(failed)) if failed else (KEEP, "better on real photos, smaller gap, in-domain kept")


def finished_run(config: TrainConfig) -> dict[str, Any] | None:
    """The run index entry of ``config``'s run folder (``run_directory``) when its ``model.pt`` and its
    entry both exist (checkpoint made absolute); else None (not trained, or killed before it finished)."""
    folder = run_directory(config)
    if folder is None or not (folder / MODEL_FILE).is_file():
        return None
    return find_run(config.checkpoint_dir, run_id=folder.name, required=False)


def train_or_reuse(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """The in-domain figures of ``config``'s run, trained with ``run_training`` (which resumes an unfinished
    one) unless ``finished_run`` finds it done: ``checkpoint``, ``run_id``, ``in_domain_accuracy``, female and
    male recall (test split, flip TTA as the run evaluated), ``epochs_run``, ``train_seconds`` (the run's
    recorded wall time: training and evaluation, only the last session's when it was resumed),
    ``train_images`` per epoch and ``images_per_second`` (epochs x images / seconds). Raises
    ``ValueError`` without ``checkpoint_dir`` (a run must be saved to be reused and evaluated)."""
    if not config.checkpoint_dir:
        raise ValueError("train_or_reuse needs config.checkpoint_dir: the run is evaluated from its model.pt")
    entry = finished_run(config)
    reused = entry is not None
    if entry is None:
        run_training(config, progress)
        entry = finished_run(config)
    if entry is None:
        raise FileNotFoundError(f"{run_directory(config)}: training finished but no {MODEL_FILE} or run index entry")
    frame = read_manifest(manifest_path(config.dataset, config.data_dir))
    images = int((frame["split"] == "train").sum())
    images = min(images, config.train_limit) if config.train_limit else images
    recall, seconds = entry.get("test_per_class_accuracy") or {}, float(entry.get("seconds") or 0.0)
    return {"checkpoint": entry["checkpoint"], "run_id": entry["run_id"], "reused": reused,
            "in_domain_accuracy": entry["test_accuracy"], "in_domain_female_recall": recall.get("female"),
            "in_domain_male_recall": recall.get("male"), "epochs_run": entry.get("epochs_run"),
            "train_seconds": seconds, "train_images": images,
            "images_per_second": (entry.get("epochs_run") or 0) * images / seconds if seconds else None}


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The JSON lines of a results file (empty when it does not exist); a bad line is a ``ValueError``
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not JSON ({error}); delete the line to redo "
                                 "that run") from None
    return rows


def write_results(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Rewrite the whole results file atomically, one JSON object per line."""
    return atomic_write_text(path, "".join(json.dumps(dict(row), sort_keys=True, default=str) + "\n" for row in rows))


def _same_run(row: Mapping[str, Any], name: str, seed: int, overrides: Mapping[str, Any]) -> bool:
    return row.get("variant") == name and row.get("seed") == seed and row.get("overrides") == dict(overrides)


def run_ab(variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], results_path: str | Path,
           train: Callable[[Mapping[str, Any], int], Mapping[str, Any]],
           evaluate: Callable[[Mapping[str, Any]], Mapping[str, Any]],
           log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train and evaluate every (variant, seed) not yet in ``results_path``; return all its rows.

    ``variants``: name -> ``TrainConfig`` overrides (JSON values). ``train(overrides, seed)`` returns the
    in-domain figures of the run (at least ``checkpoint``); ``evaluate(trained)`` the real-photo figures
    (``photo_accuracy``, ``photo_gap``, ``photo_correct``: file -> 0/1, ...). A row is reused when its
    variant, seed and overrides match, so a killed run resumes and a changed variant is redone."""
    rows = read_results(results_path)
    for name, overrides in variants.items():
        for seed in seeds:
            if any(_same_run(row, name, seed, overrides) for row in rows):
                log(f"{name} seed {seed}: already in {results_path}, skipped")
                continue
            log(f"{name} seed {seed}: training {dict(overrides)}")
            trained = dict(train(overrides, seed))
            row = {"variant": name, "seed": seed, "overrides": dict(overrides), **trained, **evaluate(trained)}
            rows = [old for old in rows if not (old.get("variant") == name and old.get("seed") == seed)] + [row]
            write_results(results_path, rows)
    return rows


def mean_correct(rows: Sequence[Mapping[str, Any]], files: Sequence[str]) -> np.ndarray:
    """Per-photo correctness (len(files),) averaged over ``rows`` (one per seed), from their ``photo_correct``."""
    return np.mean([[float(row["photo_correct"][name]) for name in files] for row in rows], axis=0)


_FIGURES = ("in_domain_accuracy", "photo_accuracy", "photo_female_recall", "photo_male_recall", "photo_gap",
            "detection_rate", "train_seconds", "images_per_second")


def _variant_row(name: str, runs: pd.DataFrame, reference: pd.DataFrame, bootstrap: int, seed: int) -> dict[str, Any]:
    """One row of ``ab_table``: means over the seeds both have, differences, paired interval and decision."""
    seeds = sorted(set(runs["seed"]) & set(reference["seed"]))
    mine, theirs = runs[runs["seed"].isin(seeds)], reference[reference["seed"].isin(seeds)]
    means = {key: float(mine[key].mean()) for key in _FIGURES if key in mine}
    base = {key: float(theirs[key].mean()) for key in _FIGURES if key in theirs}
    files = sorted(set.intersection(*(set(row) for row in [*mine["photo_correct"], *theirs["photo_correct"]])))
    paired = paired_bootstrap_difference(mean_correct(mine.to_dict("records"), files),
                                         mean_correct(theirs.to_dict("records"), files), bootstrap, seed)
    decision, reason = (BASELINE, "reference") if name == BASELINE else ab_decision(base, means)
    noise = name != BASELINE and abs(paired["difference"]) < paired["half_width"]
    return {"variant": name, "seeds": ",".join(map(str, seeds)), **means,
            "in_domain_change_pp": 100 * (means["in_domain_accuracy"] - base["in_domain_accuracy"]),
            "photo_change_pp": 100 * paired["difference"], "photo_change_low_pp": 100 * paired["low"],
            "photo_change_high_pp": 100 * paired["high"],
            "gap_change_pp": 100 * (abs(means["photo_gap"]) - abs(base["photo_gap"])),
            "decision": decision, "noise": WITHIN_NOISE if noise else "", "reason": reason}


def ab_table(rows: Sequence[Mapping[str, Any]], bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per variant (baseline first): mean figures over the seeds it shares with the baseline, changes
    against the baseline in pp (photo accuracy with its paired 95% interval; ``gap_change_pp`` is the change of
    ``|gap|``, negative = smaller), ``decision`` (``ab_decision``), ``noise`` ("within noise" when the photo
    change is smaller than its interval's half-width) and ``reason``. Raises ``ValueError`` without baseline rows."""
    frame = pd.DataFrame(list(rows))
    if frame.empty or BASELINE not in set(frame["variant"]):
        raise ValueError(f"no {BASELINE!r} rows to compare with; run the {BASELINE} variant first")
    reference = frame[frame["variant"] == BASELINE]
    names = [BASELINE, *[name for name in dict.fromkeys(frame["variant"]) if name != BASELINE]]
    table = [_variant_row(name, frame[frame["variant"] == name], reference, bootstrap, seed) for name in names
             if set(frame.loc[frame["variant"] == name, "seed"]) & set(reference["seed"])]
    return pd.DataFrame(table)


_SPREAD_FIGURES = ("in_domain_accuracy", "photo_accuracy", "photo_female_recall", "photo_male_recall", "photo_gap")


def seed_spread(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Seed-to-seed spread of every variant run with two or more seeds: one row per (variant, figure) with the
    seeds, their count, the minimum, maximum and range (maximum - minimum) of the figure (fractions, as in the
    rows). Training randomness (initialisation, shuffling, augmentation) moves a figure by this much with nothing
    changed, so a single-seed change smaller than the range is not evidence. Empty when no variant has two seeds."""
    columns = ["variant", "figure", "seeds", "runs", "minimum", "maximum", "range"]
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=columns)
    table = []
    for name, runs in frame.groupby("variant", sort=False):
        if runs["seed"].nunique() < 2:
            continue
        for figure in _SPREAD_FIGURES:
            values = runs[figure].astype(float)
            table.append({"variant": name, "figure": figure, "seeds": ",".join(map(str, sorted(runs["seed"]))),
                          "runs": len(values), "minimum": values.min(), "maximum": values.max(),
                          "range": values.max() - values.min()})
    return pd.DataFrame(table, columns=columns)
