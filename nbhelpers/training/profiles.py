"""Named run profiles: ``smoke`` (tests, minutes), ``default`` (``make reports`` on a 2-core CPU)
and ``full`` (a GPU).

``PROFILES`` maps each notebook to the parameters a profile overrides; anything it does not name
keeps the value written in the notebook's ``parameters`` cell. Training settings live in
``TRAINING`` (profile -> model -> ``TrainConfig`` fields), shared by the notebooks and the
``python -m nbhelpers.training.run`` command line; a notebook's training parameters are derived from it
(``EPOCHS``, ``IMAGE_SIZE``, ... and, for a second model in the same notebook, ``BASELINE_EPOCHS``
and so on), and the default values in the notebooks are checked against it by the tests.
"""

from __future__ import annotations

from nbhelpers.utils.registry import lookup

__all__ = ["PROFILES", "PROFILE_NAMES", "TRAINING", "NOTEBOOK_MODELS", "profile_parameters", "training_profile"]

_SMOKE = {"epochs": 1, "image_size": 32, "train_limit": 384, "batch_size": 64}

TRAINING: dict[str, dict[str, dict[str, object]]] = {
    "smoke": {
        "simple_cnn": {**_SMOKE, "max_lr": 0.003},
        "resnet9": {**_SMOKE, "width": 8, "max_lr": 0.01},
        "resnet18": {**_SMOKE, "max_lr": 0.003, "patience": 2, "pretrained": "imagenet"},
        "resnet50": {**_SMOKE, "width": 8, "max_lr": 0.003, "patience": 2},
        "efficientnet_lite0": {**_SMOKE, "max_lr": 0.001, "patience": 2, "pretrained": "imagenet", "optimizer": "adamw",
                               "label_smoothing": 0.1},
        "bcos_resnet18": {**_SMOKE, "width": 8, "max_lr": 0.003},
    },
    "default": {  # 2-core CPU, about an hour for all notebooks (README: measured times and img/s)
        "simple_cnn": {"epochs": 2, "image_size": 40, "max_lr": 0.003, "train_limit": 0, "batch_size": 128},
        "resnet9": {"epochs": 2, "image_size": 40, "width": 24, "max_lr": 0.01, "train_limit": 0, "batch_size": 128},
        "resnet18": {"epochs": 3, "image_size": 64, "max_lr": 0.003, "patience": 2, "pretrained": "imagenet",
                     "train_limit": 0, "batch_size": 128},
        "efficientnet_lite0": {"epochs": 4, "image_size": 96, "max_lr": 0.002, "patience": 2, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 64},
        "bcos_resnet18": {"epochs": 4, "image_size": 64, "width": 64, "max_lr": 0.003, "train_limit": 0, "batch_size": 128},
    },
    "full": {
        "simple_cnn": {"epochs": 15, "image_size": 64, "max_lr": 0.003, "train_limit": 0, "batch_size": 128},
        "resnet9": {"epochs": 20, "image_size": 64, "width": 64, "max_lr": 0.01, "train_limit": 0, "batch_size": 128},
        "resnet18": {"epochs": 30, "image_size": 224, "max_lr": 0.001, "patience": 5, "pretrained": "imagenet",
                     "train_limit": 0, "batch_size": 128},
        "efficientnet_lite0": {"epochs": 15, "image_size": 224, "max_lr": 0.0005, "patience": 4, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 128},
        "bcos_resnet18": {"epochs": 30, "image_size": 224, "width": 64, "max_lr": 0.001, "train_limit": 0,
                          "batch_size": 128},
    },
}

PROFILE_NAMES = tuple(TRAINING)

# notebook -> {parameter prefix: model name}
NOTEBOOK_MODELS: dict[str, dict[str, str]] = {
    "03_resnet9_scratch": {"": "resnet9", "BASELINE_": "simple_cnn"},
    "04_resnet18_finetune": {"": "resnet18", "TRANSFER_": "efficientnet_lite0"},
    "05_bcos_training": {"": "bcos_resnet18"},
}

PROFILES: dict[str, dict[str, dict[str, object]]] = {
    "smoke": {
        "01_download": {"LIMIT": 800, "GRID_SIZE": 8},
        "02_augment": {"IMAGE_SIZE": 32, "FINETUNE_SIZE": 48, "GRID_SIZE": 4},
        "06_gradcam_analysis": {"FACES": 24, "MOSAICS": 6, "ROAD_FACES": 8, "STEPS": 4, "GALLERY_SIZE": 3},
        "07_bias_study": {"BOOTSTRAP": 100, "MIN_COUNT": 5, "EXPLAIN_FACES": 16, "STEPS": 4, "GALLERY_SIZE": 3},
        "08_predict": {"WIDE_FACES": 12, "EXAMPLES": 2, "BOOTSTRAP": 200},
    },
    "default": {},
    "full": {
        "02_augment": {"IMAGE_SIZE": 64, "FINETUNE_SIZE": 224},
        "06_gradcam_analysis": {"FACES": 500, "ROAD_FACES": 500, "MODELS": "resnet18,bcos_resnet18,efficientnet_lite0"},
    },
}


def training_profile(model: str, profile: str) -> dict[str, object]:
    """The ``TrainConfig`` fields that ``profile`` sets for ``model``."""
    models = lookup(TRAINING, "profile", profile)
    if model not in models:
        raise KeyError(f"profile {profile!r} has no settings for model {model!r}; choose one of {sorted(models)}")
    return dict(models[model])


def profile_parameters(notebook: str, profile: str) -> dict[str, object]:
    """The parameters that ``profile`` sets for ``notebook`` (its stem, e.g. ``"01_download"``)."""
    notebooks = lookup(PROFILES, "profile", profile)
    parameters: dict[str, object] = {"PROFILE": profile}
    for prefix, model in NOTEBOOK_MODELS.get(notebook, {}).items():
        parameters[f"{prefix}MODEL"] = model
        parameters.update({f"{prefix}{key.upper()}": value for key, value in training_profile(model, profile).items()})
    return {**parameters, **notebooks.get(notebook, {})}
