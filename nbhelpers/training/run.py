"""One training entry point for notebooks, batch jobs (``python -m nbhelpers.train``) and ``torchrun``.

``run_training(TrainConfig(...))`` resolves the model's registered pipeline and input size, reads the
manifest, builds (or reuses) the cache, trains with ``fit_one_cycle``, evaluates on val and test, saves
the evaluated weights as ``model.pt`` in the run folder and records the run in the run index
(``nbhelpers.training.runs``). With ``config.teacher`` it trains on the teacher's soft targets
(``nbhelpers.training.distillation``, Hinton et al. 2015) and records the teacher's run id. Under
``torchrun`` it joins the process group (NCCL on GPUs, gloo on CPU), shards batches like a
DistributedSampler and reduces the metrics.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as distributed

from nbhelpers.data.cache import ImageCache, build_cache
from nbhelpers.data.groups import GROUPING_SEPARATOR, group_balanced_weights
from nbhelpers.data.loaders import CLASSES, CachedBatchLoader
from nbhelpers.data.manifest import manifest_path, read_manifest
from nbhelpers.data.photo_augment import build_augmentation
from nbhelpers.data.transforms import build_pipeline, pipeline_statistics
from nbhelpers.models import cam_layer_spec, create_model
from nbhelpers.training.abstention import abstention_threshold
from nbhelpers.training.checkpoint import save_checkpoint
from nbhelpers.training.config import OPTIMIZERS, TrainConfig, resolve_config, run_directory, set_seed
from nbhelpers.training.distillation import load_teacher, soft_targets, teacher_probabilities
from nbhelpers.training.evaluation import classification_metrics, predict_probabilities
from nbhelpers.training.fit import EarlyStopping, fit_one_cycle, is_main_process
from nbhelpers.training.result import SplitPredictions, TrainedModel, TrainingResult
from nbhelpers.training.runs import record_run
from nbhelpers.utils.device import get_default_device
from nbhelpers.utils.registry import lookup

__all__ = ["run_training", "MODEL_FILE"]

MODEL_FILE = "model.pt"  # the evaluated weights of a run, without optimizer state


def _balance_weights(cache: ImageCache, config: TrainConfig) -> np.ndarray | None:
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


def _distillation_targets(cache: ImageCache, config: TrainConfig, device: torch.device,
                           progress: bool) -> tuple[np.ndarray | None, str]:
    """(soft targets of every cache row, the teacher's run id or checkpoint) with ``config.teacher``, else
    (None, ""); every rank computes them (the same file, written atomically)."""
    if not config.teacher:
        return None, ""
    teacher = load_teacher(config.teacher, config.checkpoint_dir, device)
    if tuple(teacher.spec.classes) != tuple(CLASSES):
        raise ValueError(f"teacher {teacher.checkpoint}: classes {teacher.spec.classes}, the student's are {CLASSES}")
    probabilities = teacher_probabilities(teacher, cache, 2 * config.batch_size, config.flip_tta, progress)
    return soft_targets(cache, probabilities, config.distillation), teacher.run_id or str(teacher.checkpoint)


def _distributed_setup() -> tuple[int, int]:
    if "RANK" in os.environ and not distributed.is_initialized():
        distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return 0, 1


def _model_kwargs(config: TrainConfig) -> dict[str, Any]:
    kwargs = dict(config.model_kwargs)
    if config.pretrained:
        kwargs["pretrained"] = True if config.pretrained == "imagenet" else config.pretrained
    if config.width:
        kwargs["width"] = config.width
    return kwargs


def _evaluate_splits(result: TrainingResult, transform: Any, config: TrainConfig, device: torch.device,
                     progress: bool) -> None:
    """Metrics and predictions of val and test; the abstention threshold from val (``uncertain_below``)."""
    for split in ("val", "test"):
        loader = CachedBatchLoader(result.cache, split, 2 * config.batch_size, transform=transform)
        probabilities, labels = predict_probabilities(result.model, loader, device, config.flip_tta, progress)
        result.metrics[split] = classification_metrics(labels, probabilities)
        result.predictions[split] = SplitPredictions(probabilities, labels, np.asarray(loader.rows))
    val = result.predictions["val"]
    if len(val.labels):
        result.model.spec = result.spec.replace(uncertain_below=abstention_threshold(val.probabilities, val.labels))


def _save_and_record(result: TrainingResult, config: TrainConfig, folder: Path | None) -> None:
    """Write the evaluated weights to ``folder/model.pt`` and record the run in the index (rank 0 only)."""
    if folder is None or not is_main_process():
        return
    trained = result.trained
    trained.checkpoint, trained.run_id = folder / MODEL_FILE, folder.name
    save_checkpoint(trained.checkpoint, {"model_state": trained.model.state_dict(), "metadata": trained.spec.to_dict(),
                                         "train_config": asdict(config), "metrics": result.metrics,
                                         "history": result.history})
    record_run(config.checkpoint_dir, result, asdict(config))


def _train_transform(config: TrainConfig, mean: Any, std: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pipeline's training transform, after the named extra augmentation (``config.augment``) if any."""
    pipeline = build_pipeline(config.pipeline, True, mean, std)
    augment = build_augmentation(config.augment, config.seed)
    return pipeline if augment is None else (lambda batch: pipeline(augment(batch)))


def _attach_spec(model: torch.nn.Module, config: TrainConfig, mean: Any, std: Any) -> None:
    """The run's spec on the model: its input size, pipeline and statistics, dataset and CAM layer."""
    model.spec = model.spec.replace(input_size=config.image_size, pipeline=config.pipeline, mean=mean, std=std,
                                    pretrained=config.pretrained, dataset=config.dataset)
    model.spec = model.spec.replace(cam_layer=cam_layer_spec(model, config.image_size))


def run_training(config: TrainConfig, progress: bool = True) -> TrainingResult:
    """Train and evaluate one model; return it with its run spec (``result.spec``), history, val/test metrics
    and predictions."""
    start = time.perf_counter()
    # the run folder is named from the settings as given: resolving twice would read a resolved "" (random
    # initialisation asked for with pretrained="none") as "the registered weights" and reuse their run's folder
    folder = run_directory(config)
    config = resolve_config(config)
    rank, world_size = _distributed_setup()
    set_seed(config.seed)
    device = get_default_device(config.device or None)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    frame = read_manifest(manifest_path(config.dataset, config.data_dir))
    cache = build_cache(frame, config.dataset, config.image_size, Path(config.data_dir) / "cache")
    mean, std = pipeline_statistics(config.pipeline, cache.images, cache.split_indices("train"))
    targets, teacher = _distillation_targets(cache, config, device, progress and is_main_process())
    train_dl = CachedBatchLoader(cache, "train", config.batch_size, shuffle=True, seed=config.seed, rank=rank,
                                 transform=_train_transform(config, mean, std), world_size=world_size,
                                 limit=config.train_limit or None, weights=_balance_weights(cache, config),
                                 targets=targets)
    eval_transform = build_pipeline(config.pipeline, False, mean, std)
    val_dl = CachedBatchLoader(cache, "val", 2 * config.batch_size, transform=eval_transform, rank=rank, world_size=world_size)
    model = create_model(config.model, num_classes=len(CLASSES), **_model_kwargs(config))
    model.label_smoothing = config.label_smoothing
    _attach_spec(model, config, mean, std)
    history = fit_one_cycle(config.epochs, config.max_lr, model, train_dl, val_dl, config.weight_decay,
                            config.grad_clip or None, lookup(OPTIMIZERS, "optimizer", config.optimizer),
                            early_stopping=EarlyStopping(patience=config.patience) if config.patience else None,
                            checkpoint_dir=folder, metadata=model.spec.to_dict(), device=device,
                            progress=progress and is_main_process(), verbose=is_main_process(),
                            head=(model.spec.classifier, config.head_lr_scale))
    result = TrainingResult(TrainedModel(model), history=history, cache=cache, teacher=teacher)
    _evaluate_splits(result, eval_transform, config, device, progress)
    result.seconds = time.perf_counter() - start
    _save_and_record(result, config, folder)
    return result
