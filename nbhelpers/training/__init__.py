"""Training: the classification base steps, ``fit_one_cycle``, checkpoints, ``run_training`` and its
result type, the run index, evaluation (and the comparison with the dlib-models peer), named profiles and
training plots.

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    abstention: TARGET_ACCURACY abstention_threshold selective_accuracy
    checkpoint: CheckpointError save_checkpoint load_checkpoint rng_state restore_rng_state model_from_checkpoint
    evaluation: predict_probabilities predict_faces classification_metrics
    fit: EarlyStopping evaluate fit_one_cycle is_main_process
    peer_comparison: compare_with_peer compare_run_with_peer
    plots: plot_history plot_confusion show_predictions show_split_predictions metrics_table
    profiles: PROFILES PROFILE_NAMES TRAINING NOTEBOOK_MODELS profile_parameters training_profile
    config: TrainConfig OPTIMIZERS resolve_config run_directory set_seed
    result: SplitPredictions TrainedModel
    run: run_training MODEL_FILE
    runs: INDEX_NAME read_index record_run find_run trained_checkpoints load_run load_trained_models split_faces
    cli: build_parser
""")
