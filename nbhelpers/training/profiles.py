"""Named training profiles: ``smoke`` (tests, minutes), ``default`` (``make reports`` on a 2-core CPU)
and ``full`` (a GPU).

``TRAINING`` (profile -> model -> ``TrainConfig`` fields) is the one place of every training
hyperparameter, shared by the notebooks (through ``nbhelpers.reporting.notebook_parameters``, which
derives their ``EPOCHS``, ``IMAGE_SIZE``, ... parameters from it; the tests check the values written in
the notebooks against it) and the ``python -m nbhelpers.train`` command line.
"""

from __future__ import annotations

from nbhelpers.utils.registry import lookup

__all__ = ["PROFILE_NAMES", "TRAINING", "training_profile"]

_SMOKE = {"epochs": 1, "image_size": 32, "train_limit": 384, "batch_size": 64}

TRAINING: dict[str, dict[str, dict[str, object]]] = {
    "smoke": {
        "simple_cnn": {**_SMOKE, "max_lr": 0.003},
        "resnet9": {**_SMOKE, "width": 8, "max_lr": 0.01},
        "resnet18": {**_SMOKE, "max_lr": 0.003, "patience": 2, "pretrained": "imagenet"},
        "resnet50": {**_SMOKE, "width": 8, "max_lr": 0.003, "patience": 2},
        "efficientnet_lite0": {**_SMOKE, "max_lr": 0.001, "patience": 2, "pretrained": "imagenet", "optimizer": "adamw",
                               "label_smoothing": 0.1},
        "efficientnet_lite1": {**_SMOKE, "max_lr": 0.001, "patience": 2, "pretrained": "imagenet", "optimizer": "adamw",
                               "label_smoothing": 0.1},
        "efficientnet_lite2": {**_SMOKE, "max_lr": 0.001, "patience": 2, "pretrained": "imagenet", "optimizer": "adamw",
                               "label_smoothing": 0.1},
        "bcos_resnet18": {**_SMOKE, "width": 8, "max_lr": 0.003},
        "bcos_efficientnet_lite0": {**_SMOKE, "max_lr": 0.002, "head_lr_scale": 1.0, "pretrained": "imagenet"},
    },
    "default": {  # 2-core CPU, about an hour for all notebooks (README: measured times and img/s)
        # the tutorial models at 1 epoch and the B-cos Lite0 at 1 keep make reports near the hour (README: the 2-epoch
        # run took 77 min; simple CNN 85.7%, ResNet-9 88.7% and B-cos Lite0 83.2% with 2 epochs)
        "simple_cnn": {"epochs": 1, "image_size": 40, "max_lr": 0.003, "train_limit": 0, "batch_size": 128},
        "resnet9": {"epochs": 1, "image_size": 40, "width": 24, "max_lr": 0.01, "train_limit": 0, "batch_size": 128},
        "resnet18": {"epochs": 3, "image_size": 64, "max_lr": 0.003, "patience": 2, "pretrained": "imagenet",
                     "train_limit": 0, "batch_size": 128},
        "efficientnet_lite0": {"epochs": 4, "image_size": 96, "max_lr": 0.002, "patience": 2, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 64},
        # larger backbones for the real-photo A/B (benchmarks/ab_real_photos.py; not in make reports): a step costs
        # about 2x (Lite1 @112) and 2.4x (Lite2 @128) Lite0's @96, so 2 epochs match Lite0's 4-epoch budget
        "efficientnet_lite1": {"epochs": 2, "image_size": 112, "max_lr": 0.002, "patience": 2, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 64},
        "efficientnet_lite2": {"epochs": 2, "image_size": 128, "max_lr": 0.002, "patience": 2, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 64},
        "bcos_resnet18": {"epochs": 4, "image_size": 64, "width": 64, "max_lr": 0.003, "train_limit": 0, "batch_size": 128},
        # B-cosified Lite0 (notebook 05): about 2x Lite0's step time (README, issue 20)
        "bcos_efficientnet_lite0": {"epochs": 1, "image_size": 96, "max_lr": 0.002, "head_lr_scale": 1.0,
                                    "pretrained": "imagenet", "weight_decay": 0.0, "grad_clip": 0.0, "train_limit": 0,
                                    "batch_size": 64},
    },
    "full": {
        "simple_cnn": {"epochs": 15, "image_size": 64, "max_lr": 0.003, "train_limit": 0, "batch_size": 128},
        "resnet9": {"epochs": 20, "image_size": 64, "width": 64, "max_lr": 0.01, "train_limit": 0, "batch_size": 128},
        "resnet18": {"epochs": 30, "image_size": 224, "max_lr": 0.001, "patience": 5, "pretrained": "imagenet",
                     "train_limit": 0, "batch_size": 128},
        "efficientnet_lite0": {"epochs": 15, "image_size": 224, "max_lr": 0.0005, "patience": 4, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 128},
        "efficientnet_lite1": {"epochs": 15, "image_size": 240, "max_lr": 0.0005, "patience": 4, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 128},
        "efficientnet_lite2": {"epochs": 15, "image_size": 260, "max_lr": 0.0005, "patience": 4, "pretrained": "imagenet",
                               "optimizer": "adamw", "label_smoothing": 0.1, "train_limit": 0, "batch_size": 128},
        "bcos_resnet18": {"epochs": 30, "image_size": 224, "width": 64, "max_lr": 0.001, "train_limit": 0,
                          "batch_size": 128},
        "bcos_efficientnet_lite0": {"epochs": 15, "image_size": 224, "max_lr": 0.0005, "head_lr_scale": 1.0,
                                    "pretrained": "imagenet", "weight_decay": 0.0, "grad_clip": 0.0, "train_limit": 0,
                                    "batch_size": 128},
    },
}

PROFILE_NAMES = tuple(TRAINING)

def training_profile(model: str, profile: str) -> dict[str, object]:
    """The ``TrainConfig`` fields that ``profile`` sets for ``model``."""
    models = lookup(TRAINING, "profile", profile)
    if model not in models:
        raise KeyError(f"profile {profile!r} has no settings for model {model!r}; choose one of {sorted(models)}")
    return dict(models[model])
