"""The command line of the real-photo evaluation (``python -m nbhelpers.evaluate``).

    python -m nbhelpers.evaluate --checkpoint data/checkpoints/<run>/model.pt \\
        --labels ../shared/data/fairface-dev/labels.csv ../shared/data/fairface-dev --output reports/real_photos

Without ``--checkpoint`` the suite's default run in ``--checkpoint-dir`` is evaluated
(``nbhelpers.training.default_run``, the model the upload page and ``python -m nbhelpers.predict`` use).

The answer is the prediction path's, with its peer ensemble (``--peer-ensemble``, default ``auto``: a
black-box model's probabilities averaged with the dlib peer's; ``nbhelpers.predict.predictor``) and its deep
ensemble (``--deep-ensemble``, default ``auto``: the runs of the same recipe with other seeds or the context
swap averaged in) and its face-descriptor probe (``--descriptor-probe``, default ``auto``: when the checkpoint
folder holds one); the named model alone is reported beside it (``model alone``) and the peer on its own too (unless ``--no-peer``).

Prints the headline figures, the per-group table and the risk-coverage table; with ``--output`` also
writes ``photos.csv`` (one row per photo), ``groups.csv``, ``coverage.csv`` and ``summary.json``
there (atomically). ``--audit`` adds the intersectional audit (``nbhelpers.fairness.audit``): gender x
each group column and x apparent skin tone, the worst cell beside the published Gender Shades figures,
skin tone by race (when the labels have a ``race`` column) and the uncertain rule's coverage per group;
printed, and written as ``audit.csv`` and ``audit.json`` with ``--output``. Exit code 0, or 2 for an
unusable checkpoint or labels file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import pandas as pd

from nbhelpers.predict.faces import add_detector_arguments, detector_from_arguments
from nbhelpers.predict.ensemble_arguments import (add_deep_ensemble_argument, add_descriptor_probe_argument,
                                                  add_peer_ensemble_argument)
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.real_photos import evaluate_and_write, read_labels
from nbhelpers.training.checkpoint import CheckpointError
from nbhelpers.training.runs import checkpoint_or_default

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The evaluation command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("photos", help="folder holding the labelled photos")
    parser.add_argument("--checkpoint", default=None,
                        help="model checkpoint (model.pt of a trained run; default: the suite's default run)")
    parser.add_argument("--checkpoint-dir", default="data/checkpoints",
                        help="run index searched for the default run when --checkpoint is not given")
    parser.add_argument("--labels", required=True, help="CSV with file, gender (female|male) and group columns")
    parser.add_argument("--output", default="", help="folder for photos.csv, groups.csv, coverage.csv, summary.json")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    parser.add_argument("--no-peer", action="store_true",
                        help="no row for the dlib-models peer on its own (the answer still averages it in unless "
                             "--peer-ensemble off)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    add_detector_arguments(parser)
    add_peer_ensemble_argument(parser)
    add_deep_ensemble_argument(parser)
    add_descriptor_probe_argument(parser)
    parser.add_argument("--no-detect", action="store_true", help="skip face detection: the photos are face crops")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--audit", action="store_true",
                        help="also the intersectional audit (gender x groups x skin tone, coverage): audit.csv/json")
    return parser


def _print_audit(audited: dict) -> None:
    """The audit's tables, worst cell and coverage sentence on standard output."""
    print(audited["intersections"].to_string(index=False))
    print(json.dumps({"worst_cell": audited["worst_cell"]}, indent=2))
    print(audited["gender_shades"].to_string(index=False))
    if audited["skin_tone_by_race"] is not None:
        print(audited["skin_tone_by_race"].to_string(index=False))
    print(audited["coverage"].to_string(index=False))
    print(audited["coverage_sentence"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; print the summary and tables; return the exit code."""
    arguments = build_parser().parse_args(argv)
    try:
        labels = read_labels(arguments.labels)
        checkpoint, note = checkpoint_or_default(arguments.checkpoint, arguments.checkpoint_dir)
        if note:
            print(note, file=sys.stderr)
        predictor = Predictor(checkpoint, arguments.device, detect=not arguments.no_detect,
                              detector=detector_from_arguments(arguments), peer_ensemble=arguments.peer_ensemble,
                              deep_ensemble=arguments.deep_ensemble,
                              descriptor_probe=arguments.descriptor_probe)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    if predictor.ensemble_note:
        print(predictor.ensemble_note, file=sys.stderr)
    peer = None
    if not arguments.no_peer:
        from nbhelpers.models.peer import PeerGenderClassifier

        peer = predictor.peer or PeerGenderClassifier()  # the ensemble's own peer session when it has one
    result = evaluate_and_write(predictor, labels, arguments.photos, arguments.output, arguments.bootstrap, peer,
                                arguments.seed, audit=arguments.audit)
    print(json.dumps(result["summary"], indent=2))
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(result["groups"].to_string(index=False))
        print(result["coverage"].to_string(index=False))
        if "audit" in result:
            _print_audit(result["audit"])
    return 0
