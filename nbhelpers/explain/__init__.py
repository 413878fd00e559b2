"""Explanations: one explainer interface (Grad-CAM, Grad-CAM++, XGrad-CAM, B-cos, random), B-cos
contribution maps, explanation metrics, their evaluation, reports and plots.

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    base: Attribution Targets Explainer select_targets model_probabilities is_bcos_model
    bcos: BcosExplanation explain colour_explanation
    bcos_plots: explain_split show_bcos_explanations completeness_table
    evaluation: ModelSpec COLUMNS evaluate_explanations summarise_metrics write_metrics_csv
    explainers: CamExplainer GradCamExplainer GradCamPlusPlusExplainer XGradCamExplainer BcosExplainer RandomExplainer EXPLAINERS create_explainer list_explainers explainer_supports target_layer random_maps
    faithfulness: ROAD_PERCENTILES relevance_ranks perturbation_baseline deletion_insertion road_scores
    metrics: FACE_BOX Mosaics make_mosaics pointing_game_score face_box_mask face_focus detect_face_boxes
    plots: normalise_map overlay plot_explanations plot_metric_boxes
    report: predict_faces select_faces explain_methods gallery metric_means describe_findings
    sanity_checks: cascade_layers randomise_layers rank_correlation pearson_correlation randomisation_correlation
""")
