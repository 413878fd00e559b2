"""The model card (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019) that ``make reports``
writes to ``reports/model_card.md``, from the figures the notebooks put in ``summary.json`` and the run
index: intended and out-of-scope uses, what the labels are, training data and licence, in-domain and
real-photo accuracy with intervals, per-group figures and known failure modes. Missing figures are
stated as not measured, never invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbhelpers.reporting.reports import read_summary
from nbhelpers.utils.atomic import atomic_write_text

__all__ = ["best_run", "model_card", "write_model_card"]

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
- The detector's second, lower-threshold search finds a box in almost every photo, but about one box in eight
  is then not a face (README, detection benchmark), and the hard faces it adds lean to "male". A photo in
  which no face is found gets no gender at all ("no face found").
- Perceived-gender labels encode annotators' assumptions; people who do not fit them are misclassified.
"""


def best_run(summary: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(model name, run summary) of the trained run with the highest test accuracy in ``summary.json``."""
    runs = [(name, run) for section in summary.values() if isinstance(section, dict)
            for name, run in section.items() if isinstance(run, dict) and run.get("test_accuracy") is not None]
    return max(runs, key=lambda item: item[1]["test_accuracy"]) if runs else None


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "not measured"


def _performance(summary: dict[str, Any], name: str, run: dict[str, Any]) -> list[str]:
    per_class = run.get("test_per_class_accuracy") or {}
    lines = ["## Performance", f"- Model: `{name}`, {run.get('input_size')} px, {run.get('epochs_run')} epochs, weights "
             f"from {run.get('pretrained_source') or 'random initialisation'}; run `{run.get('run_id')}`.",
             f"- UTKFace test split ({run.get('test_count')} faces, flip test-time augmentation): "
             f"{_percent(run.get('test_accuracy'))} (female {_percent(per_class.get('female'))}, "
             f"male {_percent(per_class.get('male'))})."]
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
    else:
        lines.append("- Real photos: not measured in this run (notebook 08 needs the labelled photo folder).")
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
    """The model card text for the best run recorded in ``reports_dir/summary.json``."""
    summary = read_summary(reports_dir)
    found = best_run(summary)
    if found is None:
        return "# Model card\n\nNo trained run in summary.json yet: run the training notebooks (03-05).\n"
    name, run = found
    parts = [f"# Model card: face-gender classifier `{name}`", _USES, "\n".join(_performance(summary, name, run)),
             "\n".join(_groups(summary, name)), _FAILURES]
    return "\n\n".join(part.strip() for part in parts) + "\n"


def write_model_card(reports_dir: str | Path) -> Path:
    """Write ``model_card.md`` into ``reports_dir`` (atomically) and return its path."""
    return atomic_write_text(Path(reports_dir) / "model_card.md", model_card(reports_dir))
