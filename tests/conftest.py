"""Shared fixtures: small image files made on the fly, the real UTKFace archive from ../shared, and (when that is
absent) a generated archive in its format for the notebook runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
UTKFACE_ARCHIVE = Path(os.environ.get("UTKFACE_PATH", ROOT.parent / "shared" / "data" / "UTKFace.tar.gz"))
_NOTEBOOK_DATA: list[str] = []  # which archive notebook_archive chose, for the terminal summary


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


@pytest.fixture
def toy_data(make_image, tmp_path) -> Path:
    """A 60-face plain-folder dataset (female/, male/) with its manifest built; returns the data folder."""
    from nbhelpers.data.datasets import build_manifest

    for index in range(60):
        gender = ["female", "male"][index % 2]
        make_image(f"faces/{gender}/{index}.jpg", seed=index, size=40)
    build_manifest("folder", tmp_path / "faces", data_dir=tmp_path / "data")
    return tmp_path / "data"


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
def notebook_archive(tmp_path_factory) -> tuple[Path, bool]:
    """(archive, is_real): the real UTKFace archive when present, else a small generated one (made once a session)
    in the same format (tests/fixtures.py), so that the notebook tests run everywhere instead of skipping."""
    if UTKFACE_ARCHIVE.is_file():
        archive, is_real = UTKFACE_ARCHIVE, True
    else:
        from tests.fixtures import make_utkface_archive

        archive, is_real = make_utkface_archive(tmp_path_factory.mktemp("utkface_fixture") / "UTKFace.tar.gz"), False
    _NOTEBOOK_DATA.append(f"real UTKFace archive {archive}" if is_real else
                          f"generated UTKFace-format fixture {archive} (real archive not found at {UTKFACE_ARCHIVE})")
    return archive, is_real


@pytest.fixture(scope="session")
def smoke_data_is_real(notebook_archive) -> bool:
    """True when the smoke run used real faces; assertions that only hold on real photos depend on it."""
    return notebook_archive[1]


@pytest.fixture(scope="session")
def smoke_run(notebook_archive, tmp_path_factory):
    """All numbered notebooks run once with the smoke profile: (exit code, folder with data/ and reports/)."""
    from nbhelpers.reporting.run_notebooks import main

    archive, _ = notebook_archive
    base = tmp_path_factory.mktemp("smoke")
    code = main(["--profile", "smoke", "--data", str(archive), "--data-dir", str(base / "data"),
                 "--reports", str(base / "reports"), "--notebooks", str(NOTEBOOKS)])
    return code, base


def pytest_terminal_summary(terminalreporter):
    """Say which data the notebook tests ran on (shown with -q too)."""
    for line in _NOTEBOOK_DATA:
        terminalreporter.write_line(f"notebook tests ran on: {line}")


def tiny_checkpoint_file(path: Path, **spec_changes) -> Path:
    """A checkpoint of an untrained simple CNN at 32 px (ImageNet-style pipeline, mean 0.5, std 0.25): what the
    prediction front ends need to run, for tests that check behaviour, not accuracy."""
    from nbhelpers.models import create_model
    from nbhelpers.training.checkpoint import save_checkpoint

    model = create_model("simple_cnn")
    spec = model.spec.replace(**{"input_size": 32, "pipeline": "finetune", "mean": (0.5,) * 3, "std": (0.25,) * 3,
                                 **spec_changes})
    return save_checkpoint(path, {"model_state": model.state_dict(), "metadata": spec.to_dict()})


def smooth_photo(width: int = 120, height: int = 90):
    """A smooth colour gradient (PIL image): no face for any detector."""
    from PIL import Image

    x, y = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    return Image.fromarray(np.stack([x, y, (x + y) / 2], axis=2).astype(np.uint8))
