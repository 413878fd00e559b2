"""Explanations: one explainer interface (Grad-CAM, Grad-CAM++, XGrad-CAM, B-cos, random), B-cos
contribution maps, explanation metrics, their evaluation, reports and plots.

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.explain.base import Attribution, Targets, Explainer, select_targets, model_probabilities, is_bcos_model
from nbhelpers.explain.bcos import BcosExplanation, explain, colour_explanation
from nbhelpers.explain.bcos_plots import (
    explain_split,
    gallery_rows,
    show_bcos_explanations,
    describe_gallery,
    completeness_table,
)
from nbhelpers.explain.checkerboard import checkerboard_index, nyquist_band_mask
from nbhelpers.explain.evaluation import (
    ExplainedModel,
    COLUMNS,
    evaluate_explanations,
    summarise_metrics,
    write_metrics_csv,
)
from nbhelpers.explain.explainers import (
    CamExplainer,
    GradCamExplainer,
    GradCamPlusPlusExplainer,
    XGradCamExplainer,
    BcosExplainer,
    RandomExplainer,
    EXPLAINERS,
    create_explainer,
    list_explainers,
    explainer_supports,
    target_layer,
    random_maps,
)
from nbhelpers.explain.faithfulness import (
    ROAD_PERCENTILES,
    relevance_ranks,
    perturbation_baseline,
    deletion_insertion,
    road_scores,
)
from nbhelpers.explain.metrics import (
    FACE_BOX,
    Mosaics,
    make_mosaics,
    pointing_game_score,
    TargetGrids,
    make_target_grids,
    grid_pointing_game_score,
    face_box_mask,
    face_focus,
    detect_face_boxes,
)
from nbhelpers.explain.plots import normalise_map, overlay, plot_explanations, plot_metric_boxes, plot_metrics
from nbhelpers.explain.report import (
    predict_faces,
    select_faces,
    explain_methods,
    gallery,
    metric_means,
    describe_findings,
)
from nbhelpers.explain.sanity_checks import (
    cascade_layers,
    randomise_layers,
    rank_correlation,
    pearson_correlation,
    randomisation_correlation,
)

__all__ = [
    "Attribution",
    "Targets",
    "Explainer",
    "select_targets",
    "model_probabilities",
    "is_bcos_model",
    "BcosExplanation",
    "explain",
    "colour_explanation",
    "explain_split",
    "gallery_rows",
    "show_bcos_explanations",
    "describe_gallery",
    "completeness_table",
    "checkerboard_index",
    "nyquist_band_mask",
    "ExplainedModel",
    "COLUMNS",
    "evaluate_explanations",
    "summarise_metrics",
    "write_metrics_csv",
    "CamExplainer",
    "GradCamExplainer",
    "GradCamPlusPlusExplainer",
    "XGradCamExplainer",
    "BcosExplainer",
    "RandomExplainer",
    "EXPLAINERS",
    "create_explainer",
    "list_explainers",
    "explainer_supports",
    "target_layer",
    "random_maps",
    "ROAD_PERCENTILES",
    "relevance_ranks",
    "perturbation_baseline",
    "deletion_insertion",
    "road_scores",
    "FACE_BOX",
    "Mosaics",
    "make_mosaics",
    "pointing_game_score",
    "TargetGrids",
    "make_target_grids",
    "grid_pointing_game_score",
    "face_box_mask",
    "face_focus",
    "detect_face_boxes",
    "normalise_map",
    "overlay",
    "plot_explanations",
    "plot_metric_boxes",
    "plot_metrics",
    "predict_faces",
    "select_faces",
    "explain_methods",
    "gallery",
    "metric_means",
    "describe_findings",
    "cascade_layers",
    "randomise_layers",
    "rank_correlation",
    "pearson_correlation",
    "randomisation_correlation",
]
