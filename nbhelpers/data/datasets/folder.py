"""Plain folder adapter: ``train/female``, ``train/male``, ``val/...``, ``test/...`` (or just
``female/`` and ``male/``, which then get a deterministic stratified split)."""

from __future__ import annotations

from pathlib import Path

from nbhelpers.data.manifest import GENDERS, SPLITS, DatasetReport, ManifestError

__all__ = ["folder_records"]


def _class_folders(folder: Path) -> list[Path]:
    children = sorted(child for child in folder.iterdir() if child.is_dir())
    unknown = [child.name for child in children if child.name.lower() not in GENDERS]
    if unknown or not children:
        raise ManifestError(
            f"{folder}: expected sub-folders 'female' and 'male', found {[c.name for c in children] or 'none'}")
    return children


def folder_records(root: str | Path, report: DatasetReport) -> list[dict]:
    """Records for a folder laid out by split and class, or by class alone."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: folder not found")
    names = {child.name.lower() for child in root.iterdir() if child.is_dir()}
    if names & set(SPLITS):
        missing = sorted(set(SPLITS) - names)
        if missing:
            raise ManifestError(f"{root}: split folders {missing} are missing; expected train/, val/ and test/")
        layout = [(root / split, split) for split in SPLITS]
    elif names & set(GENDERS):
        layout = [(root, None)]
    else:
        raise ManifestError(f"{root}: wrong layout; expected train/female, train/male, val/..., test/... "
                            f"or female/ and male/, found {sorted(names) or 'no folders'}")
    records = []
    for folder, split in layout:
        for class_folder in _class_folders(folder):
            for path in sorted(p for p in class_folder.rglob("*") if p.is_file()):
                report.scanned += 1
                records.append({"path": str(path.resolve()), "name": str(path.relative_to(root)),
                                "gender": class_folder.name.lower(), "split": split})
    return records
