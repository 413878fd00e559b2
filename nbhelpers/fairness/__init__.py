"""Fairness: per-group metrics with bootstrap intervals, calibration, the bias study and the
group-balanced mitigation experiment.

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    bias: METRICS group_table gap_summary describe_gaps write_group_table
    calibration: confidence_and_correct bin_indices expected_calibration_error reliability_curve reliability_by_group
    mitigation: PLAIN train_plain_and_balanced mitigation_table describe_mitigation
    plots: plot_group_metric plot_intersection_heatmap plot_reliability plot_reliability_by_group plot_probability_by_group
    study: model_group_tables model_gaps explanation_metrics_by_group misclassified_in_group
""")
