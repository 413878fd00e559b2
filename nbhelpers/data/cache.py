"""Preprocessing cache: decode, convert and resize every image once into a uint8 array file.

One ``.npy`` file of shape (N, size, size, 3) per (dataset, size) under ``data/cache/``, written
atomically and memory-mapped for training, so epochs never decode JPEGs. A JSON file beside it
holds a fingerprint of the manifest rows; a changed manifest rebuilds the cache.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nbhelpers.data.images import ImageLoadError, load_rgb, square_resize
from nbhelpers.utils.atomic import atomic_path, atomic_write_json
from nbhelpers.utils.progress import progress_bar

__all__ = ["ImageCache", "build_cache", "manifest_fingerprint"]


@dataclass
class ImageCache:
    """A memory-mapped image array aligned row by row with its manifest, and the rows that failed."""

    images: np.ndarray
    frame: pd.DataFrame
    size: int
    bad_rows: list[int]
    path: Path

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` whose images decoded."""
        rows = np.flatnonzero(self.frame["split"].to_numpy() == split)
        return np.setdiff1d(rows, np.asarray(self.bad_rows, dtype=int))


def manifest_fingerprint(frame: pd.DataFrame, size: int) -> str:
    """A hash of the manifest rows (path and content hash, in order) and the image size."""
    digest = hashlib.sha256(f"size={size}\n".encode())
    for path, sha in zip(frame["path"], frame["sha256"]):
        digest.update(f"{path}\t{sha}\n".encode())
    return digest.hexdigest()


def _fill(images: np.ndarray, paths: list[str], size: int) -> list[int]:
    bad_rows = []
    for row, path in enumerate(progress_bar(paths, desc=f"cache {size}px", leave=False)):
        try:
            image = load_rgb(path, draft_size=(size, size)).image
        except ImageLoadError as error:
            warnings.warn(f"{error}; row {row} left out of the cache", stacklevel=3)
            bad_rows.append(row)
            continue
        images[row] = np.asarray(square_resize(image, size), dtype=np.uint8)
    return bad_rows


def build_cache(frame: pd.DataFrame, dataset: str, size: int, cache_dir: str | Path = "data/cache",
                rebuild: bool = False) -> ImageCache:
    """Return the cache of ``frame`` at ``size`` px, building it only when missing or stale."""
    cache_dir = Path(cache_dir)
    array_path = cache_dir / f"{dataset}_{size}.npy"
    meta_path = array_path.with_suffix(".json")
    fingerprint = manifest_fingerprint(frame, size)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if rebuild or meta.get("fingerprint") != fingerprint or not array_path.is_file():
        with atomic_path(array_path, suffix=".npy") as temporary:
            images = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(len(frame), size, size, 3))
            bad_rows = _fill(images, list(frame["path"]), size)
            images.flush()
            del images
        meta = {"fingerprint": fingerprint, "rows": len(frame), "size": size, "bad_rows": bad_rows}
        atomic_write_json(meta_path, meta)
    images = np.load(array_path, mmap_mode="r")
    if images.shape != (len(frame), size, size, 3):
        raise ValueError(f"{array_path}: cache shape {images.shape} does not match the manifest; rebuild it")
    return ImageCache(images, frame.reset_index(drop=True), size, list(meta.get("bad_rows", [])), array_path)
