"""The training command line, run as ``python -m nbhelpers.train`` (also under ``torchrun``).

    python -m nbhelpers.train --model resnet9 --profile default
    torchrun --nproc_per_node=4 -m nbhelpers.train --model resnet18 --profile full

``--model`` and ``--profile`` pick a configuration of ``nbhelpers.training.profiles``; every
``TrainConfig`` field has a flag (with its help text) that overrides it. Pipeline and input size
default to the model's registered configuration, as in the notebooks.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any, Sequence

import torch.distributed as distributed

from nbhelpers.training.config import TrainConfig
from nbhelpers.training.fit import is_main_process
from nbhelpers.training.profiles import PROFILE_NAMES, training_profile
from nbhelpers.training.run import run_training
from nbhelpers.utils.atomic import atomic_write_json

__all__ = ["build_parser", "main"]


def _parse_bool(text: str) -> bool:
    return text.lower() in {"1", "true", "yes"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``--profile``, one flag per ``TrainConfig`` field, ``--output``."""
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.train", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", help=f"settings profile: {', '.join(PROFILE_NAMES)}")
    for item in fields(TrainConfig):
        if item.name == "model_kwargs":
            continue
        kind = {"bool": _parse_bool, "int": int, "float": float}.get(str(item.type), str)
        parser.add_argument(f"--{item.name.replace('_', '-')}", type=kind, default=None,
                            help=f"{item.metadata['help']} (default: the profile's, else {item.default!r})")
    parser.add_argument("--output", default="", help="also write the metrics and history as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Train one model as the flags say; print its val/test metrics as JSON; return the exit code."""
    args = vars(build_parser().parse_args(argv))
    output, profile = args.pop("output"), args.pop("profile")
    model = args["model"] or TrainConfig.model
    values: dict[str, Any] = {**training_profile(model, profile), "model": model}
    values.update({key: value for key, value in args.items() if value is not None})
    trained = run_training(TrainConfig(**values))
    if is_main_process():
        summary = {**trained.metrics, "seconds": trained.seconds, "epochs_run": trained.epochs_run,
                   "checkpoint": str(trained.trained.checkpoint) if trained.trained.checkpoint else None,
                   "run_id": trained.trained.run_id}
        print(json.dumps(summary, indent=2))
        if output:
            atomic_write_json(output, {**summary, "history": trained.history})
    if distributed.is_initialized():
        distributed.destroy_process_group()
    return 0
