"""Checkpoints: written atomically, loaded safely (``weights_only=True``), with clear errors.

A checkpoint holds what prediction needs (the run's ``RunSpec`` as its ``metadata``: model name and
arguments, class names, input size, normalisation or B-cos encoding, CAM layer, abstention threshold)
and what resuming needs (optimizer,
scheduler, epoch, history, early-stopping state and RNG states). Any file that cannot be read or
does not hold a valid checkpoint (an image, text, random or truncated bytes, a directory, a wrong
payload) gives a one-line ``CheckpointError`` naming the file, never another exception type.
"""

from __future__ import annotations

import random
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbhelpers.models import RunSpec, RunSpecError, create_model, list_models, model_spec
from nbhelpers.utils.atomic import atomic_path

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


def _reason(error: BaseException) -> str:
    """The gist of ``error`` on one printable line of at most 200 characters, for a ``CheckpointError``."""
    text = str(error)
    if "WeightsUnpickler error:" in text:  # torch's long weights_only preamble hides the actual cause after it
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation of torch.load", 1)[0]
    text = "".join(character for character in " ".join(text.split()) if character.isprintable())
    if not isinstance(error, RuntimeError) or not text:  # e.g. KeyError('101') says nothing without its type
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text[:200]


def _kind(value: Any) -> str:
    """``None``, or ``a``/``an`` and the type's name: for messages."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _check_file(path: Path) -> None:
    """Raise ``CheckpointError`` unless ``path`` is a non-empty regular file."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except (OSError, ValueError) as error:  # e.g. no permission, a NUL byte in the name
        raise CheckpointError(f"{path}: cannot read checkpoint ({_reason(error)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise CheckpointError(f"{path}: empty checkpoint file (0 bytes)")


def _check_payload(path: Path, payload: Any) -> None:
    """Raise ``CheckpointError`` unless ``payload`` has a state dict of tensors and a metadata dict."""
    if not isinstance(payload, dict) or "model_state" not in payload or "metadata" not in payload:
        kind = "a dict without model_state/metadata" if isinstance(payload, dict) else _kind(payload)
        raise CheckpointError(f"{path}: not a checkpoint of this suite (holds {kind})")
    state = payload["model_state"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: model_state is {_kind(state)}, not a state dict")
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: model_state has {_kind(key)} key, not a parameter name")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: model_state[{key[:80]!r}] is {_kind(value)}, not a tensor")
    if not isinstance(payload["metadata"], dict):
        raise CheckpointError(f"{path}: metadata is {_kind(payload['metadata'])}, not a dict")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only); errors name the file.

    Every failure to read it (missing, a directory, empty, not a torch file, truncated, unsafe, not a
    dict with a ``model_state`` of tensors and a ``metadata`` dict) is a ``CheckpointError``."""
    path = Path(path)
    if isinstance(map_location, str):
        map_location = torch.device(map_location)  # a bad device is the caller's error, not the file's
    _check_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:  # foreign bytes make torch warn before it fails
            warnings.simplefilter("always")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - foreign or damaged bytes make torch's readers and its weights_only
        # unpickler raise almost anything (UnpicklingError, KeyError, IndexError, struct.error, UnicodeDecodeError,
        # MemoryError, ...); the file is at fault in each case. KeyboardInterrupt and SystemExit still pass.
        raise CheckpointError(f"{path}: corrupt, truncated or unsafe checkpoint ({_reason(error)})") from None
    for warning in caught:  # the file loaded: its warnings are worth showing (through the usual filters)
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    _check_payload(path, payload)
    return payload


def _run_spec(path: Path, metadata: dict[str, Any]) -> RunSpec:
    """The ``RunSpec`` stored as ``metadata``, over the registered defaults of its model; errors name the field."""
    name = metadata.get("model")
    if not isinstance(name, str):
        raise CheckpointError(f"{path}: metadata['model'] is {_kind(name)}, not a model name")
    if name not in list_models():
        raise CheckpointError(f"{path}: unknown model {name[:80]!r} in metadata; known: {list_models()}")
    kwargs = metadata.get("model_kwargs", {})
    if isinstance(kwargs, dict):  # older checkpoints recorded the pretrained flag among the arguments
        metadata = {**metadata, "model_kwargs": {key: value for key, value in kwargs.items() if key != "pretrained"}}
    try:
        return RunSpec.from_dict(metadata, str(path), defaults=model_spec(name))
    except RunSpecError as error:
        raise CheckpointError(" ".join(str(error).split())[:400]) from None


def model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint was saved from and load its weights; its ``RunSpec`` is ``model.spec``.

    Every failure (see ``load_checkpoint``; unknown model, a metadata field that does not fit a run spec,
    weights that do not fit) is a ``CheckpointError`` naming the file."""
    path = Path(path)
    payload = load_checkpoint(path, map_location)
    spec = _run_spec(path, payload["metadata"])
    try:
        model = create_model(spec)
        model.load_state_dict(payload["model_state"])
    except Exception as error:  # noqa: BLE001 - the arguments and weights come from the file: any failure to
        # build the model from them (TypeError, ValueError, RuntimeError for shapes or an absurd size) is the file's
        raise CheckpointError(f"{path}: does not fit model {spec.model!r} ({_reason(error)})") from None
    model.spec = spec
    return model.eval()
