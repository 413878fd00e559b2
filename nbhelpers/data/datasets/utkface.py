"""UTKFace adapter: labels parsed from ``age_gender_race_datetime.jpg.chip.jpg`` file names.

Zhang, Song, Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", CVPR 2017.
The data is for non-commercial research only; it is read from where the user keeps it.
Known flaws handled here: names without a race field, names with a stray space or a missing
dot, gender codes other than 0/1, non-image files, and (in ``finalize_manifest``) the same
photo stored under several names, sometimes with conflicting labels.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from nbhelpers.data.datasets.archive import is_archive, unpack_archive
from nbhelpers.data.manifest import DatasetReport

__all__ = ["RACES", "AGE_BANDS", "age_band", "parse_utkface_name", "utkface_records", "ATTRIBUTES", "STRATIFY"]

RACES = ("White", "Black", "Asian", "Indian", "Others")
AGE_BANDS = ((0, 2, "0-2"), (3, 9, "3-9"), (10, 19, "10-19"), (20, 39, "20-39"), (40, 59, "40-59"), (60, 200, "60+"))
ATTRIBUTES = ("age", "age_band", "race")
STRATIFY = ("race", "age_band")
_NAME = re.compile(r"^(\d{1,3})_(\d+)_(?:(\d+)_)?(\d{8,})")
_MAX_AGE = 116


def age_band(age: int) -> str:
    """The age band (e.g. ``"20-39"``) that ``age`` falls in."""
    return next(label for low, high, label in AGE_BANDS if low <= age <= high)


def parse_utkface_name(name: str) -> dict:
    """Parse a UTKFace file name into gender, age, age_band and race; raise ValueError if unusable."""
    match = _NAME.match(name.strip())
    if match is None:
        raise ValueError("file name does not follow age_gender_race_datetime")
    age, gender_code, race_code = int(match.group(1)), match.group(2), match.group(3)
    if gender_code not in {"0", "1"}:
        raise ValueError(f"gender code {gender_code} is neither 0 (male) nor 1 (female)")
    if age > _MAX_AGE:
        raise ValueError(f"age {age} is out of range 0-{_MAX_AGE}")
    race = RACES[int(race_code)] if race_code is not None and int(race_code) < len(RACES) else None
    return {"gender": "female" if gender_code == "1" else "male", "age": age, "age_band": age_band(age), "race": race}


def _subset(files: list[Path], limit: int | None) -> list[Path]:
    if limit is None or limit >= len(files):
        return files
    ranked = sorted(files, key=lambda path: hashlib.sha256(path.name.encode()).hexdigest())
    return sorted(ranked[:limit])


def utkface_records(source: str | Path, report: DatasetReport, work_dir: str | Path = "data/raw",
                    limit: int | None = None) -> list[dict]:
    """Records for every UTKFace file under ``source`` (a folder or an archive).

    ``limit`` keeps a deterministic subset (chosen by a hash of the file name) for quick runs.
    Files whose names carry no usable gender label are reported and left out.
    """
    source = Path(source)
    root = unpack_archive(source, Path(work_dir) / "utkface") if is_archive(source) else source
    if not root.is_dir():
        raise FileNotFoundError(f"{source}: UTKFace folder or archive not found")
    files = _subset(sorted(path for path in root.rglob("*") if path.is_file() and path.name != ".unpacked.json"), limit)
    report.scanned = len(files)
    records = []
    for path in files:
        try:
            labels = parse_utkface_name(path.name)
        except ValueError as error:
            report.skip(path.name, f"unusable file name: {error}")
            continue
        if labels["race"] is None:
            report.converted["race missing from file name (kept, race unknown)"] += 1
        records.append({"path": str(path.resolve()), "name": path.name, **labels})
    return records
