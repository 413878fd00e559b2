"""Dataset adapters, looked up by name in ``DATASETS``: each turns a source folder or archive into one manifest.

``build_manifest("utkface", "../shared/data/UTKFace.tar.gz")`` validates every image, removes
duplicates, splits, and writes ``data/manifests/utkface.csv`` with a report beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from nbhelpers.data.datasets import celeba, fairface, folder, utkface
from nbhelpers.data.datasets.download import download_celeba, download_kaggle
from nbhelpers.data.manifest import DatasetReport, finalize_manifest, write_manifest
from nbhelpers.utils.registry import lookup

__all__ = ["DATASETS", "build_manifest", "default_utkface_path", "locate_source", "report_table"]

_SPLIT = (0.8, 0.1, 0.1)
# name -> (source, report, data_dir, limit) -> (records, attributes, stratify, split fractions)
Adapter = Callable[[Any, DatasetReport, Path, int | None], tuple[list[dict], Sequence[str], Sequence[str], tuple]]


def _utkface(source: Any, report: DatasetReport, data_dir: Path, limit: int | None) -> tuple:
    records = utkface.utkface_records(source, report, data_dir / "raw", limit)
    return records, utkface.ATTRIBUTES, utkface.STRATIFY, _SPLIT


def _celeba(source: Any, report: DatasetReport, data_dir: Path, limit: int | None) -> tuple:
    records, attributes = celeba.celeba_records(source, report, limit)
    return records, attributes, (), _SPLIT


def _fairface(source: Any, report: DatasetReport, data_dir: Path, limit: int | None) -> tuple:
    return fairface.fairface_records(source, report, limit), fairface.ATTRIBUTES, fairface.STRATIFY, fairface.FRACTIONS


def _folder(source: Any, report: DatasetReport, data_dir: Path, limit: int | None) -> tuple:
    return folder.folder_records(source, report), (), (), _SPLIT


DATASETS: dict[str, Adapter] = {"utkface": _utkface, "celeba": _celeba, "fairface": _fairface, "folder": _folder}


def default_utkface_path() -> Path:
    """The embedded UTKFace archive: ``$UTKFACE_PATH`` or ``../shared/data/UTKFace.tar.gz``."""
    import os

    for candidate in (os.environ.get("UTKFACE_PATH"), "../shared/data/UTKFace.tar.gz", "../../shared/data/UTKFace.tar.gz"):
        if candidate and Path(candidate).exists():
            return Path(candidate).resolve()
    return Path("../shared/data/UTKFace.tar.gz")


def build_manifest(dataset: str, source: str | Path, data_dir: str | Path = "data", limit: int | None = None,
                   seed: int = 0) -> tuple[pd.DataFrame, DatasetReport, Path]:
    """Build, check and atomically write the manifest of ``dataset`` read from ``source``.

    Returns the manifest table, the report of what was skipped and converted, and its path.
    ``limit`` keeps a deterministic subset of the files (for quick profiles).
    """
    adapter = lookup(DATASETS, "dataset", dataset)
    report = DatasetReport(dataset)
    records, attributes, stratify, fractions = adapter(source, report, Path(data_dir), limit)
    frame = finalize_manifest(records, dataset, attributes, report, stratify, seed, fractions)
    return frame, report, write_manifest(frame, dataset, report, data_dir)


def locate_source(dataset: str, data_path: str | Path, download: bool = False, data_dir: str | Path = "data") -> Path:
    """Return ``data_path`` if it exists; else download it when ``download`` is set, or explain what to do."""
    path = Path(data_path)
    if path.exists():
        return path.resolve()
    if not download:
        raise FileNotFoundError(
            f"{path}: {dataset} data not found. Point DATA_PATH at the folder or archive (UTKFace: "
            "../shared/data/UTKFace.tar.gz or UTKFace.tar.gz from its authors), or set DOWNLOAD=True when online.")
    if dataset == "celeba":
        return download_celeba(Path(data_dir) / "raw")
    return download_kaggle(dataset, Path(data_dir) / "raw")


def report_table(report: DatasetReport, examples: int = 3) -> pd.DataFrame:
    """One row per outcome (kept, each skip reason, each conversion) with counts and example names."""
    rows = [{"outcome": "kept", "count": report.kept, "examples": ""}]
    rows += [{"outcome": f"skipped: {reason}", "count": len(names), "examples": ", ".join(sorted(names)[:examples])}
             for reason, names in report.skipped.items()]
    rows += [{"outcome": f"converted: {note}", "count": count, "examples": ""} for note, count in report.converted.items()]
    return pd.DataFrame(rows)
