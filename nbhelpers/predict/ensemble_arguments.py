"""The ensemble flags shared by the prediction, evaluation and serving commands (``nbhelpers.predict.predictor``
documents the peer ensemble, the deep ensemble and the descriptor probe they switch)."""

from __future__ import annotations

import argparse

from nbhelpers.predict.predictor import (DEEP_ENSEMBLE, DEEP_ENSEMBLE_MODES, DESCRIPTOR_PROBE, DESCRIPTOR_PROBE_MODES,
                                        PEER_ENSEMBLE, PEER_ENSEMBLE_MODES)

__all__ = ["add_peer_ensemble_argument", "add_deep_ensemble_argument", "add_descriptor_probe_argument"]


def add_peer_ensemble_argument(parser: argparse.ArgumentParser) -> None:
    """``--peer-ensemble auto|on|off`` of the prediction, evaluation and serving commands."""
    parser.add_argument("--peer-ensemble", choices=PEER_ENSEMBLE_MODES, default=PEER_ENSEMBLE,
                        help="average the model's probabilities with the dlib peer's (auto: black-box models only, "
                             "so a B-cos answer stays what its explanation explains; default: %(default)s)")


def add_deep_ensemble_argument(parser: argparse.ArgumentParser) -> None:
    """``--deep-ensemble auto|off`` of the prediction, evaluation and serving commands."""
    parser.add_argument("--deep-ensemble", choices=DEEP_ENSEMBLE_MODES, default=DEEP_ENSEMBLE,
                        help="average a black-box model with the runs of its recipe trained with other seeds or the "
                             "context swap, found "
                             "in its run index (auto), or not (off; default: %(default)s)")


def add_descriptor_probe_argument(parser: argparse.ArgumentParser) -> None:
    """``--descriptor-probe auto|off`` of the prediction, evaluation and serving commands."""
    parser.add_argument("--descriptor-probe", choices=DESCRIPTOR_PROBE_MODES, default=DESCRIPTOR_PROBE,
                        help="average a black-box model with the face-descriptor probe saved in its checkpoint folder "
                             "(auto), or not (off; default: %(default)s)")
