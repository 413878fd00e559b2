"""FairFace adapter: the label CSVs ``fairface_label_train.csv`` and ``fairface_label_val.csv``.

Kärkkäinen, Joo, "FairFace: Face Attribute Dataset for Balanced Race, Gender, and Age", WACV 2021.
FairFace publishes train and val only: its val set becomes our test split, and a deterministic
stratified tenth of its train set becomes our val split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nbhelpers.data.manifest import DatasetReport, ManifestError

__all__ = ["fairface_records", "fairface_age_band", "ATTRIBUTES", "STRATIFY", "FRACTIONS", "AGE_BANDS"]

ATTRIBUTES = ("age", "age_band", "race")
STRATIFY = ("race", "age_band")
# FairFace's nine age groups onto UTKFace's six age bands (nbhelpers.data.datasets.utkface.AGE_BANDS), so the
# bias study groups both datasets alike
AGE_BANDS = {"0-2": "0-2", "3-9": "3-9", "10-19": "10-19", "20-29": "20-39", "30-39": "20-39", "40-49": "40-59",
             "50-59": "40-59", "60-69": "60+", "more than 70": "60+"}
FRACTIONS = (0.9, 0.1, 0.0)
_FILES = {"fairface_label_train.csv": None, "fairface_label_val.csv": "test"}


def fairface_age_band(age_group: object) -> str:
    """UTKFace's age band of a FairFace age group (``"30-39"`` -> ``"20-39"``); ``"unknown"`` for any other value."""
    return AGE_BANDS.get(str(age_group).strip(), "unknown")


def fairface_records(root: str | Path, report: DatasetReport, limit: int | None = None) -> list[dict]:
    """Records for a FairFace folder holding the label CSVs and the image folders they name."""
    root = Path(root)
    records = []
    for file_name, split in _FILES.items():
        table_path = root / file_name
        if not table_path.is_file():
            raise ManifestError(f"{root}: FairFace layout needs {file_name}")
        table = pd.read_csv(table_path)
        missing = {"file", "gender", "age", "race"} - set(table.columns)
        if missing:
            raise ManifestError(f"{table_path}: missing columns {sorted(missing)}")
        for row in table.head(limit).itertuples(index=False) if limit else table.itertuples(index=False):
            report.scanned += 1
            gender = str(row.gender).strip().lower()
            if gender not in {"female", "male"}:
                report.skip(row.file, f"gender label {row.gender!r} is neither Female nor Male")
                continue
            records.append({"path": str((root / row.file).resolve()), "name": row.file, "gender": gender,
                            "split": split, "age": row.age, "age_band": fairface_age_band(row.age), "race": row.race})
    return records
