"""Fitting the face-descriptor probe (``nbhelpers.models.face_descriptor``) on a dataset's training faces, and
where it lives: ``<checkpoint_dir>/face_descriptor_probe.json``, beside the runs whose prediction path averages
it in (``nbhelpers.predict.predictor``, ``descriptor_probe="auto"``).

Only training faces are used, with scikit-learn's default regularisation (``C = 1``), fixed in advance: no
photo of the evaluation sets chooses anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbhelpers.data.cache import manifest_fingerprint
from nbhelpers.data.manifest import GENDERS, manifest_path, read_manifest
from nbhelpers.models.face_descriptor import DescriptorProbe, describe_chips
from nbhelpers.training.runs import split_faces

__all__ = ["PROBE_NAME", "PROBE_FACE_SIZE", "probe_path", "fit_face_probe", "probe_probabilities"]

PROBE_NAME = "face_descriptor_probe.json"
PROBE_FACE_SIZE = 200  # side (px) of the cached crops the descriptors are computed on: UTKFace's own


def probe_path(checkpoint_dir: str | Path) -> Path:
    """Where the probe of the runs in ``checkpoint_dir`` is saved."""
    return Path(checkpoint_dir) / PROBE_NAME


def fit_face_probe(data_dir: str | Path, dataset: str = "utkface", faces: int = 9000, seed: int = 0,
                   checkpoint_dir: str | Path | None = None, regularisation: float = 1.0) -> DescriptorProbe:
    """Fit the probe on ``faces`` training faces of ``dataset`` (drawn with ``seed``; 0: all) from the cache
    in ``data_dir`` (``describe_chips``: about 15 ms per face on this project's 2-core CPU)
    and, with ``checkpoint_dir``, save it there (``probe_path``, atomic). The probe records the dataset, the seed and
    the fingerprint of the manifest rows of its faces (``DescriptorProbe``). Raises ``ValueError`` when the faces
    hold one class only."""
    images, labels, rows = split_faces(data_dir, dataset, "train", faces, PROBE_FACE_SIZE, seed)
    manifest = manifest_fingerprint(read_manifest(manifest_path(dataset, data_dir)).iloc[np.sort(rows)], PROBE_FACE_SIZE)
    probe = DescriptorProbe.fit(describe_chips(images), labels, GENDERS, regularisation, dataset=dataset, seed=seed,
                                manifest=manifest)
    if checkpoint_dir is not None:
        probe.save(probe_path(checkpoint_dir))
    return probe


def probe_probabilities(probe: DescriptorProbe, data_dir: str | Path, dataset: str, split: str,
                        rows: np.ndarray) -> np.ndarray:
    """float32 probabilities (len(rows), 2) of the probe on the cached faces ``rows`` of ``split`` (e.g. the
    rows a run was tested on, ``TrainingResult.predictions[split].rows``), for in-domain comparisons.
    Raises ``ValueError`` for rows outside ``split``."""
    images, _, split_rows = split_faces(data_dir, dataset, split, 0, PROBE_FACE_SIZE)
    positions = {row: index for index, row in enumerate(split_rows)}
    missing = [int(row) for row in rows if row not in positions]
    if missing:
        raise ValueError(f"rows {missing[:5]} are not faces of the {split} split of {dataset}")
    return probe.predict_proba(describe_chips(images[[positions[row] for row in rows]]))
