"""One manifest format for every dataset, and the pipeline that turns raw records into it.

A manifest is a CSV table at ``data/manifests/<dataset>.csv`` with the columns
``path, gender, split, sha256`` followed by the dataset's group attributes (UTKFace: age,
age_band, race; FairFace: race, age; CelebA: its 40 attributes). Next to it,
``<dataset>.report.json`` says what was kept, skipped (with reasons and names) and converted.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.images import ImageLoadError, difference_hash, load_rgb
from nbhelpers.utils.atomic import atomic_write_csv, atomic_write_json
from nbhelpers.utils.progress import progress_bar

__all__ = [
    "GENDERS", "SPLITS", "REQUIRED_COLUMNS", "DatasetReport", "ManifestError",
    "finalize_manifest", "assign_splits", "write_manifest", "read_manifest", "manifest_path", "labels_of", "sample_rows",
    "split_sample",
]

GENDERS = ("female", "male")
SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("path", "gender", "split", "sha256")
_GOLDEN = 0.6180339887498949


class ManifestError(ValueError):
    """A manifest or a dataset layout is unusable; the message names the file and the problem."""


@dataclass
class DatasetReport:
    """What building a manifest kept, skipped and converted, with counts and file names."""

    dataset: str
    scanned: int = 0
    kept: int = 0
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    converted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    split_counts: dict[str, int] = field(default_factory=dict)

    def skip(self, name: str, reason: str) -> None:
        """Record that ``name`` was left out because of ``reason``."""
        self.skipped[reason].append(name)

    def summary(self) -> dict[str, int]:
        """Counts only: scanned, kept, and one entry per skip reason."""
        return {"scanned": self.scanned, "kept": self.kept, **{r: len(n) for r, n in self.skipped.items()}}

    def to_dict(self) -> dict:
        """A JSON-ready dictionary of the whole report."""
        return {"dataset": self.dataset, "scanned": self.scanned, "kept": self.kept,
                "split_counts": dict(self.split_counts), "converted": dict(self.converted),
                "skipped": {reason: sorted(names) for reason, names in self.skipped.items()}}


def manifest_path(dataset: str, data_dir: str | Path = "data") -> Path:
    """Where the manifest of ``dataset`` lives."""
    return Path(data_dir) / "manifests" / f"{dataset}.csv"


def labels_of(source: pd.DataFrame | Any, rows: np.ndarray | None = None) -> np.ndarray:
    """Class indices (female 0, male 1, the order of ``GENDERS``) from the ``gender`` column.

    ``source``: manifest rows (a ``DataFrame``) or an ``ImageCache`` (its ``frame``); ``rows``: the
    positions to take (None: every row).
    """
    frame = source if isinstance(source, pd.DataFrame) else source.frame
    genders = frame["gender"].to_numpy()
    return ((genders if rows is None else genders[rows]) == GENDERS[1]).astype(np.int64)


def sample_rows(rows: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` of ``rows`` drawn without replacement with ``seed``, in row order (all when ``count`` is 0
    or not smaller): the one draw of test faces that notebooks 06-08 share."""
    rows = np.asarray(rows)
    if not count or count >= len(rows):
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))


def split_sample(frame: pd.DataFrame, split: str, count: int, seed: int = 0) -> pd.DataFrame:
    """The manifest rows of ``count`` faces of ``split`` (``sample_rows``), read from the manifest alone:
    no image is decoded (the paths, labels and groups are all in the manifest)."""
    return frame.iloc[sample_rows(np.flatnonzero(frame["split"].to_numpy() == split), count, seed)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _validate(records: list[dict], report: DatasetReport) -> list[dict]:
    """Decode every image once; keep the readable ones with their content hashes."""
    valid = []
    for record in progress_bar(records, desc=f"validate {report.dataset}", leave=False):
        path = Path(record["path"])
        try:
            loaded = load_rgb(path, name=record.get("name", path.name))
        except ImageLoadError as error:
            warnings.warn(str(error), stacklevel=2)
            report.skip(record.get("name", path.name), f"unreadable image: {error.reason.split(' (')[0]}")
            continue
        for note in loaded.notes:
            report.converted[note] += 1
        valid.append({**record, "sha256": _sha256(path), "_dhash": difference_hash(loaded.image)})
    return valid


def _group_duplicates(records: list[dict]) -> list[list[dict]]:
    """Union records that share a byte hash or a perceptual hash (re-encoded copies)."""
    parent = list(range(len(records)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for key in ("sha256", "_dhash"):
        first_seen: dict = {}
        for index, record in enumerate(records):
            other = first_seen.setdefault(record[key], index)
            parent[find(index)] = find(other)
    groups: dict[int, list[dict]] = defaultdict(list)
    for index, record in enumerate(records):
        groups[find(index)].append(record)
    return list(groups.values())


def _deduplicate(records: list[dict], attributes: Sequence[str], report: DatasetReport) -> list[dict]:
    """Keep one image per duplicate group; drop groups whose copies disagree on gender."""
    kept = []
    for group in _group_duplicates(records):
        group.sort(key=lambda record: record["name"])
        if len(group) == 1:
            kept.append(group[0])
            continue
        names = [record["name"] for record in group]
        if len({record["gender"] for record in group}) > 1:
            for name in names:
                report.skip(name, "duplicate image with conflicting gender labels")
            continue
        keeper = dict(group[0])
        for attribute in attributes:
            if len({str(record.get(attribute)) for record in group}) > 1:
                keeper[attribute] = None
                report.converted[f"duplicate copies disagree on {attribute}: set to missing"] += 1
        for name in names[1:]:
            report.skip(name, "duplicate of another image (copy removed)")
        kept.append(keeper)
    return kept


def assign_splits(
    keys: Sequence[str],
    strata: Sequence[str],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> list[str]:
    """Deterministic stratified split, identical on every machine and run.

    Items are ordered by stratum, then by a salted hash of their key (a content hash), and walk
    along a low-discrepancy (golden-ratio) sequence in [0, 1) that the fractions cut into train,
    val and test. Every stratum, small ones included, gets its share to within one or two items,
    and the result never depends on file order, paths or the machine.
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    order = sorted(range(len(keys)),
                   key=lambda i: (strata[i], hashlib.sha256(f"{seed}:{keys[i]}".encode()).hexdigest()))
    train_edge, val_edge = fractions[0], fractions[0] + fractions[1]
    result = [""] * len(keys)
    for position, index in enumerate(order):
        point = (position * _GOLDEN + 0.5) % 1.0
        result[index] = "train" if point < train_edge else "val" if point < val_edge else "test"
    return result


def finalize_manifest(
    records: Iterable[dict],
    dataset: str,
    attributes: Sequence[str],
    report: DatasetReport,
    stratify: Sequence[str] = (),
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> pd.DataFrame:
    """Validate, deduplicate and split raw records into a manifest table.

    Each record holds ``path``, ``name``, ``gender`` and the ``attributes``; a ``split`` key
    marks an official split, which is kept. Records without one get a stratified split by gender
    and the ``stratify`` columns with ``fractions``, made by ``assign_splits``.
    """
    valid = _validate(list(records), report)
    kept = _deduplicate(valid, attributes, report)
    kept.sort(key=lambda record: record["name"])
    unsplit = [record for record in kept if not record.get("split")]
    if unsplit:
        strata = ["|".join(str(record.get(column)) for column in ("gender", *stratify)) for record in unsplit]
        keys = [record["sha256"] for record in unsplit]
        for record, split in zip(unsplit, assign_splits(keys, strata, fractions, seed)):
            record["split"] = split
    columns = [*REQUIRED_COLUMNS, *attributes]
    frame = pd.DataFrame([{column: record.get(column) for column in columns} for record in kept], columns=columns)
    report.kept = len(frame)
    report.split_counts = {split: int(count) for split, count in Counter(frame["split"]).items()}
    return frame


def write_manifest(frame: pd.DataFrame, dataset: str, report: DatasetReport | None = None,
                   data_dir: str | Path = "data") -> Path:
    """Check and write the manifest (and its report) atomically; return the manifest path."""
    _check(frame, f"manifest of {dataset}")
    target = atomic_write_csv(manifest_path(dataset, data_dir), frame)
    if report is not None:
        atomic_write_json(target.with_suffix(".report.json"), report.to_dict())
    return target


def _check(frame: pd.DataFrame, source: str) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ManifestError(f"{source}: missing columns {missing}")
    bad_gender = sorted(set(frame["gender"]) - set(GENDERS))
    bad_split = sorted(set(frame["split"]) - set(SPLITS))
    if bad_gender or bad_split:
        raise ManifestError(f"{source}: unknown gender values {bad_gender} or split values {bad_split}")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest, checking its columns and values; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; build it with notebook 01 or nbhelpers.data.datasets")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a readable manifest CSV ({error})") from None
    _check(frame, str(path))
    return frame
