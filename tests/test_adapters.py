"""CelebA, FairFace and plain-folder adapters on small fixtures, and the offline download path."""

import sys
import types

import pytest

from nbhelpers.data.datasets import build_manifest, download, locate_source
from nbhelpers.data.manifest import ManifestError

ATTRS = ["5_o_Clock_Shadow", "Eyeglasses", "Male", "Pale_Skin", "Young"]


@pytest.fixture
def celeba_root(make_image, tmp_path):
    root = tmp_path / "celeba"
    lines, partition = [], []
    for i in range(12):
        name = f"{i:06d}.jpg"
        make_image(f"celeba/img_align_celeba/{name}", seed=i)
        values = ["1" if (i + k) % 2 else "-1" for k in range(len(ATTRS))]
        lines.append(" ".join([name, *values]))
        partition.append(f"{name} {i % 3}")
    (root / "list_attr_celeba.txt").write_text(f"{len(lines)}\n{' '.join(ATTRS)}\n" + "\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


def test_celeba_official_split_and_attributes(celeba_root, tmp_path):
    frame, report, _ = build_manifest("celeba", celeba_root, data_dir=tmp_path / "data")
    assert len(frame) == 12 and report.kept == 12
    assert list(frame["split"][:3]) == ["train", "val", "test"]
    assert set(ATTRS) <= set(frame.columns)
    assert ((frame["Male"] == 1) == (frame["gender"] == "male")).all()
    assert set(frame["Eyeglasses"]) == {0, 1}


def test_celeba_kaggle_csv_layout(celeba_root, tmp_path):
    import pandas as pd

    (celeba_root / "img_align_celeba").rename(tmp_path / "inner")
    (celeba_root / "img_align_celeba").mkdir()
    (tmp_path / "inner").rename(celeba_root / "img_align_celeba" / "img_align_celeba")
    lines = (celeba_root / "list_attr_celeba.txt").read_text().splitlines()
    rows = [line.split() for line in lines[2:]]
    pd.DataFrame([r[1:] for r in rows], columns=ATTRS).assign(image_id=[r[0] for r in rows]).to_csv(
        celeba_root / "list_attr_celeba.csv", index=False)
    parts = [line.split() for line in (celeba_root / "list_eval_partition.txt").read_text().splitlines()]
    pd.DataFrame(parts, columns=["image_id", "partition"]).to_csv(celeba_root / "list_eval_partition.csv", index=False)
    (celeba_root / "list_attr_celeba.txt").unlink()
    (celeba_root / "list_eval_partition.txt").unlink()
    frame, _, _ = build_manifest("celeba", celeba_root, data_dir=tmp_path / "data")
    assert len(frame) == 12 and list(frame["split"][:3]) == ["train", "val", "test"]


def test_celeba_missing_files(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(ManifestError, match="list_attr_celeba.txt"):
        build_manifest("celeba", tmp_path, data_dir=tmp_path / "data")


def test_fairface_labels(make_image, tmp_path):
    root = tmp_path / "fairface"
    rows = {"train": [], "val": []}
    for i in range(40):
        part = "train" if i < 30 else "val"
        make_image(f"fairface/{part}/{i}.jpg", seed=i)
        gender = ["Male", "Female", "Unknown"][i % 3] if i == 5 else ["Male", "Female"][i % 2]
        rows[part].append(f"{part}/{i}.jpg,20-29,{gender},{['White', 'Black'][i % 2]},True")
    for part, lines in rows.items():
        (root / f"fairface_label_{part}.csv").write_text("file,age,gender,race,service_test\n" + "\n".join(lines))
    frame, report, _ = build_manifest("fairface", root, data_dir=tmp_path / "data")
    assert report.skipped == {"gender label 'Unknown' is neither Female nor Male": ["train/5.jpg"]}
    assert (frame.loc[frame["path"].str.contains("/val/"), "split"] == "test").all()
    assert set(frame.loc[frame["path"].str.contains("/train/"), "split"]) == {"train", "val"}
    assert {"age", "race"} <= set(frame.columns) and set(frame["age_band"]) == {"20-39"}  # UTKFace's band of 20-29


def test_fairface_age_groups_map_onto_utkface_bands():
    from nbhelpers.data.datasets.fairface import fairface_age_band
    from nbhelpers.data.datasets.utkface import AGE_BANDS
    from tests.fixtures import FAIRFACE_AGES

    bands = [fairface_age_band(group) for group in FAIRFACE_AGES]
    assert set(bands) == {label for _, _, label in AGE_BANDS} and bands == sorted(bands, key=bands.index)
    assert fairface_age_band("30-39") == "20-39" and fairface_age_band("more than 70") == "60+"
    assert fairface_age_band("??") == "unknown"


def test_plain_folder_layout(make_image, tmp_path):
    for index, split in enumerate(["train", "train", "val", "test"]):
        for gender in ("female", "male"):
            make_image(f"faces/{split}/{gender}/{index}.jpg", seed=index * 2 + (gender == "male"))
    frame, _, _ = build_manifest("folder", tmp_path / "faces", data_dir=tmp_path / "data")
    assert sorted(frame["split"].value_counts().items()) == [("test", 2), ("train", 4), ("val", 2)]


def test_class_only_folder_gets_a_split(make_image, tmp_path):
    for index in range(30):
        make_image(f"faces/{['female', 'male'][index % 2]}/{index}.jpg", seed=index)
    frame, _, _ = build_manifest("folder", tmp_path / "faces", data_dir=tmp_path / "data")
    assert set(frame["split"]) == {"train", "val", "test"}


@pytest.mark.parametrize("folders, message", [
    (["pictures"], "wrong layout"),
    (["train/female", "train/male", "val/female", "val/male"], r"split folders \['test'\] are missing"),
    (["train/women", "val/female", "test/male"], "expected sub-folders 'female' and 'male'"),
])
def test_wrong_folder_layouts(tmp_path, folders, message):
    for folder in folders:
        (tmp_path / "faces" / folder).mkdir(parents=True)
    with pytest.raises(ManifestError, match=message):
        build_manifest("folder", tmp_path / "faces", data_dir=tmp_path / "data")


def test_unknown_dataset(tmp_path):
    with pytest.raises(KeyError, match="unknown dataset 'imagenet'"):
        build_manifest("imagenet", tmp_path)


def test_missing_source_explains_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="Point DATA_PATH at the folder or archive"):
        locate_source("utkface", tmp_path / "nowhere.tar.gz")


def test_offline_downloads_fail_at_once_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setattr(download, "is_reachable", lambda host, port=443, timeout=3.0: False)
    with pytest.raises(download.DownloadError, match="cannot reach www.kaggle.com: download https://www.kaggle.com/datasets/jangedoo/utkface-new"):
        locate_source("utkface", tmp_path / "missing", download=True, data_dir=tmp_path)
    with pytest.raises(download.DownloadError, match="list_attr_celeba.txt"):
        locate_source("celeba", tmp_path / "missing", download=True, data_dir=tmp_path)


def test_reachability_probe_is_quick_and_false_for_a_closed_port():
    import time

    start = time.perf_counter()
    assert download.is_reachable("127.0.0.1", port=9, timeout=1.0) is False
    assert time.perf_counter() - start < 2.0


def test_online_kaggle_download_goes_through_opendatasets(monkeypatch, tmp_path):
    calls = []
    fake = types.SimpleNamespace(download=lambda url, data_dir: calls.append((url, data_dir)))
    monkeypatch.setitem(sys.modules, "opendatasets", fake)
    monkeypatch.setattr(download, "is_reachable", lambda host, port=443, timeout=3.0: True)
    target = download.download_kaggle("fairface", tmp_path)
    assert calls == [("https://www.kaggle.com/datasets/aibloy/fairface", str(tmp_path))]
    assert target == tmp_path / "fairface"


def test_online_celeba_download_goes_through_torchvision(monkeypatch, tmp_path):
    import torchvision.datasets

    calls = []

    class FakeCelebA:
        def __init__(self, root, split, target_type, download):
            calls.append((root, split, download))

    monkeypatch.setattr(torchvision.datasets, "CelebA", FakeCelebA)
    monkeypatch.setattr(download, "is_reachable", lambda host, port=443, timeout=3.0: True)
    assert download.download_celeba(tmp_path) == tmp_path / "celeba"
    assert calls == [(str(tmp_path), "all", True)]
