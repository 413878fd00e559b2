"""The parameters each run profile sets in each notebook, for papermill (``make reports``) and the tests.

``PROFILES`` maps each notebook to the parameters a profile overrides; anything it does not name keeps
the value written in the notebook's ``parameters`` cell. A training notebook's parameters come from the
training profile (``nbhelpers.training.profiles.TRAINING``): ``EPOCHS``, ``IMAGE_SIZE``, ... and, for a
second model in the same notebook, ``BASELINE_EPOCHS`` and so on (``NOTEBOOK_MODELS``).
"""

from __future__ import annotations

from nbhelpers.training.profiles import training_profile
from nbhelpers.utils.registry import lookup

__all__ = ["PROFILES", "NOTEBOOK_MODELS", "profile_parameters"]

# notebook -> {parameter prefix: model name}
NOTEBOOK_MODELS: dict[str, dict[str, str]] = {
    "03_resnet9_scratch": {"": "resnet9", "BASELINE_": "simple_cnn"},
    "04_resnet18_finetune": {"": "resnet18", "TRANSFER_": "efficientnet_lite0"},
    "05_bcos_training": {"": "bcos_resnet18", "LITE_": "bcos_efficientnet_lite0"},
}

PROFILES: dict[str, dict[str, dict[str, object]]] = {
    "smoke": {
        "01_download": {"LIMIT": 800, "GRID_SIZE": 8},
        "02_augment": {"IMAGE_SIZE": 32, "FINETUNE_SIZE": 48, "GRID_SIZE": 4},
        "04_resnet18_finetune": {"TRANSFER_SEEDS": 2, "TRANSFER_CONTEXT_SEEDS": 1, "DESCRIPTOR_PROBE_FACES": 40},  # the ensembles
        "06_gradcam_analysis": {"FACES": 24, "MOSAICS": 6, "ROAD_FACES": 8, "STEPS": 4, "GALLERY_SIZE": 3},
        "07_bias_study": {"BOOTSTRAP": 100, "MIN_COUNT": 5, "EXPLAIN_FACES": 16, "STEPS": 4, "GALLERY_SIZE": 3,
                          "DIAGNOSIS_PHOTOS": 12},
        "08_predict": {"WIDE_FACES": 12, "EXAMPLES": 2, "BOOTSTRAP": 200},
    },
    "default": {},
    "full": {
        "02_augment": {"IMAGE_SIZE": 64, "FINETUNE_SIZE": 224},
        "04_resnet18_finetune": {"TRANSFER_SEEDS": 2},  # a deep ensemble: +0.5 to +1.0 pp in-domain (README, issue 21)
        "06_gradcam_analysis": {"FACES": 500, "ROAD_FACES": 500,
                                "MODELS": "resnet18,bcos_resnet18,efficientnet_lite0,bcos_efficientnet_lite0"},
    },
}



def profile_parameters(notebook: str, profile: str) -> dict[str, object]:
    """The parameters that ``profile`` sets for ``notebook`` (its stem, e.g. ``"01_download"``)."""
    notebooks = lookup(PROFILES, "profile", profile)
    parameters: dict[str, object] = {"PROFILE": profile}
    for prefix, model in NOTEBOOK_MODELS.get(notebook, {}).items():
        parameters[f"{prefix}MODEL"] = model
        parameters.update({f"{prefix}{key.upper()}": value for key, value in training_profile(model, profile).items()})
    return {**parameters, **notebooks.get(notebook, {})}
