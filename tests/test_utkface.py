import tarfile
import zipfile

import pytest

from nbhelpers.data.datasets import build_manifest
from nbhelpers.data.datasets.utkface import age_band, parse_utkface_name


@pytest.mark.parametrize("name, expected", [
    ("41_0_3_20170119171541497.jpg.chip.jpg", {"gender": "male", "age": 41, "race": "Indian", "age_band": "40-59"}),
    ("48_1_2_20170109002813437.jpg.chip.jpg", {"gender": "female", "age": 48, "race": "Asian", "age_band": "40-59"}),
    ("61_1_20170109150557335.jpg.chip.jpg", {"gender": "female", "age": 61, "race": None, "age_band": "60+"}),
    ("55_0_0_20170116232725357jpg.chip.jpg", {"gender": "male", "age": 55, "race": "White", "age_band": "40-59"}),
    ("24_0_1_20170116220224657 .jpg.chip.jpg", {"gender": "male", "age": 24, "race": "Black", "age_band": "20-39"}),
    ("1_1_4_20161221193016140.jpg.chip.jpg", {"gender": "female", "age": 1, "race": "Others", "age_band": "0-2"}),
])
def test_parse_real_name_shapes(name, expected):
    assert parse_utkface_name(name) == expected


@pytest.mark.parametrize("name, message", [
    ("26_3_1_20170116220224657.jpg.chip.jpg", "gender code 3"),
    ("photo.jpg", "does not follow"),
    ("200_0_0_20170116220224657.jpg.chip.jpg", "out of range"),
])
def test_unusable_names(name, message):
    with pytest.raises(ValueError, match=message):
        parse_utkface_name(name)


def test_age_bands():
    assert [age_band(a) for a in (0, 2, 3, 9, 10, 19, 20, 39, 40, 59, 60, 116)] == [
        "0-2", "0-2", "3-9", "3-9", "10-19", "10-19", "20-39", "20-39", "40-59", "40-59", "60+", "60+"]


@pytest.fixture
def utk_folder(make_image, tmp_path):
    """A small UTKFace-like folder with the real set's flaws."""
    folder = tmp_path / "UTKFace"
    for i in range(40):
        make_image(f"UTKFace/{20 + i}_{i % 2}_{i % 5}_2017011{i:010d}.jpg.chip.jpg", seed=i)
    make_image("UTKFace/33_1_20170109150557335.jpg.chip.jpg", seed=100)  # race missing
    make_image("UTKFace/30_3_0_20170109150557336.jpg.chip.jpg", seed=101)  # gender code 3
    (folder / "README.txt").write_text("not a face")
    (folder / "10_0_0_20170109150557337.jpg.chip.jpg").write_bytes(b"")
    original = folder / "20_0_0_20170110000000000.jpg.chip.jpg"
    (folder / "21_0_0_20170110000000000.jpg.chip.jpg").write_bytes(original.read_bytes())  # copy, same gender
    (folder / "22_0_1_20170110000000002.jpg.chip.jpg").write_bytes((folder / "21_1_1_20170110000000001.jpg.chip.jpg").read_bytes())
    return folder


def test_folder_adapter_handles_flaws(utk_folder, tmp_path):
    with pytest.warns(UserWarning):
        frame, report, path = build_manifest("utkface", utk_folder, data_dir=tmp_path / "data")
    skipped = {reason: sorted(names) for reason, names in report.skipped.items()}
    assert skipped["unusable file name: gender code 3 is neither 0 (male) nor 1 (female)"] == [
        "30_3_0_20170109150557336.jpg.chip.jpg"]
    assert skipped["unusable file name: file name does not follow age_gender_race_datetime"] == ["README.txt"]
    assert skipped["unreadable image: empty file"] == ["10_0_0_20170109150557337.jpg.chip.jpg"]
    assert skipped["duplicate of another image (copy removed)"] == ["21_0_0_20170110000000000.jpg.chip.jpg"]
    assert skipped["duplicate image with conflicting gender labels"] == [
        "21_1_1_20170110000000001.jpg.chip.jpg", "22_0_1_20170110000000002.jpg.chip.jpg"]
    assert report.scanned == 46 and report.kept == len(frame) == 40
    assert set(frame["split"]) == {"train", "val", "test"}  # small strata still reach every split
    assert frame.loc[frame["path"].str.contains("33_1_2017"), "race"].isna().all()
    assert path.is_file()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_sources_match_folder(utk_folder, tmp_path, kind):
    archive = tmp_path / f"UTKFace.{kind}"
    files = sorted(utk_folder.iterdir())
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as bundle:
            for file in files:
                bundle.write(file, f"UTKFace/{file.name}")
    else:
        with tarfile.open(archive, "w:gz") as bundle:
            bundle.add(utk_folder, "UTKFace")
    with pytest.warns(UserWarning):
        from_folder, _, _ = build_manifest("utkface", utk_folder, data_dir=tmp_path / "a")
        from_archive, _, _ = build_manifest("utkface", archive, data_dir=tmp_path / "b")
    assert from_folder[["gender", "split", "sha256", "age", "race"]].equals(from_archive[["gender", "split", "sha256", "age", "race"]])
    assert (tmp_path / "b" / "raw" / "utkface" / ".unpacked.json").is_file()


def test_real_archive_full(utkface_archive, tmp_path):
    """The whole embedded UTKFace set: every file validated, duplicates out, splits disjoint by content."""
    frame, report, _ = build_manifest("utkface", utkface_archive, data_dir=tmp_path)
    assert report.scanned == 23708
    assert 22000 < report.kept < 23708
    assert len(report.skipped["duplicate of another image (copy removed)"]) > 300
    assert len(report.skipped["duplicate image with conflicting gender labels"]) > 0
    assert frame["sha256"].is_unique
    assert set(frame["gender"]) == {"female", "male"}
    shares = frame["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.01) and shares["test"] == pytest.approx(0.1, abs=0.01)
    female_share = frame.groupby("split")["gender"].apply(lambda g: (g == "female").mean())
    assert female_share.max() - female_share.min() < 0.01  # stratified
    # same split on a second build (another folder, same data): identical on every run
    again, _, _ = build_manifest("utkface", tmp_path / "raw" / "utkface", data_dir=tmp_path / "again")
    assert dict(zip(frame["sha256"], frame["split"])) == dict(zip(again["sha256"], again["split"]))
