"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or a kill half-way through never leaves a truncated manifest, cache,
checkpoint, CSV table or report behind: readers see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import matplotlib.figure
    import pandas as pd

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "atomic_write_bytes", "atomic_write_csv",
           "atomic_save_figure"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    On an exception the temporary file is removed and ``target`` is untouched.
    ``suffix`` lets writers that insist on an extension (e.g. ``numpy.save``) keep it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
        os.replace(temporary_path, target)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``target`` atomically."""
    return atomic_write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_csv(target: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write ``frame`` to ``target`` as CSV (without the index) atomically and return the target path."""
    with atomic_path(target, suffix=".csv") as temporary:
        frame.to_csv(temporary, index=False)
    return Path(target)


def atomic_save_figure(target: str | os.PathLike, figure: matplotlib.figure.Figure, dpi: int = 110) -> Path:
    """Save a matplotlib figure (format from the suffix, e.g. ``.png``) atomically; return the path."""
    target = Path(target)
    with atomic_path(target, suffix=target.suffix) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight", format=target.suffix.lstrip(".") or "png")
    return target
