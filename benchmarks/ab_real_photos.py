"""A/B harness: training changes against the EfficientNet-Lite0 baseline on the labelled real photos (issue 21).

    # 2-core CPU, default profile (Lite0 @96 px, 4 epochs: about 15 min per run at 96 px, with or without photo
    # degradations, 17 at 112 px, 16 for Lite1; the nine built-in variants take over two hours). --checkpoint-dir
    # data/checkpoints reuses the Lite0 run of `make reports` as the baseline when its settings match.
    python benchmarks/ab_real_photos.py --photos ../shared/data/fairface-dev --out data/ab_real_photos
    python benchmarks/ab_real_photos.py --checkpoint-dir data/checkpoints --out data/ab_real_photos
    python benchmarks/ab_real_photos.py --variants baseline,photo_augment,balanced_gender_age --seeds 0,1,2
    python benchmarks/ab_real_photos.py --variants baseline,lr1e3 --extra 'lr1e3={"max_lr": 0.001}'
    # a GPU, the full profile (224 px, 15 epochs; minutes per variant)
    python benchmarks/ab_real_photos.py --profile full --device cuda --out data/ab_real_photos_full
    # print the tables of what is recorded so far, train nothing
    python benchmarks/ab_real_photos.py --out data/ab_real_photos --report-only

Every variant is the profile's ``efficientnet_lite0`` settings plus a few ``TrainConfig`` overrides, trained
with the same seed(s) by ``run_training`` (a finished run is reused, an unfinished one resumed: its folder is
named after its settings) into ``<out>/checkpoints`` (or ``--checkpoint-dir``). Each run is scored on UTKFace
test (its recorded metrics, flip TTA) and through the whole prediction path (decode, detect, align, classify: ``Predictor`` and
``nbhelpers.predict.real_photos``) on the labelled photos. One JSON line per (variant, seed) goes to
``<out>/results.jsonl`` (rewritten atomically), so a killed run resumes where it stopped. The table at the
end applies ``nbhelpers.fairness.ab_testing.ab_decision``: KEEP only if the real-photo accuracy rises and the
female/male gap shrinks while in-domain accuracy drops at most 0.3 pp; "within noise" marks a photo change
smaller than the half-width of its paired bootstrap 95% interval. The photos are evaluation data: no
threshold or weight is fitted on them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from nbhelpers.fairness.ab_testing import BASELINE, ab_table, read_results, run_ab, seed_spread, train_or_reuse
from nbhelpers.models import list_models
from nbhelpers.predict.faces import FaceDetector
from nbhelpers.predict.predictor import PEER_ENSEMBLE_MODES, Predictor
from nbhelpers.predict.real_photos import (LABELS_NAME, accuracy_table, evaluate_photos, evaluation_summary,
                                           read_labels, risk_coverage)
from nbhelpers.training.config import TrainConfig
from nbhelpers.training.profiles import training_profile

MODEL = "efficientnet_lite0"
CANDIDATES: dict[str, dict[str, Any]] = {
    BASELINE: {},
    "size112": {"image_size": 112},
    "size128": {"image_size": 128},
    "photo_augment": {"augment": "photo"},
    "context_swap": {"augment": "context"},
    "context_swap_quarter": {"augment": "context_quarter"},
    "lite1": {"model": "efficientnet_lite1"},
    "lite2": {"model": "efficientnet_lite2"},
    "balanced_gender_age": {"balance": "gender x age_band"},
}


def parse_variants(names: str, extras: list[str]) -> dict[str, dict[str, Any]]:
    """The chosen candidates plus ``NAME=JSON`` extras; unknown fields or models are clear errors, and
    variants whose model is not registered are skipped with a message."""
    variants = {}
    for name in [name.strip() for name in names.split(",") if name.strip()]:
        if name not in CANDIDATES:
            raise SystemExit(f"unknown variant {name!r}; built-in ones: {', '.join(CANDIDATES)} (or --extra NAME=JSON)")
        variants[name] = dict(CANDIDATES[name])
    for extra in extras:
        name, _, text = extra.partition("=")
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as error:
            raise SystemExit(f"--extra {extra!r}: not NAME=JSON ({error})") from None
        if not name or not isinstance(overrides, dict):
            raise SystemExit(f"--extra {extra!r}: give NAME={{\"field\": value, ...}}")
        variants[name] = overrides
    known, registered = {item.name for item in fields(TrainConfig)}, set(list_models())
    for name, overrides in list(variants.items()):
        unknown = set(overrides) - known
        if unknown:
            raise SystemExit(f"variant {name!r}: {sorted(unknown)} are not TrainConfig fields")
        if overrides.get("model", MODEL) not in registered:
            print(f"skipping {name}: model {overrides['model']!r} is not registered (have {sorted(registered)})")
            del variants[name]
    return variants


def photo_evaluator(photos: str, device: str, bootstrap: int, peer_ensemble: str = "off"):
    """``evaluate(trained)``: the prediction path of a run's checkpoint on the labelled photos (headline figures
    of ``evaluation_summary`` and each read photo's correctness), answered as ``peer_ensemble`` says; with the
    peer ensemble on, the model alone's accuracy and recalls are recorded beside (``model_alone_*``)."""
    labels, detector = read_labels(Path(photos) / LABELS_NAME), FaceDetector()

    def evaluate(trained: Mapping[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        predictor = Predictor(trained["checkpoint"], device or None, detector=detector, peer_ensemble=peer_ensemble,
                              deep_ensemble="off", descriptor_probe="off")
        frame = evaluate_photos(predictor, labels, photos, progress=False)
        summary = evaluation_summary(frame, accuracy_table(frame, bootstrap), risk_coverage(frame))
        read = frame[frame["error"] == ""]
        return {"photos": summary["photos"], "detection_rate": summary["detection_rate"],
                "photo_accuracy": summary["ours_accuracy"], "photo_accuracy_low": summary["ours_accuracy_low"],
                "photo_accuracy_high": summary["ours_accuracy_high"],
                "photo_female_recall": summary["ours_female_recall"], "photo_male_recall": summary["ours_male_recall"],
                "photo_gap": summary["ours_male_recall"] - summary["ours_female_recall"],
                "photo_correct": dict(zip(read["file"], read["correct"].astype(int).tolist())),
                "answer": predictor.answer_source,
                **{key: summary[key] for key in ("model_alone_accuracy", "model_alone_female_recall",
                                                 "model_alone_male_recall") if key in summary},
                "evaluate_seconds": time.perf_counter() - start}
    return evaluate


def trainer(profile: str, checkpoint_dir: str, data_dir: str, device: str, progress: bool):
    """``train(overrides, seed)``: the baseline's ``TrainConfig`` with the overrides, trained or reused."""
    baseline = dict(training_profile(MODEL, profile), model=MODEL, data_dir=data_dir, device=device,
                    checkpoint_dir=checkpoint_dir)
    return lambda overrides, seed: train_or_reuse(TrainConfig(**{**baseline, **overrides, "seed": seed}), progress)


def print_tables(rows: list[dict[str, Any]], bootstrap: int) -> None:
    """Per-seed rows, then the decision table against the baseline (accuracies in %, changes in pp)."""
    frame = pd.DataFrame(rows)
    per_seed = frame[["variant", "seed", "in_domain_accuracy", "photo_accuracy", "photo_female_recall",
                      "photo_male_recall", "photo_gap", "train_seconds", "images_per_second"]].copy()
    for column in ("in_domain_accuracy", "photo_accuracy", "photo_female_recall", "photo_male_recall", "photo_gap"):
        per_seed[column] = 100 * per_seed[column]
    table = ab_table(rows, bootstrap)
    for column in ("in_domain_accuracy", "photo_accuracy", "photo_female_recall", "photo_male_recall", "photo_gap",
                   "detection_rate"):
        table[column] = 100 * table[column]
    table["photo_change_ci_pp"] = [f"[{low:+.1f}, {high:+.1f}]" for low, high in
                                   zip(table["photo_change_low_pp"], table["photo_change_high_pp"])]
    table["train_minutes"] = table["train_seconds"] / 60
    columns = ["variant", "seeds", "in_domain_accuracy", "in_domain_change_pp", "photo_accuracy", "photo_change_pp",
               "photo_change_ci_pp", "photo_female_recall", "photo_male_recall", "photo_gap", "gap_change_pp",
               "detection_rate", "decision", "noise"]
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        print("\nper seed (%):\n" + per_seed.to_string(index=False))
        print("\nagainst the baseline (%, pp; gap = male - female recall, gap change = change of |gap|):\n"
              + table[columns].to_string(index=False))
        print("\nreasons:\n" + table[["variant", "reason"]].to_string(index=False))
        spread = seed_spread(rows)
        if not spread.empty:
            for column in ("minimum", "maximum", "range"):
                spread[column] = 100 * spread[column]
            print("\nseed to seed, nothing changed (%, range in pp; a single-seed change inside it is not evidence):\n"
                  + spread.to_string(index=False))
        print("\nthroughput (the run's recorded seconds: training and evaluation; img/s = epochs x train images / s):\n"
              + table[["variant", "train_minutes", "images_per_second"]].to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="baseline,size112,size128,photo_augment,context_swap,context_swap_quarter,lite1,lite2,balanced_gender_age",
                        help=f"comma-separated built-in variants: {', '.join(CANDIDATES)}")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=JSON",
                        help="an ad-hoc variant: TrainConfig overrides as JSON (repeatable)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, the same for every variant")
    parser.add_argument("--profile", default="default", help="training profile of the baseline (default, full)")
    parser.add_argument("--photos", default="../shared/data/fairface-dev", help="folder with labels.csv and photos")
    parser.add_argument("--data-dir", default="data", help="folder holding manifests/ and cache/")
    parser.add_argument("--out", default="data/ab_real_photos", help="checkpoints/ and results.jsonl go here")
    parser.add_argument("--checkpoint-dir", default="", help="run folders and run index ('': <out>/checkpoints)")
    parser.add_argument("--device", default="", help="cpu, cuda or mps ('': best available)")
    parser.add_argument("--peer-ensemble", choices=PEER_ENSEMBLE_MODES, default="off",
                        help="the prediction path's answer (default off: the model alone, so a training change is "
                             "measured on the model, like its in-domain figure; auto: as shipped, with the dlib peer "
                             "averaged in for black boxes)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the intervals")
    parser.add_argument("--report-only", action="store_true", help="print the tables of results.jsonl, train nothing")
    arguments = parser.parse_args()
    out = Path(arguments.out)
    variants = parse_variants(arguments.variants, arguments.extra)
    if BASELINE not in variants:
        variants = {BASELINE: {}, **variants}
    if arguments.report_only:
        rows = read_results(out / "results.jsonl")
    else:
        seeds = [int(seed) for seed in arguments.seeds.split(",")]
        rows = run_ab(variants, seeds, out / "results.jsonl",
                      trainer(arguments.profile, arguments.checkpoint_dir or str(out / "checkpoints"), arguments.data_dir, arguments.device, progress=True),
                      photo_evaluator(arguments.photos, arguments.device, arguments.bootstrap, arguments.peer_ensemble))
    print_tables(rows, arguments.bootstrap)


if __name__ == "__main__":
    main()
