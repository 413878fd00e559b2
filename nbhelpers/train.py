"""One training entry point for notebooks, batch jobs and ``torchrun``.

    python -m nbhelpers.train --model resnet9 --profile default
    torchrun --nproc_per_node=4 -m nbhelpers.train --model resnet18 --profile full

``run_training(TrainConfig(...))`` reads the manifest, builds (or reuses) the cache, trains with
``fit_one_cycle`` and evaluates on val and test. Under ``torchrun`` it joins the process group
(NCCL on GPUs, gloo on CPU), shards batches with a DistributedSampler and reduces the metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as distributed

from nbhelpers.cache import build_cache
from nbhelpers.device import get_default_device
from nbhelpers.evaluation import classification_metrics, predict_probabilities
from nbhelpers.groups import GROUPING_SEPARATOR, group_balanced_weights
from nbhelpers.loaders import CLASSES, CachedBatchLoader
from nbhelpers.manifest import manifest_path, read_manifest
from nbhelpers.models import create_model
from nbhelpers.profiles import training_profile
from nbhelpers.training import EarlyStopping, fit_one_cycle, is_main_process
from nbhelpers.transforms import build_pipeline, channel_stats

__all__ = ["TrainConfig", "set_seed", "run_training", "run_summary", "run_directory", "main"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@dataclass
class TrainConfig:
    """Everything one training run needs; every field has a command-line flag of the same name.

    ``balance`` names a grouping of manifest columns (``"race"``, ``"gender x age_band"``): training then
    samples faces group-balanced (``group_balanced_weights``), the mitigation experiment of the bias study.
    """

    model: str = "resnet9"
    dataset: str = "utkface"
    data_dir: str = "data"
    image_size: int = 48
    pipeline: str = "pad_crop_flip"
    epochs: int = 4
    batch_size: int = 128
    max_lr: float = 0.01
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    optimizer: str = "adam"
    patience: int = 0
    seed: int = 0
    pretrained: str = ""
    width: int = 0
    train_limit: int = 0
    flip_tta: bool = True
    balance: str = ""
    checkpoint_dir: str = ""
    device: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _model_kwargs(config: TrainConfig) -> dict[str, Any]:
    kwargs = dict(config.model_kwargs)
    if config.pretrained:
        kwargs["pretrained"] = True if config.pretrained == "imagenet" else config.pretrained
    if config.width:
        kwargs["width"] = config.width
    return kwargs


def run_directory(config: TrainConfig) -> Path | None:
    """``<checkpoint_dir>/<model>-<hash of the settings>``: a changed setting never resumes another run."""
    if not config.checkpoint_dir:
        return None
    settings = {key: value for key, value in asdict(config).items() if key not in {"checkpoint_dir", "device"}}
    if not settings["balance"]:
        del settings["balance"]  # runs without it keep the names they had before the field existed
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return Path(config.checkpoint_dir) / f"{config.model}-{digest}"


def _balance_weights(cache: Any, config: TrainConfig) -> np.ndarray | None:
    if not config.balance:
        return None
    columns = [column.strip() for column in config.balance.split(GROUPING_SEPARATOR)]
    frame = cache.frame
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise KeyError(f"balance={config.balance!r}: the {config.dataset} manifest has no column(s) {missing}; "
                       f"it has {list(frame.columns)}")
    rows = cache.split_indices("train")[:config.train_limit or None]
    return group_balanced_weights(frame.iloc[rows].reset_index(drop=True), tuple(columns))


def run_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The key figures of a run, for ``reports/summary.json``."""
    test, val = result["test"], result["val"]
    return {"test_accuracy": test["accuracy"], "test_per_class_accuracy": test["per_class_accuracy"],
            "test_balanced_accuracy": test["balanced_accuracy"], "test_count": test["count"],
            "val_accuracy": val["accuracy"], "epochs_run": result["epochs_run"], "seconds": round(result["seconds"], 1),
            "input_size": result["metadata"]["input_size"], "pretrained_source": result["metadata"]["pretrained_source"],
            "checkpoint": str(result["checkpoint"]) if result["checkpoint"] else None}


def _distributed_setup() -> tuple[int, int]:
    if "RANK" in os.environ and not distributed.is_initialized():
        distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return 0, 1


def run_training(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train and evaluate one model; return history, val/test metrics, test probabilities and metadata."""
    start = time.perf_counter()
    rank, world_size = _distributed_setup()
    set_seed(config.seed)
    device = get_default_device(config.device or None)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    frame = read_manifest(manifest_path(config.dataset, config.data_dir))
    cache = build_cache(frame, config.dataset, config.image_size, Path(config.data_dir) / "cache")
    mean, std = channel_stats(cache.images, cache.split_indices("train"))
    train_transform = build_pipeline(config.pipeline, True, mean, std)
    eval_transform = build_pipeline(config.pipeline, False, mean, std)
    train_dl = CachedBatchLoader(cache, "train", config.batch_size, shuffle=True, transform=train_transform,
                                 seed=config.seed, rank=rank, world_size=world_size, limit=config.train_limit or None,
                                 weights=_balance_weights(cache, config))
    val_dl = CachedBatchLoader(cache, "val", 2 * config.batch_size, transform=eval_transform, rank=rank, world_size=world_size)
    model = create_model(config.model, num_classes=len(CLASSES), **_model_kwargs(config))
    metadata = {"model": config.model, "model_kwargs": model.model_kwargs, "classes": list(CLASSES),
                "input_size": config.image_size, "pipeline": config.pipeline, "mean": list(mean), "std": list(std),
                "pretrained_source": getattr(model, "pretrained_source", None), "dataset": config.dataset,
                "config": asdict(config)}
    early_stopping = EarlyStopping(patience=config.patience) if config.patience else None
    history = fit_one_cycle(config.epochs, config.max_lr, model, train_dl, val_dl, config.weight_decay,
                            config.grad_clip or None, OPTIMIZERS[config.optimizer], early_stopping=early_stopping,
                            checkpoint_dir=run_directory(config), metadata=metadata, device=device,
                            progress=progress and is_main_process(), verbose=is_main_process())
    checkpoint = run_directory(config)
    result: dict[str, Any] = {"history": history, "metadata": metadata, "model": model, "cache": cache,
                              "checkpoint": checkpoint / "best.pt" if checkpoint else None}
    for split in ("val", "test"):
        loader = CachedBatchLoader(cache, split, 2 * config.batch_size, transform=eval_transform)
        probabilities, labels = predict_probabilities(model, loader, device, config.flip_tta, progress)
        result[split] = classification_metrics(labels, probabilities)
        result[f"{split}_probabilities"], result[f"{split}_rows"] = probabilities, loader.rows
    result["seconds"] = time.perf_counter() - start
    result["epochs_run"] = len(history)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--model`` and ``--profile`` pick a configuration; other flags override it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default")
    for item in fields(TrainConfig):
        if item.name != "model_kwargs":
            kind = (lambda text: text.lower() in {"1", "true", "yes"}) if item.type in ("bool", bool) else \
                {"int": int, "float": float}.get(str(item.type), str)
            parser.add_argument(f"--{item.name.replace('_', '-')}", type=kind, default=None)
    parser.add_argument("--output", default="", help="write the metrics as JSON here")
    args = vars(parser.parse_args(argv))
    model = args["model"] or TrainConfig.model
    values = {**training_profile(model, args.pop("profile")), "model": model}
    values.update({key: value for key, value in args.items() if value is not None and key != "output"})
    result = run_training(TrainConfig(**values))
    if is_main_process():
        summary = {key: result[key] for key in ("val", "test", "seconds", "epochs_run")}
        print(json.dumps(summary, indent=2))
        if args["output"]:
            from nbhelpers.atomic import atomic_write_json

            atomic_write_json(args["output"], {**summary, "history": result["history"]})
    if distributed.is_initialized():
        distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
