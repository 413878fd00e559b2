"""Galleries and a written reading of the explanation metrics (notebook 06, reused by 07 and 08).

The methods are Grad-CAM (Selvaraju et al., ICCV 2017), Grad-CAM++ (Chattopadhay et al., WACV 2018),
XGrad-CAM (Fu et al., BMVC 2020) and the B-cos contribution maps (Böhle et al., CVPR 2022 / TPAMI
2024). ``describe_findings`` writes its sentences from the numbers it is given, never from
expectations: which method localises best per model, each method's pointing game and grid pointing
game (the B-cos papers' localisation metric), whether B-cos beats every Grad-CAM-family method by at
least 0.10 on both (the issue's target), how much attribution falls on the inner face, and which maps
survive the randomisation check.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nbhelpers.explain.base import Attribution
from nbhelpers.explain.explainers import create_explainer, explainer_supports
from nbhelpers.explain.plots import plot_explanations
from nbhelpers.training.evaluation import predict_faces
from nbhelpers.training.result import TrainedModel

__all__ = ["predict_faces", "select_faces", "explain_methods", "gallery", "metric_means", "describe_findings"]
# predict_faces is nbhelpers.training.evaluation.predict_faces, re-exported for the notebooks

HIGHER_IS_BETTER = {"pointing_game": True, "grid_pointing_game": True, "face_focus": True, "insertion_auc": True, "deletion_auc": False,
                    "road_combined": True, "randomisation_spearman": False}
LOCALISATION = {"pointing_game": "pointing game", "grid_pointing_game": "grid pointing game"}
CAMS = ("gradcam", "gradcam++", "xgradcam")
TARGET_MARGIN = 0.10  # issue target: B-cos above every Grad-CAM-family method by this much on both games


def select_faces(probabilities: np.ndarray, labels: np.ndarray, kind: str, count: int) -> np.ndarray:
    """Indices of ``count`` faces: ``correct``/``wrong`` (most confident first), ``confident`` or ``unsure``."""
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    order = np.argsort(-confidence, kind="stable")
    if kind == "correct":
        return order[predicted[order] == labels[order]][:count]
    if kind == "wrong":
        return order[predicted[order] != labels[order]][:count]
    if kind == "confident":
        return order[:count]
    if kind == "unsure":
        return order[::-1][:count]
    raise ValueError(f"kind must be correct, wrong, confident or unsure, not {kind!r}")


def explain_methods(trained: TrainedModel, faces: np.ndarray, methods: Sequence[str],
                    targets: str | int = "predicted") -> dict[str, Attribution]:
    """Attributions of every method that applies to the model, for the same faces."""
    inputs, attributions = trained.preprocess(faces), {}
    for method in methods:
        if explainer_supports(method, trained.model):
            with create_explainer(method, trained.model) as explainer:
                attributions[method] = explainer(inputs, targets)
    return attributions


def gallery(trained: TrainedModel, faces: np.ndarray, labels: np.ndarray, methods: Sequence[str], kind: str,
            count: int = 6, probabilities: np.ndarray | None = None) -> plt.Figure | None:
    """Faces of one ``kind`` (see ``select_faces``) with every method side by side; None if there are none."""
    probabilities = predict_faces(trained, faces) if probabilities is None else probabilities
    chosen = select_faces(probabilities, labels, kind, count)
    if len(chosen) == 0:
        print(f"{trained.name}: no {kind} faces among {len(faces)}")
        return None
    figure = plot_explanations(faces[chosen], explain_methods(trained, faces[chosen], methods), labels[chosen],
                               count=len(chosen))
    figure.suptitle(f"{trained.name}: {kind} predictions", y=1.01)
    return figure


def metric_means(summary: pd.DataFrame) -> pd.DataFrame:
    """(model, method) x metric table of means from ``summarise_metrics``."""
    return summary.pivot_table(index=["model", "method"], columns="metric", values="mean").round(4)


def _has(table: pd.DataFrame, model: str, metric: str) -> bool:
    return metric in table.columns and table.loc[model, metric].drop(labels=["random"], errors="ignore").notna().any()


def _best(table: pd.DataFrame, model: str, metric: str) -> tuple[str, float]:
    column = table.loc[model, metric].drop(labels=["random"], errors="ignore").dropna()
    method = column.idxmax() if HIGHER_IS_BETTER[metric] else column.idxmin()
    return method, float(column[method])


def _identical_methods(table: pd.DataFrame) -> list[str]:
    """The Grad-CAM-family methods whose metric means all match Grad-CAM's within 0.005 (one model's rows of
    ``metric_means``); ROAD's seeded tie-breaking turns float-level differences of equal maps into tiny ones."""
    if "gradcam" not in table.index:
        return []
    reference = table.loc["gradcam"].to_numpy(dtype=float)
    same = [method for method in ("gradcam++", "xgradcam") if method in table.index
            and np.allclose(table.loc[method].to_numpy(dtype=float), reference, rtol=0.0, atol=5e-3, equal_nan=True)]
    return ["gradcam", *same] if same else []


def _value(table: pd.DataFrame, model: str, method: str, metric: str) -> float:
    return float(table.loc[(model, method), metric]) if metric in table.columns else float("nan")


def _chance(table: pd.DataFrame, model: str, metric: str) -> str:
    """``; random X`` from the random method's row (the pointing game falls back to its chance 0.5)."""
    if "random" in table.loc[model].index and not np.isnan(_value(table, model, "random", metric)):
        return f"; random {_value(table, model, 'random', metric):.3f}"
    return "; random 0.500" if metric == "pointing_game" else ""


def _target_line(table: pd.DataFrame, model: str, cams: list[str]) -> str:
    """Whether B-cos beats every Grad-CAM-family method by at least ``TARGET_MARGIN`` on both games."""
    margins = {metric: _value(table, model, "bcos", metric) - max(_value(table, model, m, metric) for m in cams)
               for metric in LOCALISATION}
    heading = f"  Issue target (B-cos above every Grad-CAM-family method by at least {TARGET_MARGIN:.2f} on both games): "
    missing = [name for metric, name in LOCALISATION.items() if np.isnan(margins[metric])]
    if missing:
        return heading + f"not assessed (no {' or '.join(missing)})."
    met = all(round(margin, 9) >= TARGET_MARGIN for margin in margins.values())
    return heading + ("**met**" if met else "**not met**") + " (margins " + ", ".join(
        f"{margins[metric]:+.3f} {name}" for metric, name in LOCALISATION.items()) + ")."


def _localisation_lines(table: pd.DataFrame, model: str) -> list[str]:
    """The best localiser, B-cos against the best CAM method, every method's two games and the issue target."""
    methods = table.loc[model].index
    present = [metric for metric in LOCALISATION if _has(table, model, metric)]
    if not present:
        return [f"- **{model}**: no pointing game (too few correctly classified faces of a class)."]
    metric = present[0]
    method, score = _best(table, model, metric)
    lines = [f"- **{model}**: best localisation by **{method}** ({LOCALISATION[metric]} {score:.3f}"
             f"{_chance(table, model, metric)})."]
    cams = [m for m in CAMS if m in methods]
    if "bcos" in methods and cams and metric == "pointing_game":
        bcos_score = _value(table, model, "bcos", metric)
        cam_best = max(_value(table, model, m, metric) for m in cams)
        verdict = "higher than" if bcos_score > cam_best else "not higher than"
        lines.append(f"  B-cos contributions score {bcos_score:.3f}, {verdict} the best Grad-CAM-family method ({cam_best:.3f}).")
    scores = ", ".join(f"{m} " + " / ".join("n/a" if np.isnan(value) else f"{value:.3f}"
                                            for value in (_value(table, model, m, metric) for metric in LOCALISATION))
                       for m in methods)
    lines.append(f"  Pointing game / grid pointing game: {scores}.")
    if "bcos" in methods and cams:
        lines.append(_target_line(table, model, cams))
    return lines


def describe_findings(summary: pd.DataFrame) -> str:
    """A short Markdown reading of the metric means, generated from the numbers."""
    table, lines = metric_means(summary), []
    for model in table.index.get_level_values("model").unique():
        lines += _localisation_lines(table, model)
        same = _identical_methods(table.loc[model])
        if same:
            lines.append(f"  {' and '.join(same)} give the same numbers (within 0.005) on every metric: "
                         "their maps coincide"
                         " (with average pooling and a linear layer after the target layer, and non-negative "
                         "activations, both reduce to CAM).")
        if _has(table, model, "face_focus"):
            focus = table.loc[model, "face_focus"].drop(labels=["random"], errors="ignore").dropna()
            lines.append(f"  Share of positive attribution on the inner face: {focus.min():.2f}-{focus.max():.2f} "
                         f"(highest: {focus.idxmax()}).")
        if _has(table, model, "deletion_auc") and _has(table, model, "insertion_auc"):
            deletion, insertion = _best(table, model, "deletion_auc"), _best(table, model, "insertion_auc")
            lines.append(f"  Most faithful by deletion: {deletion[0]} (AUC {deletion[1]:.3f}); by insertion: "
                         f"{insertion[0]} (AUC {insertion[1]:.3f}).")
        if _has(table, model, "randomisation_spearman"):
            similarity = table.loc[model, "randomisation_spearman"].drop(labels=["random"], errors="ignore").dropna()
            failing = [m for m, value in similarity.items() if value > 0.5]
            lines.append(f"  Randomising the top layers leaves rank correlation {similarity.min():.2f}-{similarity.max():.2f}"
                         + (f"; {', '.join(failing)} barely change (fail the sanity check)." if failing else "; every method changes."))
    return "\n".join(lines)
