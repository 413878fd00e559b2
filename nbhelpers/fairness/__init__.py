"""Fairness: per-group metrics with bootstrap intervals, calibration, the bias study and the
group-balanced mitigation experiment.

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.fairness.bias import METRICS, group_table, gap_summary, describe_gaps, write_group_table
from nbhelpers.fairness.calibration import (
    confidence_and_correct,
    bin_indices,
    expected_calibration_error,
    reliability_curve,
    reliability_by_group,
)
from nbhelpers.fairness.mitigation import PLAIN, train_plain_and_balanced, mitigation_table, describe_mitigation
from nbhelpers.fairness.plots import (
    plot_group_metric,
    plot_intersection_heatmap,
    plot_reliability,
    plot_reliability_by_group,
    plot_probability_by_group,
)
from nbhelpers.fairness.study import (
    bias_columns,
    model_group_tables,
    model_gaps,
    explanation_metrics_by_group,
    misclassified_in_group,
)

__all__ = [
    "METRICS",
    "group_table",
    "gap_summary",
    "describe_gaps",
    "write_group_table",
    "confidence_and_correct",
    "bin_indices",
    "expected_calibration_error",
    "reliability_curve",
    "reliability_by_group",
    "PLAIN",
    "train_plain_and_balanced",
    "mitigation_table",
    "describe_mitigation",
    "plot_group_metric",
    "plot_intersection_heatmap",
    "plot_reliability",
    "plot_reliability_by_group",
    "plot_probability_by_group",
    "bias_columns",
    "model_group_tables",
    "model_gaps",
    "explanation_metrics_by_group",
    "misclassified_in_group",
]
