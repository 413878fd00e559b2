"""CelebA adapter: ``img_align_celeba/`` with ``list_attr_celeba`` and ``list_eval_partition``.

Liu, Luo, Wang, Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015. The official
partition (0 train, 1 val, 2 test) is kept; gender comes from the ``Male`` attribute and the
40 attributes become 0/1 group columns. Both the original ``.txt`` files and Kaggle's ``.csv``
copies are read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nbhelpers.data.manifest import DatasetReport, ManifestError

__all__ = ["celeba_records", "read_celeba_attributes", "read_celeba_partition"]

_PARTITIONS = {0: "train", 1: "val", 2: "test"}


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.txt", root / f"{stem}.csv"):
        if candidate.is_file():
            return candidate
    raise ManifestError(f"{root}: CelebA layout needs {stem}.txt (or .csv) beside img_align_celeba/")


def read_celeba_attributes(path: Path) -> pd.DataFrame:
    """The attribute table indexed by image name, with values 0/1."""
    if path.suffix == ".csv":
        table = pd.read_csv(path).set_index("image_id")
    else:
        lines = path.read_text().splitlines()
        names = lines[1].split()
        rows = [line.split() for line in lines[2:] if line.strip()]
        table = pd.DataFrame([row[1:] for row in rows], index=[row[0] for row in rows], columns=names).astype(int)
    if "Male" not in table.columns:
        raise ManifestError(f"{path}: no 'Male' attribute column")
    return (table > 0).astype(int)


def read_celeba_partition(path: Path) -> pd.Series:
    """Official split per image name."""
    if path.suffix == ".csv":
        table = pd.read_csv(path).set_index("image_id")["partition"]
    else:
        pairs = [line.split() for line in path.read_text().splitlines() if line.strip()]
        table = pd.Series({name: int(code) for name, code in pairs})
    return table.map(_PARTITIONS)


def celeba_records(root: str | Path, report: DatasetReport, limit: int | None = None) -> tuple[list[dict], list[str]]:
    """Records and attribute names for a CelebA folder."""
    root = Path(root)
    images = root / "img_align_celeba"
    if (images / "img_align_celeba").is_dir():  # Kaggle's copy nests the folder twice
        images = images / "img_align_celeba"
    if not images.is_dir():
        raise ManifestError(f"{root}: CelebA layout needs an img_align_celeba/ folder")
    attributes = read_celeba_attributes(_find(root, "list_attr_celeba"))
    partition = read_celeba_partition(_find(root, "list_eval_partition"))
    names = sorted(attributes.index)[:limit] if limit else sorted(attributes.index)
    report.scanned = len(names)
    columns = [column for column in attributes.columns]
    records = []
    for name in names:
        path = images / name
        if name not in partition.index or pd.isna(partition[name]):
            report.skip(name, "no official partition")
            continue
        row = attributes.loc[name]
        records.append({"path": str(path.resolve()), "name": name, "gender": "male" if row["Male"] else "female",
                        "split": partition[name], **{column: int(row[column]) for column in columns}})
    return records, columns
