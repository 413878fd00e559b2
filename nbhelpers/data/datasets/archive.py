"""Unpack a dataset archive (.tar.gz, .tgz, .tar, .zip) once into a working folder.

A marker file records which archive (name, size, sha256) was unpacked, so a second call is free
and a changed archive is unpacked again. Members are unpacked with tarfile's ``data`` filter
(no absolute paths, no links out of the folder).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

from nbhelpers.utils.atomic import atomic_write_json

__all__ = ["ARCHIVE_SUFFIXES", "is_archive", "unpack_archive"]

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
