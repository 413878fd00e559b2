"""Checkpoints: written atomically, loaded safely (``weights_only=True``), with clear errors.

A checkpoint holds what prediction needs (model name and arguments, class names, input size,
normalisation or B-cos encoding: the ``metadata`` dict) and what resuming needs (optimizer,
scheduler, epoch, history, early-stopping state and RNG states).
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbhelpers.atomic import atomic_path

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "restore_rng_state",
           "model_from_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated or does not fit the model; the message names the file."""


def rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch RNG states, in types that ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states saved by ``rng_state``."""
    random.setstate(tuple(tuple(item) if isinstance(item, list) else item for item in state["python"]))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Save ``payload`` with ``torch.save`` to a temporary file, then rename it onto ``path``."""
    with atomic_path(path, suffix=".pt") as temporary:
        torch.save(payload, temporary)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty checkpoint file (0 bytes)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: corrupt, truncated or unsafe checkpoint ({first_line[:200]})") from None
    if not isinstance(payload, dict) or "model_state" not in payload or "metadata" not in payload:
        raise CheckpointError(f"{path}: not a checkpoint of this suite (no model_state/metadata)")
    return payload


def model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint was saved from and load its weights; return it with the metadata."""
    from nbhelpers.models import create_model

    payload = load_checkpoint(path, map_location)
    metadata = payload["metadata"]
    kwargs = {key: value for key, value in metadata.get("model_kwargs", {}).items() if key != "pretrained"}
    try:
        model = create_model(metadata["model"], **kwargs)
        model.load_state_dict(payload["model_state"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"{path}: does not fit model {metadata.get('model')!r} ({str(error).splitlines()[0][:200]})") from None
    return model.eval(), metadata
