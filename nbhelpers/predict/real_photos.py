"""Evaluation of the whole prediction path on labelled photos: decode, detect, align, classify.

    python -m nbhelpers.evaluate --checkpoint data/checkpoints/<run>/model.pt \\
        --labels ../shared/data/fairface-dev/labels.csv ../shared/data/fairface-dev

``labels.csv`` has a ``file`` column (relative to the photo folder), ``gender`` (female|male) and any
number of group columns (e.g. ``age_group``), each reported per group. Every photo goes through
``Predictor`` exactly as an upload does; when several faces are found, the one reported is the face
nearest the image centre (labelled photos centre their person). The dlib-models peer classifies the
same aligned faces, and the apparent skin tone of the face (ITA, ``nbhelpers.fairness.skin_tone``) is
measured on its aligned chip (columns ``SKIN_COLUMNS``). Results: accuracy overall, per class and per
group with 95% percentile-bootstrap intervals (``nbhelpers.fairness.bias.group_table``), the detection
rate, and a risk-coverage table (the accuracy on the photos whose confidence reaches each threshold).
Evaluation data only: nothing here trains or fits a threshold on it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.manifest import GENDERS, labels_of
from nbhelpers.fairness.audit import audit_photos, write_audit
from nbhelpers.fairness.bias import group_table
from nbhelpers.fairness.skin_tone import SKIN_COLUMNS, skin_tone_columns
from nbhelpers.predict.results import PhotoResult
from nbhelpers.training.abstention import selective_accuracy
from nbhelpers.utils.atomic import atomic_write_csv, atomic_write_json

__all__ = ["labelled_uploads", "read_labels", "evaluate_photos", "group_columns", "accuracy_table", "risk_coverage",
           "evaluation_summary", "COVERAGE_THRESHOLDS", "evaluate_and_write", "evaluate_labelled_folder", "LABELS_NAME"]

LABELS_NAME = "labels.csv"  # the labels file of a labelled photo folder
COVERAGE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def read_labels(path: str | Path) -> pd.DataFrame:
    """The labels file: ``file``, ``gender`` (female|male) and group columns; errors name the file and row."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable labels CSV ({type(error).__name__}: {error})") from None
    missing = {"file", "gender"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; it has {list(frame.columns)}")
    frame["gender"] = frame["gender"].str.strip().str.lower()
    bad = frame.index[~frame["gender"].isin(GENDERS)]
    if len(bad):
        raise ValueError(f"{path}: row {bad[0] + 2}: gender {frame.loc[bad[0], 'gender']!r} is not one of {list(GENDERS)}")
    return frame


# the columns evaluate_photos adds to the labels (everything else but file and gender is a group column)
RESULT_COLUMNS = ("detected", "faces", "detector", "label", "predicted", "p_female", "p_male", "confidence", "error",
                  "model_p_male", "correct", "peer_p_male", "peer_correct")


def _photo_row(result: PhotoResult, classes: Sequence[str]) -> tuple[dict[str, Any], np.ndarray | None]:
    """The result columns of one photo (its central face) and that face's aligned chip (None without one)."""
    if result.error:
        return {"detected": False, "faces": 0, "error": result.error}, None
    face = result.central_face()
    if face is None:
        return {"detected": False, "faces": 0, "detector": "", "label": "", "predicted": "", "error": ""}, None
    probabilities = [face.probabilities[name] for name in classes]
    row = {"detected": True, "faces": len(result.faces), "detector": face.detector, "label": face.label,
           "predicted": face.predicted, "p_female": probabilities[0], "p_male": probabilities[1],
           "confidence": max(probabilities), "error": ""}
    if face.model_probabilities is not None:  # the answer is an ensemble's: keep the model's own too
        row["model_p_male"] = face.model_probabilities[classes[1]]
    return row, face.chip


def evaluate_photos(predictor: Any, labels: pd.DataFrame, photos_dir: str | Path, peer: Any = None,
                    progress: bool = True) -> pd.DataFrame:
    """One row per labelled photo: the labels, detection, the central face's prediction (``p_male``: the
    answer's; ``model_p_male``: the named model's own when the answer is an ensemble's) and the peer's, and
    its skin tone (``skin_ita``, ``skin_hue`` in degrees, ``skin_tone``, ``skin_tone_binary``).

    A photo in which no face is found is read (``error`` empty) but not answered: ``detected`` is False,
    ``predicted`` empty and ``correct`` False, so accuracy counts it as a miss; its skin-tone columns are empty."""
    paths = [Path(photos_dir) / name for name in labels["file"]]
    results = predictor.predict_paths(paths, progress=progress, keep_chips=True)
    rows, chips = zip(*[_photo_row(result, predictor.classes) for result in results]) if len(paths) else ((), ())
    frame = pd.concat([labels.reset_index(drop=True), pd.DataFrame(list(rows), columns=RESULT_COLUMNS[:-3])], axis=1)
    frame["correct"] = (frame["error"] == "") & (frame["predicted"] == frame["gender"])
    frame = pd.concat([frame, skin_tone_columns(list(chips))], axis=1)
    answered = np.array([chip is not None for chip in chips], dtype=bool)
    if peer is not None and answered.any():
        peer_probabilities = peer.predict_proba(np.stack([chip for chip in chips if chip is not None]))
        frame.loc[answered, "peer_p_male"] = peer_probabilities[:, 1]
        frame.loc[answered, "peer_correct"] = (np.asarray(GENDERS)[peer_probabilities.argmax(1)]
                                               == frame.loc[answered, "gender"])
    return frame


def group_columns(frame: pd.DataFrame) -> list[str]:
    """The labels' group columns of an evaluation frame: every column but file, gender and the results."""
    return [column for column in frame.columns if column not in {"file", "gender", *RESULT_COLUMNS, *SKIN_COLUMNS}]


def _probabilities(frame: pd.DataFrame, column: str) -> np.ndarray:
    """(N, 2) probabilities from a p(male) column; a photo without a face has no answer and is scored as a
    miss (all probability on the wrong class)."""
    male = frame[column].fillna((frame["gender"] == "female").astype(float)).to_numpy(dtype=float)
    return np.stack([1 - male, male], axis=1)


def accuracy_table(frame: pd.DataFrame, bootstrap: int = 1000, seed: int = 0, min_count: int = 30) -> pd.DataFrame:
    """Accuracy, female and male recall per group (all photos, then each label column): ``ours`` (the
    prediction path's answer), ``model alone`` (when the answer is an ensemble's) and ``dlib peer``."""
    read = frame[frame["error"] == ""].assign(all="all photos")
    groupings = ["all", *group_columns(frame)]
    tables = [group_table(read, _probabilities(read, "p_male"), groupings, min_count, bootstrap, seed).assign(model="ours")]
    if "model_p_male" in read and read["model_p_male"].notna().any():
        tables.append(group_table(read, _probabilities(read, "model_p_male"), groupings, min_count, bootstrap,
                                  seed).assign(model="model alone"))
    if "peer_p_male" in read:
        tables.append(group_table(read, _probabilities(read, "peer_p_male"), groupings, min_count, bootstrap,
                                  seed).assign(model="dlib peer"))
    columns = ["model", "grouping", "group", "count", "accuracy", "accuracy_low", "accuracy_high", "female_recall",
               "male_recall", "small"]
    return pd.concat(tables, ignore_index=True)[columns]


def risk_coverage(frame: pd.DataFrame, thresholds: Sequence[float] = COVERAGE_THRESHOLDS) -> pd.DataFrame:
    """For each confidence threshold: the share of photos answered (coverage) and the accuracy on them."""
    read = frame[frame["error"] == ""]
    rows = []
    for threshold in sorted(set(thresholds)):
        kept = read[read["confidence"] >= threshold]
        rows.append({"threshold": threshold, "coverage": len(kept) / max(len(read), 1), "answered": len(kept),
                     "accuracy": kept["correct"].mean() if len(kept) else np.nan,
                     "female_recall": kept.loc[kept["gender"] == "female", "correct"].mean(),
                     "male_recall": kept.loc[kept["gender"] == "male", "correct"].mean()})
    return pd.DataFrame(rows)


def evaluation_summary(frame: pd.DataFrame, table: pd.DataFrame, coverage: pd.DataFrame,
                       uncertain_below: float | None = None) -> dict[str, Any]:
    """The headline figures: counts, detection rate, accuracy with interval, per-class recall, peer, abstention."""
    overall = table[(table["grouping"] == "all")].set_index("model")
    read = frame[frame["error"] == ""]
    summary = {"photos": int(len(frame)), "unreadable": int((frame["error"] != "").sum()),
               "detection_rate": float(read["detected"].mean()) if len(read) else float("nan"),
               "several_faces": int((read["faces"] > 1).sum())}
    for model, row in overall.iterrows():
        key = {"ours": "ours", "model alone": "model_alone", "dlib peer": "peer"}[model]
        summary.update({f"{key}_accuracy": row["accuracy"], f"{key}_accuracy_low": row["accuracy_low"],
                        f"{key}_accuracy_high": row["accuracy_high"], f"{key}_female_recall": row["female_recall"],
                        f"{key}_male_recall": row["male_recall"]})
    detected = read[read["detected"].astype(bool)]
    if uncertain_below is not None:  # the uncertain rule applies to the faces found
        coverage, accuracy = selective_accuracy(_probabilities(detected, "p_male"), labels_of(detected),
                                                uncertain_below) if len(detected) else (float("nan"), float("nan"))
        summary.update({"uncertain_below": uncertain_below, "coverage": coverage, "accuracy_when_answered": accuracy})
    return {key: (float(value) if isinstance(value, (np.floating, float)) else value) for key, value in summary.items()}


def labelled_uploads(folder: str | Path, count: int, labels_name: str = "labels.csv") -> list[tuple[str, bytes]]:
    """The first ``count`` photos of a labelled folder as ``(name, bytes)`` uploads (empty when it is absent)."""
    labels = Path(folder) / labels_name
    if not labels.is_file():
        return []
    names = read_labels(labels)["file"].head(count)
    return [(name, (Path(folder) / name).read_bytes()) for name in names]


def evaluate_and_write(predictor, labels: pd.DataFrame, photos: str | Path, output: str | Path | None,
                       bootstrap: int = 1000, peer=None, seed: int = 0, progress: bool = True,
                       audit: bool = False) -> dict:
    """Evaluate, write the files when ``output`` is given, and return ``{"photos", "groups", "coverage", "summary"}``
    (and ``"audit"``, the dict of ``audit_photos``, with ``audit``)."""
    frame = evaluate_photos(predictor, labels, photos, peer, progress)
    groups, coverage = accuracy_table(frame, bootstrap, seed), risk_coverage(frame)
    summary = evaluation_summary(frame, groups, coverage, predictor.uncertain_below)
    audited = audit_photos(frame, group_columns(frame), bootstrap, seed) if audit else None
    if output:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        for name, table in (("photos", frame), ("groups", groups), ("coverage", coverage)):
            atomic_write_csv(output / f"{name}.csv", table)
        atomic_write_json(output / "summary.json", summary)
        if audited is not None:
            write_audit(audited, output)
    result = {"photos": frame, "groups": groups, "coverage": coverage, "summary": summary}
    return result | ({"audit": audited} if audited is not None else {})


def evaluate_labelled_folder(predictor, folder: str | Path, output: str | Path | None, bootstrap: int = 1000,
                             seed: int = 0, peer: bool = True, progress: bool = True,
                             audit: bool = False) -> dict | None:
    """``evaluate_and_write`` on ``folder`` and its ``labels.csv``, with the peer; None (and a warning naming
    what is missing) when the folder or its labels are absent, so a notebook can go on without them."""
    folder = Path(folder)
    if not (folder / LABELS_NAME).is_file():
        warnings.warn(f"{folder / LABELS_NAME}: no labelled photos there; the real-photo evaluation is skipped",
                      stacklevel=2)
        return None
    from nbhelpers.models.peer import PeerGenderClassifier

    return evaluate_and_write(predictor, read_labels(folder / LABELS_NAME), folder, output, bootstrap,
                              (getattr(predictor, "peer", None) or PeerGenderClassifier()) if peer else None, seed,
                              progress, audit)
