"""The prediction command line: one JSON line per photo (``PhotoResult.to_json``).

    python -m nbhelpers.predict --checkpoint data/checkpoints/<run>/model.pt photo.jpg photos/

prints to stdout, for example::

    {"path": "photo.jpg", "image_size": [w, h], "face_detected": true, "faces": [{"box": [l, t, r, b],
     "label": "female", "predicted": "female", "uncertain": false,
     "probabilities": {"female": 0.91, "male": 0.09}, "detector": "dlib"}]}
    {"path": "scene.jpg", "image_size": [w, h], "face_detected": false, "faces": [], "notes": ["no face found: ..."]}
    {"path": "broken.jpg", "error": "broken.jpg: truncated or corrupt image data (...)"}

Folders are scanned by content: every file the decoder can open is read, whatever its suffix, and each
file skipped is named on stderr. The progress bar and warnings go to stderr. Exit code 0 when every input
was read, 1 when any could not be (its JSON line says why; the others are still printed), 2 for an
unusable checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Sequence

from nbhelpers.data.images import scan_image_folder
from nbhelpers.predict.faces import add_detector_arguments, detector_from_arguments
from nbhelpers.predict.predictor import Predictor
from nbhelpers.training.checkpoint import CheckpointError

__all__ = ["main", "expand_inputs"]


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


def build_parser() -> argparse.ArgumentParser:
    """The predict command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by the training notebooks")
    parser.add_argument("inputs", nargs="+", help="image files or directories of images")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    add_detector_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=64, help="faces per forward pass")
    parser.add_argument("--no-detect", action="store_true", help="skip face detection; use centre crops")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--uncertain-below", type=float, default=None,
                        help="answer 'uncertain' below this confidence (default: the run's threshold, chosen on "
                             "UTKFace validation data; 0: always answer)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: one JSON line per input on stdout; returns the exit code (0, 1 or 2)."""
    arguments = build_parser().parse_args(argv)
    try:
        predictor = Predictor(arguments.checkpoint, arguments.device, detect=not arguments.no_detect,
                              uncertain_below=arguments.uncertain_below,
                              detector=detector_from_arguments(arguments))
    except CheckpointError as error:
        message = " ".join(str(error).splitlines())  # one line even for a file name with a line break
        print(f"error: cannot use checkpoint: {message}", file=sys.stderr)
        return 2
    paths, skipped = expand_inputs(arguments.inputs)
    for path, reason in skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    all_read = True
    for result in predictor.predict_paths(paths, arguments.batch_size, progress=not arguments.no_progress):
        all_read &= result.ok
        print(json.dumps(result.to_json()), flush=True)
    return 0 if all_read else 1
