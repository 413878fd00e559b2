"""Unpack a dataset archive (.tar.gz, .tgz, .tar, .zip) once into a working folder.

A marker file records which archive (name, size, sha256) was unpacked, so a second call is free
and a changed archive is unpacked again. Members are unpacked with tarfile's ``data`` filter
(no absolute paths, no links out of the folder).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from nbhelpers.utils.atomic import atomic_write_json

__all__ = ["ARCHIVE_SUFFIXES", "is_archive", "unpack_archive", "sample_archive_images"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def is_archive(path: str | Path) -> bool:
    """True when ``path`` names a file with a supported archive suffix."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _fingerprint(archive: Path) -> dict:
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"archive": archive.name, "size": archive.stat().st_size, "sha256": digest.hexdigest()}


def unpack_archive(archive: str | Path, destination: str | Path) -> Path:
    """Unpack ``archive`` into ``destination`` (skipped when already done); return ``destination``."""
    archive, destination = Path(archive), Path(destination)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    marker = destination / ".unpacked.json"
    fingerprint = _fingerprint(archive)
    if marker.is_file() and json.loads(marker.read_text()) == fingerprint:
        return destination
    if destination.exists():
        shutil.rmtree(destination)
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(staging)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(staging, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"{archive}: cannot unpack archive ({error})") from None
    staging.rename(destination)
    atomic_write_json(marker, fingerprint)
    return destination


def sample_archive_images(archive: str | Path, every: int, limit: int = 0) -> list[np.ndarray]:
    """Every ``every``-th .jpg of a tar archive (archive order), decoded in memory to uint8 RGB arrays;
    ``limit`` > 0 stops after that many. Nothing is written to disk (for calibration scripts)."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    images, index = [], 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if not (member.isfile() and member.name.lower().endswith(".jpg")):
                continue
            if index % every == 0:
                data = tar.extractfile(member).read()
                images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8))
                if len(images) == limit:
                    break
            index += 1
    if not images:
        raise ValueError(f"{archive}: no .jpg files found")
    return images
