"""Checkpoint fuzzing: whatever file is passed as a checkpoint, loading it either works or raises a one-line
``CheckpointError`` naming the file (never a KeyError, IndexError, ... from inside torch), and the prediction
command line turns that into one ``error: cannot use checkpoint: ...`` line and exit code 2."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from nbhelpers.models import create_model
from nbhelpers.training.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from tests.conftest import ROOT, face_like

METADATA = {"model": "simple_cnn", "model_kwargs": {"num_classes": 2}, "classes": ["female", "male"], "input_size": 32,
            "pipeline": "pad_crop_flip", "mean": [0.5] * 3, "std": [0.25] * 3}


def _torch_file(make_payload: Callable[[dict[str, torch.Tensor]], Any]) -> Callable[[Path, dict], None]:
    """A writer that ``torch.save``s ``make_payload(valid state dict)``."""
    return lambda path, valid: torch.save(make_payload(valid["state"]), path)


def _checkpoint(state_change: Callable[[dict], dict] = dict, **metadata_changes: Any) -> Callable[[Path, dict], None]:
    """A writer of a checkpoint whose structure is right but whose state dict or metadata is changed."""
    def write(path: Path, valid: dict) -> None:
        metadata = {key: value for key, value in {**METADATA, **metadata_changes}.items() if value is not _DROP}
        torch.save({"model_state": state_change(dict(valid["state"])), "metadata": metadata}, path)
    return write


def _image(fmt: str) -> Callable[[Path, dict], None]:
    return lambda path, valid: face_like(0, 48).save(path, format=fmt)


def _bytes(content: bytes | Callable[[dict], bytes]) -> Callable[[Path, dict], None]:
    return lambda path, valid: path.write_bytes(content(valid) if callable(content) else content)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _legacy(valid: dict) -> bytes:
    """A valid checkpoint in torch's old (pre-zip) serialisation, cut in the middle: the other reader."""
    buffer = io.BytesIO()
    torch.save({"model_state": valid["state"], "metadata": METADATA}, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


_DROP = object()
# file name -> writer(path, valid) where valid = {"state": state dict, "bytes": a valid checkpoint file's bytes}
FILE_LEVEL: dict[str, Callable[[Path, dict], None]] = {
    "photo.png": _image("PNG"), "photo.jpg": _image("JPEG"), "photo.webp": _image("WEBP"),
    "notes.txt": _bytes("a text file, not a checkpoint\nsecond line\n".encode()),
    "config.json": _bytes(json.dumps({"model_state": {}, "metadata": METADATA}).encode()),
    "empty.pt": _bytes(b""),
    **{f"random{size}.bin": _bytes(random.Random(size).randbytes(size)) for size in (1, 3, 16, 100, 1000, 4096, 65536)},
    "not_torch.zip": _bytes(_zip({"readme.txt": b"hello"})),
    "fake_archive.pt": _bytes(_zip({"archive/data.pkl": b"\x80\x02garbage", "archive/version": b"3\n"})),
    "python_pickle.pt": _bytes(pickle.dumps({"model_state": {}, "metadata": {}})),
    "legacy_cut.pt": _bytes(_legacy),
    **{f"cut{fraction}.pt": _bytes(lambda valid, f=fraction: valid["bytes"][: int(len(valid["bytes"]) * f / 100)])
       for fraction in (1, 10, 50, 90, 99)},
    **{f"cut_minus{tail}.pt": _bytes(lambda valid, t=tail: valid["bytes"][:-t]) for tail in (1, 22, 100)},
    "tensor.pt": _torch_file(lambda state: torch.zeros(3)),
    "list.pt": _torch_file(lambda state: [1, 2, 3]),
    "no_keys.pt": _torch_file(lambda state: {"weights": state}),
    "only_state.pt": _torch_file(lambda state: {"model_state": state}),
    "state_list.pt": _torch_file(lambda state: {"model_state": list(state.values()), "metadata": METADATA}),
    "state_ints.pt": _torch_file(lambda state: {"model_state": {key: 1 for key in state}, "metadata": METADATA}),
    "state_int_keys.pt": _torch_file(lambda state: {"model_state": dict(enumerate(state.values())),
                                                    "metadata": METADATA}),
    "metadata_list.pt": _torch_file(lambda state: {"model_state": state, "metadata": [METADATA]}),
    "metadata_none.pt": _torch_file(lambda state: {"model_state": state, "metadata": None}),
}
MODEL_LEVEL: dict[str, Callable[[Path, dict], None]] = {  # load_checkpoint accepts these; the model cannot be built
    "model_missing.pt": _checkpoint(model=_DROP),
    "model_int.pt": _checkpoint(model=7),
    "model_list.pt": _checkpoint(model=["simple_cnn"]),
    "model_unknown.pt": _checkpoint(model="resnet1000"),
    "kwargs_list.pt": _checkpoint(model_kwargs=[2]),
    "kwargs_int_keys.pt": _checkpoint(model_kwargs={1: 2}),
    "kwargs_unknown.pt": _checkpoint(model_kwargs={"depth": 3}),
    "kwargs_str_classes.pt": _checkpoint(model_kwargs={"num_classes": "two"}),
    "kwargs_negative.pt": _checkpoint(model_kwargs={"num_classes": -1}),
    "kwargs_five_classes.pt": _checkpoint(model_kwargs={"num_classes": 5}),
    "other_model.pt": _checkpoint(model="resnet9"),
    "shape_mismatch.pt": _checkpoint(lambda state: {**state, next(iter(state)): torch.zeros(1)}),
    "missing_weights.pt": _checkpoint(lambda state: dict(list(state.items())[1:])),
    "extra_weights.pt": _checkpoint(lambda state: {**state, "surplus.weight": torch.zeros(2)}),
    "pipeline_unknown.pt": _checkpoint(pipeline="sharpen"),
    "pipeline_list.pt": _checkpoint(pipeline=["pad_crop_flip"]),
    "input_size_str.pt": _checkpoint(input_size="32"),
    "mean_str.pt": _checkpoint(mean="0.5"),
    "std_short.pt": _checkpoint(std=[0.25]),
    "classes_int.pt": _checkpoint(classes=2),
}


@pytest.fixture(scope="module")
def valid(tmp_path_factory, single_thread) -> dict[str, Any]:
    """A real checkpoint of ``simple_cnn`` as prediction loads it: its path, bytes and state dict."""
    torch.manual_seed(0)
    model = create_model("simple_cnn")
    path = save_checkpoint(tmp_path_factory.mktemp("valid") / "model.pt",
                           {"model_state": model.state_dict(), "metadata": METADATA})
    return {"path": path, "bytes": path.read_bytes(), "state": model.state_dict()}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, valid) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    for name, write in {**FILE_LEVEL, **MODEL_LEVEL}.items():
        write(folder / name, valid)
    (folder / "a_directory.pt").mkdir()
    return folder


def assert_checkpoint_error(load: Callable[[Path], Any], path: Path) -> str:
    """``load(path)`` raises a ``CheckpointError`` (nothing else) whose one-line message names the file."""
    with pytest.raises(CheckpointError) as caught:
        load(path)
    message = str(caught.value)
    assert path.name in message and "\n" not in message, message
    return message


def test_valid_checkpoint_still_loads(valid):
    payload = load_checkpoint(valid["path"])
    assert payload["metadata"] == METADATA
    model = model_from_checkpoint(valid["path"])
    assert {key: model.spec.to_dict()[key] for key in METADATA} == METADATA and not model.training
    assert all(torch.equal(value, valid["state"][key]) for key, value in model.state_dict().items())


def test_resume_payload_with_extra_keys_and_empty_metadata_still_loads(tmp_path, valid):
    save_checkpoint(tmp_path / "last.pt", {"model_state": valid["state"], "metadata": {}, "epoch": 3,
                                           "history": [{"loss": 1.0}], "optimizer_state": {"state": {}}})
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


@pytest.mark.parametrize("name", sorted(FILE_LEVEL) + ["a_directory.pt", "missing.pt"])
def test_unreadable_files_raise_checkpoint_error(bad_files, name):
    assert_checkpoint_error(load_checkpoint, bad_files / name)
    assert_checkpoint_error(model_from_checkpoint, bad_files / name)


@pytest.mark.parametrize("name", sorted(MODEL_LEVEL))
def test_payloads_that_do_not_build_the_model_raise_checkpoint_error(bad_files, name):
    load_checkpoint(bad_files / name)  # well-formed; only rebuilding the model must fail
    assert_checkpoint_error(model_from_checkpoint, bad_files / name)


def test_messages_say_what_is_wrong(bad_files):
    expected = {"a_directory.pt": "is a directory", "missing.pt": "checkpoint not found",
                "empty.pt": "empty checkpoint",
                "notes.txt": "corrupt, truncated or unsafe", "photo.webp": "corrupt, truncated or unsafe",
                "list.pt": "not a checkpoint of this suite", "metadata_list.pt": "metadata is a list",
                "state_ints.pt": "is an int, not a tensor", "model_unknown.pt": "unknown model 'resnet1000'",
                "kwargs_list.pt": "field 'model_kwargs' is a list", "shape_mismatch.pt": "size mismatch",
                "pipeline_unknown.pt": "field 'pipeline' is 'sharpen'",
                "kwargs_five_classes.pt": "num_classes=5", "std_short.pt": "field 'std'"}
    for name, words in expected.items():
        assert words in assert_checkpoint_error(model_from_checkpoint, bad_files / name)


def test_random_bytes_and_flipped_prefixes_never_escape(tmp_path, valid):
    """Seeded random files of random sizes, and random bytes behind real torch/zip/pickle headers."""
    generator = random.Random(1234)
    prefixes = [b"", b"\x80\x02", b"\x80\x04\x95", b"PK\x03\x04", valid["bytes"][:64]]
    for index in range(300):
        path = tmp_path / f"fuzz{index}.pt"
        path.write_bytes(prefixes[index % len(prefixes)] + generator.randbytes(generator.randint(1, 3000)))
        assert_checkpoint_error(load_checkpoint, path)


def test_rejected_files_leave_no_torch_warnings(bad_files):
    """torch warns about a foreign pickle protocol before failing; that noise must not reach stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_checkpoint_error(load_checkpoint, bad_files / "python_pickle.pt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.pt")
    assert "not a regular file" in assert_checkpoint_error(load_checkpoint, tmp_path / "pipe.pt")


def test_cli_prints_one_error_line_and_exits_two(bad_files):
    """The real command line (two runs at once: each start takes seconds) on a text file and a WEBP image, which
    used to escape as KeyError and IndexError tracebacks; the other kinds share the same CheckpointError path."""
    photo = bad_files / "photo.png"
    runs = {name: subprocess.Popen([sys.executable, "-m", "nbhelpers.predict", "--checkpoint", str(bad_files / name),
                                    "--no-progress", str(photo)], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            for name in ("notes.txt", "photo.webp")}
    for name, process in runs.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, stderr
        assert stdout == "" and "Traceback" not in stderr, stderr
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot use checkpoint:") and name in lines[0], stderr
