"""The HTTP API's command line: load a checkpoint and serve it with uvicorn (loopback only by default).

    python -m nbhelpers.serve --checkpoint data/checkpoints/<run>/model.pt [--port 8000] [--max-upload-mb 30]

then ``curl -F file=@photo.jpg http://127.0.0.1:8000/predict`` (see ``nbhelpers.serve.app``; the OpenAPI page
is ``/docs``). Exit code 2 for an unusable checkpoint or a bad option, else uvicorn's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

from nbhelpers.explain.explainers import explainer_supports, list_explainers
from nbhelpers.predict.faces import add_detector_arguments, detector_from_arguments
from nbhelpers.predict.ensemble_arguments import (add_deep_ensemble_argument, add_descriptor_probe_argument,
                                                  add_peer_ensemble_argument)
from nbhelpers.predict.predictor import Predictor
from nbhelpers.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app
from nbhelpers.training.checkpoint import CheckpointError

__all__ = ["build_parser", "supported_explainers", "main"]


def supported_explainers(model: torch.nn.Module) -> list[str]:
    """The explainer names of ``list_explainers()`` that apply to ``model`` (``bcos`` only for B-cos models)."""
    return [name for name in list_explainers() if explainer_supports(name, model)]


def build_parser() -> argparse.ArgumentParser:
    """The serve command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by training (model.pt)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: loopback only; 0.0.0.0 exposes the API to the network)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2 ** 20,
                        help="largest request body in MiB (2^20 bytes); larger requests get 413 (default: %(default)g)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--no-detect", action="store_true",
                        help="skip face detection and classify the centre crop (for uploads that are face crops)")
    parser.add_argument("--uncertain-below", type=float, default=None,
                        help="answer 'uncertain' below this confidence (default: the run's threshold; 0: always answer)")
    add_detector_arguments(parser)
    add_peer_ensemble_argument(parser)
    add_deep_ensemble_argument(parser)
    add_descriptor_probe_argument(parser)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the checkpoint until interrupted; returns the exit code (2 for an unusable checkpoint)."""
    import uvicorn

    arguments = build_parser().parse_args(argv)
    max_upload_bytes = int(arguments.max_upload_mb * 2 ** 20)
    if max_upload_bytes <= 0:
        print(f"error: --max-upload-mb must be positive, not {arguments.max_upload_mb}", file=sys.stderr)
        return 2
    try:
        predictor = Predictor(arguments.checkpoint, arguments.device, detect=not arguments.no_detect,
                              uncertain_below=arguments.uncertain_below,
                              detector=detector_from_arguments(arguments), peer_ensemble=arguments.peer_ensemble,
                              deep_ensemble=arguments.deep_ensemble,
                              descriptor_probe=arguments.descriptor_probe)
    except CheckpointError as error:
        print(f"error: cannot use checkpoint: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return 2
    except ValueError as error:  # e.g. --peer-ensemble on with a model whose classes are not female, male
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    if predictor.ensemble_note:
        print(predictor.ensemble_note, file=sys.stderr)
    app = create_app(predictor, max_upload_bytes, supported_explainers(predictor.trained.model))
    print(f"serving {predictor.answer_source} ({arguments.checkpoint}) on http://{arguments.host}:{arguments.port}/ "
          f"(API docs: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_level=arguments.log_level)
    return 0
