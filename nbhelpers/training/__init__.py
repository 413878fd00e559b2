"""Training: the classification base steps, ``fit_one_cycle``, checkpoints, ``run_training`` and its
result type, the run index, evaluation (and the comparison with the dlib-models peer), named profiles and
training plots.

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.training.abstention import TARGET_ACCURACY, abstention_threshold, selective_accuracy
from nbhelpers.training.checkpoint import (
    CheckpointError,
    save_checkpoint,
    load_checkpoint,
    rng_state,
    restore_rng_state,
    model_from_checkpoint,
)
from nbhelpers.training.config import (
    TrainConfig,
    OPTIMIZERS,
    SHARED_PARAMETERS,
    config_from_parameters,
    resolve_config,
    run_directory,
    run_settings,
    set_seed,
)
from nbhelpers.training.distillation import load_teacher, teacher_probabilities, teacher_cache_path, soft_targets
from nbhelpers.training.evaluation import predict_probabilities, predict_faces, classification_metrics
from nbhelpers.training.face_probe import PROBE_NAME, PROBE_FACE_SIZE, probe_path, fit_face_probe, probe_probabilities
from nbhelpers.training.fit import EarlyStopping, evaluate, fit_one_cycle, is_main_process, parameter_groups
from nbhelpers.training.peer_comparison import PEER_ROW, PROBE_ROW, compare_with_peer, compare_run_with_peer, comparison_summary
from nbhelpers.training.plots import (
    plot_history,
    plot_confusion,
    show_predictions,
    show_split_predictions,
    metrics_table,
)
from nbhelpers.training.profiles import PROFILE_NAMES, TRAINING, training_profile
from nbhelpers.training.result import SplitPredictions, TrainedModel, TrainingResult
from nbhelpers.training.run import run_training, MODEL_FILE
from nbhelpers.training.runs import (
    INDEX_NAME,
    DEFAULT_MODELS,
    DEFAULT_ACCURACY_TOLERANCE,
    read_index,
    record_run,
    find_run,
    default_run,
    trained_checkpoints,
    load_run,
    load_trained_models,
    split_faces,
    reference_gap,
    checkpoint_or_default,
    ensemble_siblings,
    RECIPE_EXCLUDES,
    ENSEMBLE_AUGMENTATIONS,
    ensemble_recipes,
)

__all__ = [
    "TARGET_ACCURACY",
    "abstention_threshold",
    "selective_accuracy",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "restore_rng_state",
    "model_from_checkpoint",
    "TrainConfig",
    "OPTIMIZERS",
    "SHARED_PARAMETERS",
    "config_from_parameters",
    "resolve_config",
    "run_directory",
    "run_settings",
    "set_seed",
    "load_teacher",
    "teacher_probabilities",
    "teacher_cache_path",
    "soft_targets",
    "predict_probabilities",
    "predict_faces",
    "classification_metrics",
    "PROBE_NAME",
    "PROBE_FACE_SIZE",
    "probe_path",
    "fit_face_probe",
    "probe_probabilities",
    "EarlyStopping",
    "evaluate",
    "fit_one_cycle",
    "is_main_process",
    "parameter_groups",
    "PEER_ROW",
    "PROBE_ROW",
    "compare_with_peer",
    "compare_run_with_peer",
    "comparison_summary",
    "plot_history",
    "plot_confusion",
    "show_predictions",
    "show_split_predictions",
    "metrics_table",
    "PROFILE_NAMES",
    "TRAINING",
    "training_profile",
    "SplitPredictions",
    "TrainedModel",
    "TrainingResult",
    "run_training",
    "MODEL_FILE",
    "INDEX_NAME",
    "DEFAULT_MODELS",
    "DEFAULT_ACCURACY_TOLERANCE",
    "read_index",
    "record_run",
    "find_run",
    "default_run",
    "trained_checkpoints",
    "load_run",
    "load_trained_models",
    "split_faces",
    "reference_gap",
    "checkpoint_or_default",
    "ensemble_siblings",
    "RECIPE_EXCLUDES",
    "ENSEMBLE_AUGMENTATIONS",
    "ensemble_recipes",
]
