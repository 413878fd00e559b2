"""The prediction command line: one JSON line per photo (see ``nbhelpers.predict.predictor``).

    python -m nbhelpers.predict --checkpoint data/checkpoints/<run>/model.pt photo.jpg photos/

Exit code 0 when every input was read, 1 when any could not be, 2 for an unusable checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nbhelpers.predict.faces import add_detector_arguments, detector_from_arguments
from nbhelpers.predict.predictor import Predictor, expand_inputs, record_to_json
from nbhelpers.training.checkpoint import CheckpointError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: one JSON line per input on stdout; returns the exit code (0, 1 or 2)."""
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
    arguments = parser.parse_args(argv)
    try:
        predictor = Predictor(arguments.checkpoint, arguments.device, detect=not arguments.no_detect,
                              uncertain_below=arguments.uncertain_below,
                              detector=detector_from_arguments(arguments))
    except CheckpointError as error:
        message = " ".join(str(error).splitlines())  # one line even for a file name with a line break
        print(f"error: cannot use checkpoint: {message}", file=sys.stderr)
        return 2
    all_read = True
    for record in predictor.predict_paths(expand_inputs(arguments.inputs), arguments.batch_size,
                                          progress=not arguments.no_progress):
        all_read &= "error" not in record
        print(record_to_json(record), flush=True)
    return 0 if all_read else 1
