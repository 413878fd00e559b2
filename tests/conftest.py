"""Shared fixtures: small image files made on the fly, and the real UTKFace archive from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
UTKFACE_ARCHIVE = Path(os.environ.get("UTKFACE_PATH", ROOT.parent / "shared" / "data" / "UTKFace.tar.gz"))


def face_like(seed: int, size: int = 40) -> Image.Image:
    """A distinct random RGB image (distinct seeds give distinct byte and perceptual hashes)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


@pytest.fixture
def make_image(tmp_path):
    """Factory: make_image("a/b.jpg", seed) writes a distinct JPEG and returns its path."""

    def factory(relative: str, seed: int, size: int = 40, fmt: str = "JPEG") -> Path:
        return save(face_like(seed, size), tmp_path / relative, format=fmt, quality=95)

    return factory


@pytest.fixture(scope="session")
def utkface_archive() -> Path:
    if not UTKFACE_ARCHIVE.is_file():
        pytest.skip(f"real UTKFace archive not found at {UTKFACE_ARCHIVE} (set UTKFACE_PATH)")
    return UTKFACE_ARCHIVE


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tiny models on one thread: they gain nothing from threads, and oversubscribed cores
    (another process on the same two cores) make each op many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_run(utkface_archive, tmp_path_factory):
    """All numbered notebooks run once with the smoke profile: (exit code, folder with data/ and reports/)."""
    from nbhelpers.run_notebooks import main

    base = tmp_path_factory.mktemp("smoke")
    code = main(["--profile", "smoke", "--data", str(utkface_archive), "--data-dir", str(base / "data"),
                 "--reports", str(base / "reports"), "--notebooks", str(NOTEBOOKS)])
    return code, base
