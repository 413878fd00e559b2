"""FairFace adapter: the label CSVs ``fairface_label_train.csv`` and ``fairface_label_val.csv``.

Kärkkäinen, Joo, "FairFace: Face Attribute Dataset for Balanced Race, Gender, and Age", WACV 2021.
FairFace publishes train and val only: its val set becomes our test split, and a deterministic
stratified tenth of its train set becomes our val split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nbhelpers.data.manifest import DatasetReport, ManifestError

__all__ = ["fairface_records", "ATTRIBUTES", "STRATIFY", "FRACTIONS"]

ATTRIBUTES = ("age", "race")
STRATIFY = ("race",)
FRACTIONS = (0.9, 0.1, 0.0)
_FILES = {"fairface_label_train.csv": None, "fairface_label_val.csv": "test"}


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
                            "split": split, "age": row.age, "race": row.race})
    return records
