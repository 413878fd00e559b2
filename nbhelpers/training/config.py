"""``TrainConfig``: everything one training run needs, with a help text per field for the command line.

Fields left empty take the model's registered run spec (``nbhelpers.models.model_spec``):
``pipeline=""`` the model's input pipeline and normalisation, ``image_size=0`` its default input size.
``resolve_config`` fills them in; ``run_directory`` names a run's checkpoint folder after the resolved
settings, so the notebooks and the command line reach the same folder for the same settings.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import torch

from nbhelpers.models import model_spec

__all__ = ["TrainConfig", "OPTIMIZERS", "SHARED_PARAMETERS", "config_from_parameters", "resolve_config", "run_directory",
           "run_settings", "set_seed"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Everything one training run needs; every field has a command-line flag of the same name.

    ``balance`` names a grouping of manifest columns (``"race"``, ``"gender x age_band"``): training then
    samples faces group-balanced (``group_balanced_weights``), the mitigation experiment of the bias study.
    ``teacher`` trains on soft targets mixing the label with a trained model's probabilities
    (``nbhelpers.training.distillation``), weighted by ``distillation``.
    """

    model: str = _help("registered model name (nbhelpers.models.list_models())", "resnet9")
    dataset: str = _help("dataset whose manifest is read: utkface, celeba, fairface or folder", "utkface")
    data_dir: str = _help("folder holding manifests/ and cache/", "data")
    image_size: int = _help("input size in px (0: the model's registered default)", 0)
    pipeline: str = _help("input pipeline pad_crop_flip, finetune or bcos ('': the model's own)", "")
    epochs: int = _help("training epochs (one-cycle schedule over all of them)", 4)
    batch_size: int = _help("batch size per process", 128)
    max_lr: float = _help("peak learning rate of the one-cycle schedule", 0.01)
    head_lr_scale: float = _help("peak learning rate of the classifier head as a multiple of max_lr (discriminative "
                                 "fine-tuning, Howard and Ruder 2018; 1: one rate for all)", 1.0)
    weight_decay: float = _help("optimizer weight decay", 1e-4)
    grad_clip: float = _help("clip gradients to this absolute value (0: off)", 0.1)
    optimizer: str = _help(f"optimizer: {', '.join(OPTIMIZERS)}", "adam")
    label_smoothing: float = _help("label smoothing of the cross-entropy loss (B-cos models use their own loss)", 0.0)
    patience: int = _help("early-stopping patience in epochs (0: no early stopping)", 0)
    seed: int = _help("seed of initialisation, shuffling and augmentation", 0)
    pretrained: str = _help("'imagenet', a local weights file, 'none' (random initialisation), or '' (the model's "
                            "registered default: ImageNet for resnet18, resnet50, efficientnet_lite0)", "")
    width: int = _help("channels of the first stage (0: the architecture's default)", 0)
    train_limit: int = _help("use only this many training images (0: all)", 0)
    flip_tta: bool = _help("average predictions with the mirrored image at evaluation (true/false)", True)
    augment: str = _help("extra training augmentation before the pipeline: '' (none), 'photo' (real-photo "
                         "degradations: detector jitter, blur, JPEG, lighting; nbhelpers.data.photo_augment) or "
                         "'context' / 'context_quarter' (for half / a quarter of the faces, the surroundings of the "
                         "inner face taken from another face: nbhelpers.data.context_swap)", "")
    balance: str = _help("group-balanced sampling over these manifest columns, e.g. 'gender x age_band'", "")
    teacher: str = _help("knowledge distillation (Hinton et al. 2015): a registered model name whose newest plain "
                         "run in checkpoint_dir is the teacher, or a teacher checkpoint file ('': none)", "")
    distillation: float = _help("weight of the teacher's probabilities in the soft training targets, (1 - it) on "
                                "the one-hot label; only used with a teacher", 0.5)
    checkpoint_dir: str = _help("where run folders and the run index go ('': no checkpoints)", "")
    device: str = _help("cpu, cuda or mps ('': best available)", "")
    model_kwargs: dict[str, Any] = field(default_factory=dict)


SHARED_PARAMETERS = ("dataset", "data_dir", "seed", "weight_decay", "grad_clip", "device")  # one value per notebook


def config_from_parameters(parameters: Mapping[str, Any], prefix: str = "", **overrides: Any) -> TrainConfig:
    """A ``TrainConfig`` from a notebook's parameters: every field ``name`` read from ``<PREFIX><NAME>``
    (e.g. ``TRANSFER_EPOCHS``), the shared fields (``SHARED_PARAMETERS``) also from ``<NAME>``, then
    ``overrides``; fields no parameter names keep their defaults. The parameters cell shows a profile's
    values (``nbhelpers.training.profiles``) and papermill overrides them, so no notebook copies fields by hand.
    Raises ``KeyError`` when ``<PREFIX>MODEL`` is missing."""
    if f"{prefix}MODEL" not in parameters:
        raise KeyError(f"no parameter {prefix}MODEL: the notebook must name the model it trains")
    values: dict[str, Any] = {}
    for item in fields(TrainConfig):
        for key in (f"{prefix}{item.name.upper()}", item.name.upper() if item.name in SHARED_PARAMETERS else None):
            if key and key in parameters:
                values[item.name] = parameters[key]
                break
    return TrainConfig(**{**values, **overrides})


def resolve_config(config: TrainConfig) -> TrainConfig:
    """``config`` with an empty ``pipeline``, a zero ``image_size`` and an empty ``pretrained`` taken from the
    model's registered run spec; ``pretrained="none"`` becomes ``""`` (random initialisation)."""
    registered = model_spec(config.model)
    pretrained = registered.pretrained if config.pretrained == "" else config.pretrained
    return replace(config, pipeline=config.pipeline or registered.pipeline,
                   image_size=config.image_size or registered.input_size,
                   pretrained="" if pretrained.lower() == "none" else pretrained)


def run_settings(config: TrainConfig, without: Collection[str] = ()) -> dict[str, Any]:
    """The settings that decide what a run learns, in the one canonical form the run folder's name hashes:
    ``config`` as a mapping without the checkpoint folder, the device and the names in ``without``, and without
    fields left at the value they had before they existed (so older runs keep their folder names)."""
    settings = {key: value for key, value in asdict(config).items()
                if key not in {"checkpoint_dir", "device", *without}}
    for added in ("balance", "label_smoothing", "augment"):
        if added in settings and not settings[added]:
            del settings[added]  # runs without it keep the names they had before the field existed
    if settings.get("head_lr_scale") == 1.0:
        del settings["head_lr_scale"]
    if "teacher" in settings and not settings["teacher"]:
        del settings["teacher"]  # the distillation weight means nothing without a teacher
        settings.pop("distillation", None)
    return settings


def run_directory(config: TrainConfig) -> Path | None:
    """``<checkpoint_dir>/<model>-<hash of the resolved settings>``: a changed setting never resumes another run."""
    if not config.checkpoint_dir:
        return None
    settings = run_settings(resolve_config(config))
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return Path(config.checkpoint_dir) / f"{config.model}-{digest}"


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
