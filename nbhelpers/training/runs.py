"""The run index: every finished ``run_training`` (notebook or command line) is recorded in
``<checkpoint_dir>/runs.json``, where its checkpoints live; the analysis notebooks (06 explanations,
07 bias, 08 predict) and the prediction path find runs there by model name or run id.

Each entry names the run folder, the model, the variant (the ``balance`` grouping, '' for plain runs),
the checkpoint whose weights were evaluated (``model.pt``), the input size and pipeline, and the val and
test accuracy. Looking a model up returns its newest plain run. Writes are atomic.

``default_run`` is the suite's default run, the one fact every front end (the prediction command line, the
upload page, the model card) uses when no run is named: the newest plain run of the first model of
``DEFAULT_MODELS`` whose test accuracy is within ``DEFAULT_ACCURACY_TOLERANCE`` of the best of them (the
exact explanation may cost at most that much accuracy), else the newest plain run of any model.

``ensemble_siblings`` finds the other members of a run's deep ensemble, which the prediction path averages for
black-box models: the runs of the same recipe trained with other seeds (Lakshminarayanan, Pritzel and Blundell,
"Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS 2017) and with the context
swap (``ENSEMBLE_AUGMENTATIONS``; members that differ in their augmentation as well as their seed, as in the
hyper-deep ensembles of Wenzel, Snoek, Tran and Jenatton, "Hyperparameter Ensembles for Robustness and
Uncertainty Quantification", NeurIPS 2020; measured on real photos in the README, issue 21).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nbhelpers.data.cache import build_cache
from nbhelpers.data.loaders import labels_of
from nbhelpers.data.manifest import manifest_path, read_manifest, sample_rows
from nbhelpers.training.checkpoint import model_from_checkpoint
from nbhelpers.training.config import TrainConfig, run_settings
from nbhelpers.training.result import TrainedModel, TrainingResult
from nbhelpers.utils.atomic import atomic_write_json
from nbhelpers.utils.device import get_default_device

__all__ = ["INDEX_NAME", "DEFAULT_MODELS", "DEFAULT_ACCURACY_TOLERANCE", "read_index", "record_run", "find_run", "default_run", "trained_checkpoints",
           "load_run", "load_trained_models", "split_faces", "reference_gap", "checkpoint_or_default",
           "ensemble_siblings", "RECIPE_EXCLUDES",
           "ENSEMBLE_AUGMENTATIONS", "ensemble_recipes"]

INDEX_NAME = "runs.json"
# the suite's default model, in order of preference: the inherently interpretable B-cos EfficientNet-Lite0,
# else its black-box counterpart
DEFAULT_MODELS = ("bcos_efficientnet_lite0", "efficientnet_lite0")
DEFAULT_ACCURACY_TOLERANCE = 0.01  # test accuracy a preferred model may trail the best of DEFAULT_MODELS by (issue 20)


def read_index(checkpoint_dir: str | Path) -> list[dict[str, Any]]:
    """The recorded runs, oldest first (empty when nothing was trained there yet)."""
    path = Path(checkpoint_dir) / INDEX_NAME
    if not path.is_file():
        return []
    try:
        runs = json.loads(path.read_text())["runs"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a run index ({error}); delete it and train again to rebuild it") from None
    return runs


def record_run(checkpoint_dir: str | Path, result: TrainingResult, config: dict[str, Any]) -> dict[str, Any]:
    """Add (or replace, for the same run id) the entry of a finished run; return it."""
    checkpoint_dir, trained = Path(checkpoint_dir), result.trained
    entry = {**result.summary(), "run_id": trained.run_id, "model": trained.name, "variant": config.get("balance", ""),
             "checkpoint": str(Path(trained.checkpoint).relative_to(checkpoint_dir)),
             "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": config}
    runs = [run for run in read_index(checkpoint_dir) if run["run_id"] != trained.run_id] + [entry]
    atomic_write_json(checkpoint_dir / INDEX_NAME, {"runs": runs})
    return entry


def find_run(checkpoint_dir: str | Path, model: str | None = None, run_id: str | None = None,
             variant: str = "", required: bool = True) -> dict[str, Any] | None:
    """The entry of run ``run_id``, or the newest run of ``model`` with ``variant``, its checkpoint made
    absolute; when there is none, an error naming the fix (or None if not ``required``)."""
    runs = read_index(checkpoint_dir)
    found = [run for run in runs if run["run_id"] == run_id] if run_id else \
        [run for run in runs if run["model"] == model and run.get("variant", "") == variant]
    if not found and not required:
        return None
    if not found:
        wanted = f"run {run_id!r}" if run_id else f"{model!r} run" + (f" ({variant})" if variant else "")
        raise FileNotFoundError(f"{Path(checkpoint_dir) / INDEX_NAME}: no {wanted} recorded (have "
                                f"{sorted({run['model'] for run in runs})}); train it first (notebooks 03-05 or "
                                f"python -m nbhelpers.train --model {model or '<name>'})")
    return {**found[-1], "checkpoint": str(Path(checkpoint_dir) / found[-1]["checkpoint"])}


def default_run(checkpoint_dir: str | Path, tolerance: float = DEFAULT_ACCURACY_TOLERANCE) -> dict[str, Any]:
    """The ``find_run`` entry (checkpoint absolute) of the suite's default run: among the newest plain runs of
    the models of ``DEFAULT_MODELS``, the first (in that order) whose ``test_accuracy`` is at most ``tolerance``
    below the best of them; when none of those models was trained, the newest plain run of any model.

    Raises ``FileNotFoundError`` naming the index and the fix when no plain run is recorded (``ValueError``
    for an unreadable index)."""
    plain = [run for run in read_index(checkpoint_dir) if not run.get("variant")]
    if not plain:
        raise FileNotFoundError(f"{Path(checkpoint_dir) / INDEX_NAME}: no trained run recorded; train one with "
                                f"`make reports` or `python -m nbhelpers.train --model {DEFAULT_MODELS[0]}`, or pass "
                                "--checkpoint <model.pt>")
    models = {run["model"] for run in plain}
    candidates = [find_run(checkpoint_dir, model) for model in DEFAULT_MODELS if model in models]
    if not candidates:
        return find_run(checkpoint_dir, run_id=plain[-1]["run_id"])
    accuracies = [run.get("test_accuracy") for run in candidates]
    best = max((accuracy for accuracy in accuracies if accuracy is not None), default=None)
    for run, accuracy in zip(candidates, accuracies):
        if best is None or (accuracy is not None and accuracy >= best - tolerance):
            return run
    return candidates[0]


def checkpoint_or_default(checkpoint: str | Path | None, checkpoint_dir: str | Path) -> tuple[str, str]:
    """(checkpoint to load, a note for the user): ``checkpoint`` when given, else the ``default_run`` of
    ``checkpoint_dir`` with the note ``using <model> run <run_id>: <checkpoint>`` (empty note otherwise).
    Raises what ``default_run`` raises when no run is recorded."""
    if checkpoint is not None:
        return str(checkpoint), ""
    run = default_run(checkpoint_dir)
    return run["checkpoint"], f"using {run['model']} run {run['run_id']}: {run['checkpoint']}"


def trained_checkpoints(checkpoint_dir: str | Path) -> dict[str, Path]:
    """Model name -> checkpoint of its newest plain run."""
    return {model: Path(find_run(checkpoint_dir, model)["checkpoint"])
            for model in dict.fromkeys(run["model"] for run in read_index(checkpoint_dir) if not run.get("variant"))}


def load_run(checkpoint: str | Path, device: str | torch.device | None = None, run_id: str = "") -> TrainedModel:
    """A ``TrainedModel`` restored from a checkpoint file (its ``RunSpec`` attached), on ``device``, in eval
    mode; an unusable file is a ``CheckpointError`` naming it."""
    device = get_default_device(str(device) if device else None)
    model = model_from_checkpoint(checkpoint, map_location=device)
    return TrainedModel(model.to(device).eval(), Path(checkpoint), run_id)


def load_trained_models(checkpoint_dir: str | Path, names: Sequence[str],
                        device: str | torch.device | None = None) -> list[TrainedModel]:
    """The newest plain run of each named model; a missing run is a clear error naming the fix."""
    entries = [find_run(checkpoint_dir, name) for name in names]
    return [load_run(entry["checkpoint"], device, entry["run_id"]) for entry in entries]


def split_faces(data_dir: str | Path, dataset: str, split: str, count: int, size: int,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` faces of ``split`` drawn with ``seed`` (all if ``count`` is 0): uint8 images, labels, manifest rows."""
    frame = read_manifest(manifest_path(dataset, data_dir))
    cache = build_cache(frame, dataset, size, Path(data_dir) / "cache")
    rows = sample_rows(cache.split_indices(split), count, seed)
    return np.asarray(cache.images[rows]), labels_of(cache, rows), rows


def reference_gap(checkpoint_dir: str | Path, reference_model: str, accuracy: float) -> tuple[float | None, float | None]:
    """(test accuracy of the newest plain run of ``reference_model``, ``accuracy`` minus it in percentage
    points); (None, None) when that model has no recorded run."""
    reference = find_run(checkpoint_dir, reference_model, required=False)
    if not reference or reference.get("test_accuracy") is None:
        return None, None
    return reference["test_accuracy"], 100 * (accuracy - reference["test_accuracy"])


RECIPE_EXCLUDES = ("seed", "checkpoint_dir", "data_dir", "device")  # settings that do not change what is learned
# augmentations whose runs of one recipe join one another's deep ensemble: none, and the context swap
# (nbhelpers.data.context_swap), whose member narrows the female/male gap on real photos (README, issue 21)
ENSEMBLE_AUGMENTATIONS = ("", "context")


def _recipe(config: dict[str, Any], index: Path) -> dict[str, Any]:
    """A recorded run's settings in ``run_settings``' canonical form (``TrainConfig``'s defaults for fields
    recorded before they existed) without ``RECIPE_EXCLUDES``, and without the augmentation when it is one of
    ``ENSEMBLE_AUGMENTATIONS``: equal for the members of one deep ensemble. ``ValueError`` naming the index for
    settings ``TrainConfig`` does not accept."""
    try:
        settings = run_settings(TrainConfig(**config), without=RECIPE_EXCLUDES)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{index}: run settings {config.get('model', '?')!r} seed {config.get('seed', 0)} are not "
                         f"valid TrainConfig settings ({error})") from None
    if settings.get("augment", "") in ENSEMBLE_AUGMENTATIONS:
        settings.pop("augment", None)
    return settings


def _plain_runs_with_config(index: Path) -> list[dict[str, Any]]:
    """The plain runs of an index that recorded their settings; ``ValueError`` naming the index and the entry
    for an entry without a checkpoint, a settings mapping or an integer seed."""
    runs = read_index(index.parent)
    if not isinstance(runs, list):
        raise ValueError(f"{index}: 'runs' is not a list of run entries")
    plain = []
    for number, run in enumerate(runs):
        if not isinstance(run, dict):
            raise ValueError(f"{index}: run entry {number} is not a mapping ({type(run).__name__})")
        if run.get("variant") or not run.get("config"):
            continue
        config = run["config"]
        if not isinstance(run.get("checkpoint"), str) or not isinstance(config, dict) or \
                not isinstance(config.get("seed", 0), int):
            raise ValueError(f"{index}: run entry {number} ({run.get('run_id', '?')}) needs a checkpoint path and "
                             "a settings mapping with an integer seed")
        plain.append(run)
    return plain


def ensemble_siblings(checkpoint: str | Path) -> list[Path]:
    """Checkpoints of the other members of ``checkpoint``'s deep ensemble: the plain runs recorded in the run
    index of its checkpoint folder (``<checkpoint_dir>/<run folder>/model.pt``) whose settings equal its own
    apart from ``RECIPE_EXCLUDES`` (the seed, the folders and the device) and from an augmentation in
    ``ENSEMBLE_AUGMENTATIONS``; the newest per (augmentation, seed), files that exist only, the plain seeds
    first and then the context-swap runs, each in seed order. Empty when the checkpoint is not recorded in an
    index there (a file passed by hand), when its settings were not recorded, or when no other member was
    trained. Raises ``ValueError`` naming the index for an unreadable index or a malformed entry."""
    checkpoint = Path(checkpoint).absolute()  # not resolved: a model.pt linked into a blob store stays in its folder
    checkpoint_dir = checkpoint.parent.parent
    index = checkpoint_dir / INDEX_NAME
    runs = _plain_runs_with_config(index)
    own = [run for run in runs if (checkpoint_dir / run["checkpoint"]).resolve() == checkpoint.resolve()]
    if not own:
        return []
    recipe = _recipe(own[-1]["config"], index)
    members: dict[tuple[str, int], Path] = {}
    for run in runs:  # oldest first: a newer run of a member replaces an older one
        path = (checkpoint_dir / run["checkpoint"]).absolute()
        if path.is_file() and _recipe(run["config"], index) == recipe:
            members[_member_key(run["config"])] = path
    own_key = _member_key(own[-1]["config"])
    return [path for key, path in sorted(members.items()) if key != own_key]


def _member_key(config: dict[str, Any]) -> tuple[str, int]:
    """(augmentation, seed) of a recorded run: one member of a deep ensemble per key."""
    return config.get("augment", "") or "", config.get("seed", 0)


def ensemble_recipes(seed: int, seeds: int = 1, context_seeds: int = 0, augment: str = "") -> list[dict[str, Any]]:
    """The ``TrainConfig`` overrides (``seed``, ``augment``) of the runs of one deep ensemble, in training order:
    the other seeds ``seed + 1, ..., seed + seeds - 1`` with ``augment``, then ``context_seeds`` context-swap runs
    (seeds ``seed, seed + 1, ...``; from ``seed + seeds`` on when ``augment`` is itself the context swap, so no
    seed is trained twice), and ``seed`` with ``augment`` last, so the newest run, the one later
    notebooks and the prediction path name, is ``seed``'s. Raises ``ValueError`` for ``seeds`` below 1, a
    negative ``context_seeds``, or context-swap runs beside an ``augment`` outside ``ENSEMBLE_AUGMENTATIONS``
    (they would not be members of its ensemble)."""
    if seeds < 1 or context_seeds < 0:
        raise ValueError(f"an ensemble needs at least 1 seed and no negative count of context-swap runs, got "
                         f"seeds={seeds}, context_seeds={context_seeds}")
    if context_seeds and augment not in ENSEMBLE_AUGMENTATIONS:
        raise ValueError(f"context-swap runs join only an ensemble whose augmentation is one of "
                         f"{ENSEMBLE_AUGMENTATIONS}, not {augment!r}")
    others = [{"seed": seed + offset, "augment": augment} for offset in range(1, seeds)]
    context = [{"seed": seed + offset, "augment": "context"} for offset in range(context_seeds)]
    if augment == "context":  # the named run is itself a context-swap run: its seed is not trained twice
        context = [{"seed": seed + offset, "augment": "context"} for offset in range(seeds, seeds + context_seeds)]
    return [*others, *context, {"seed": seed, "augment": augment}]
