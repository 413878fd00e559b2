"""The prediction command line: one JSON line per photo (``PhotoResult.to_json``).

    python -m nbhelpers.predict photo.jpg photos/
    python -m nbhelpers.predict --checkpoint data/checkpoints/<run>/model.pt photo.jpg
    python -m nbhelpers.predict --explain bcos --explain-dir explanations/ photo.jpg

Without ``--checkpoint`` the suite's default run is used (``nbhelpers.training.default_run``: the newest
B-cos EfficientNet-Lite0 run in ``--checkpoint-dir``, else the newest EfficientNet-Lite0 run, else the newest
run of any model), and ``using <model> run <run_id>: <checkpoint>`` is printed on stderr.

For a black-box model the answer is the peer ensemble's (``--peer-ensemble auto``: its probabilities
averaged with the dlib peer's; a face's JSON then also holds ``model_probabilities``, the model's own, which
its explanation explains); ``--peer-ensemble off`` lets the model answer alone. A black-box run recorded in a
run index also averages in the other members of its deep ensemble, the runs of its recipe trained with other
seeds or with the context swap (``--deep-ensemble auto``, the default; notebook 04's ``TRANSFER_SEEDS`` and
``TRANSFER_CONTEXT_SEEDS``), and the face-descriptor probe saved beside its runs (``--descriptor-probe auto``),
named on stderr; ``--deep-ensemble off`` and ``--descriptor-probe off`` leave them out.

``--explain METHOD`` (``bcos`` for B-cos models, ``gradcam``, ``gradcam++``, ``xgradcam`` for any model,
``random``) writes each face's explanation drawn over its aligned face as a PNG into ``--explain-dir``
(``nbhelpers.predict.explanation_images``: the B-cos colour explanation, or a heat overlay for the CAMs), named
``<photo stem>_face<k>_<method>.png`` (``k``: the face's index in the JSON line's ``faces``; a second input
with the same stem gets ``<stem>-2``), and its path goes into the face's ``explanation.file``.

It prints to stdout, for example::

    {"path": "photo.jpg", "image_size": [w, h], "face_detected": true, "faces": [{"box": [l, t, r, b],
     "label": "female", "predicted": "female", "uncertain": false,
     "probabilities": {"female": 0.91, "male": 0.09}, "detector": "dlib",
     "explanation": {"method": "bcos", "file": "explanations/photo_face0_bcos.png"}}]}
    {"path": "scene.jpg", "image_size": [w, h], "face_detected": false, "faces": [], "notes": ["no face found: ..."]}
    {"path": "broken.jpg", "error": "broken.jpg: truncated or corrupt image data (...)"}

Folders are scanned by content: every file the decoder can open is read, whatever its suffix, and each
file skipped is named on stderr. The progress bar and warnings go to stderr. Exit code 0 when every input
was read, 1 when any could not be (its JSON line says why; the others are still printed), 2 for an
unusable checkpoint, no recorded run, or an explanation method the model does not support (one ``error:``
line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Iterable, Sequence

from nbhelpers.data.images import scan_image_folder
from nbhelpers.explain.explainers import explainer_supports, list_explainers
from nbhelpers.predict.explanation_images import write_explanation_image
from nbhelpers.predict.faces import add_detector_arguments, detector_from_arguments
from nbhelpers.predict.ensemble_arguments import (add_deep_ensemble_argument, add_descriptor_probe_argument,
                                                  add_peer_ensemble_argument)
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import PhotoResult
from nbhelpers.training.checkpoint import CheckpointError
from nbhelpers.training.runs import checkpoint_or_default

__all__ = ["main", "expand_inputs", "explanation_stem", "write_explanations"]


class _UsageError(Exception):
    """A problem that ends the command with exit code 2 and one ``error:`` line."""


def expand_inputs(arguments: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Paths as given, each directory replaced by the image files in it (by content, sorted, not recursive);
    and the files of those directories that were skipped, with the reason."""
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for argument in map(Path, arguments):
        if argument.is_dir():
            readable, passed_over = scan_image_folder(argument)
            paths.extend(readable)
            skipped.extend(passed_over)
        else:
            paths.append(argument)
    return paths, skipped


def explanation_stem(name: str, used: set[str]) -> str:
    """The file-name stem for the explanations of input ``name``: its stem, or ``<stem>-2``, ``<stem>-3``, ...
    when an earlier input of this run already took it; the stem chosen is added to ``used``."""
    stem = Path(name).stem or "photo"
    candidate, count = stem, 1
    while candidate in used:
        count += 1
        candidate = f"{stem}-{count}"
    used.add(candidate)
    return candidate


def write_explanations(result: PhotoResult, directory: Path, used: set[str]) -> PhotoResult:
    """Write each face's explanation of ``result`` (made with ``keep_chips``) as
    ``<directory>/<stem>_face<k>_<method>.png`` (atomically); return the result with each face's
    ``explanation_file`` set. Results without faces are returned as they are."""
    if not result.faces:
        return result
    stem, faces = explanation_stem(result.name, used), []
    for index, face in enumerate(result.faces):
        path = write_explanation_image(face, directory / f"{stem}_face{index}_{face.explanation_method}.png")
        faces.append(dataclasses.replace(face, explanation_file=str(path)))
    return dataclasses.replace(result, faces=tuple(faces))


def build_parser() -> argparse.ArgumentParser:
    """The predict command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint written by training (default: the suite's default run in --checkpoint-dir)")
    parser.add_argument("--checkpoint-dir", default="data/checkpoints",
                        help="where the run index runs.json is read without --checkpoint (default: %(default)s)")
    parser.add_argument("inputs", nargs="+", help="image files or directories of images")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    add_detector_arguments(parser)
    add_peer_ensemble_argument(parser)
    add_deep_ensemble_argument(parser)
    add_descriptor_probe_argument(parser)
    parser.add_argument("--batch-size", type=int, default=64, help="faces per forward pass")
    parser.add_argument("--no-detect", action="store_true", help="skip face detection; use centre crops")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--uncertain-below", type=float, default=None,
                        help="answer 'uncertain' below this confidence (default: the run's threshold, chosen on "
                             "UTKFace validation data; 0: always answer)")
    parser.add_argument("--explain", metavar="METHOD", choices=list_explainers(), default=None,
                        help=f"write each face's explanation as a PNG into --explain-dir: one of "
                             f"{', '.join(list_explainers())} (bcos: B-cos models only)")
    parser.add_argument("--explain-dir", metavar="DIR", default=None, help="folder of the explanation PNGs "
                                                                           "(created if missing; needs --explain)")
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.explain and not arguments.explain_dir:
        parser.error("--explain needs --explain-dir DIR (the folder the explanation images are written to)")
    if arguments.explain_dir and not arguments.explain:
        parser.error("--explain-dir needs --explain METHOD")
    return arguments


def _predictor(arguments: argparse.Namespace) -> Predictor:
    """The predictor of the chosen (or the default) run; ``_UsageError`` when there is none or it is unusable."""
    checkpoint = arguments.checkpoint
    try:
        checkpoint, note = checkpoint_or_default(checkpoint, arguments.checkpoint_dir)
        if note:
            print(note, file=sys.stderr)
        predictor = Predictor(checkpoint, arguments.device, detect=not arguments.no_detect,
                              uncertain_below=arguments.uncertain_below, detector=detector_from_arguments(arguments),
                              peer_ensemble=arguments.peer_ensemble,
                              deep_ensemble=arguments.deep_ensemble,
                              descriptor_probe=arguments.descriptor_probe)
    except CheckpointError as error:
        raise _UsageError(f"cannot use checkpoint: {error}") from None
    except (FileNotFoundError, ValueError) as error:  # no run recorded, or an unreadable run index
        raise _UsageError(str(error)) from None
    if predictor.ensemble_note:
        print(predictor.ensemble_note, file=sys.stderr)
    if arguments.explain and not explainer_supports(arguments.explain, predictor.trained.model):
        supported = [name for name in list_explainers() if explainer_supports(name, predictor.trained.model)]
        raise _UsageError(f"--explain {arguments.explain} does not apply to {predictor.spec.model} "
                          f"({checkpoint}); it supports {', '.join(supported)}")
    return predictor


def _explain_folder(arguments: argparse.Namespace) -> Path | None:
    """The --explain-dir folder, created if missing; ``_UsageError`` when it cannot be."""
    if not arguments.explain_dir:
        return None
    folder = Path(arguments.explain_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _UsageError(f"--explain-dir {folder}: cannot create the folder ({error.strerror or error})") from None
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: one JSON line per input on stdout; returns the exit code (0, 1 or 2)."""
    arguments = _parse(argv)
    try:
        predictor, explain_dir = _predictor(arguments), _explain_folder(arguments)
    except _UsageError as error:
        message = " ".join(str(error).splitlines())  # one line even for a file name with a line break
        print(f"error: {message}", file=sys.stderr)
        return 2
    paths, skipped = expand_inputs(arguments.inputs)
    for path, reason in skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    all_read, used = True, set()
    for result in predictor.predict_paths(paths, arguments.batch_size, explain=arguments.explain,
                                          progress=not arguments.no_progress, keep_chips=explain_dir is not None):
        all_read &= result.ok
        if explain_dir is not None:
            try:
                result = write_explanations(result, explain_dir, used)
            except OSError as error:
                print(f"error: {error.filename or explain_dir}: cannot write the explanation image "
                      f"({error.strerror or error})", file=sys.stderr)
                return 2
        print(json.dumps(result.to_json()), flush=True)
    return 0 if all_read else 1
