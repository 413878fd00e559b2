from collections import Counter

import pandas as pd
import pytest

from nbhelpers.data.manifest import (
    DatasetReport,
    ManifestError,
    assign_splits,
    finalize_manifest,
    read_manifest,
    write_manifest,
)


def test_split_is_deterministic_and_independent_of_order():
    keys = [f"key{i}" for i in range(1000)]
    strata = ["a" if i % 3 else "b" for i in range(1000)]
    first = assign_splits(keys, strata)
    reversed_result = assign_splits(keys[::-1], strata[::-1])[::-1]
    assert first == reversed_result
    assert first != assign_splits(keys, strata, seed=1)


def test_split_is_stratified():
    keys = [f"k{i}" for i in range(2000)]
    strata = ["female"] * 500 + ["male"] * 1500
    splits = assign_splits(keys, strata)
    for stratum, size in (("female", 500), ("male", 1500)):
        counts = Counter(s for s, g in zip(splits, strata) if g == stratum)
        assert counts["train"] == pytest.approx(0.8 * size, abs=1)
        assert counts["val"] == pytest.approx(0.1 * size, abs=1)
        assert counts["test"] == pytest.approx(0.1 * size, abs=1)


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(["a"], ["x"], (0.5, 0.2, 0.2))


def _records(make_image, specs):
    return [{"path": str(make_image(name, seed)), "name": name, "gender": gender, "age": age}
            for name, seed, gender, age in specs]


def test_duplicates_are_removed_and_conflicts_dropped(make_image, tmp_path):
    specs = [("a.jpg", 1, "male", 30), ("b.jpg", 2, "female", 20), ("c.jpg", 3, "male", 40)]
    records = _records(make_image, specs)
    # exact copy of a.jpg with the same gender but another age; copy of b.jpg with the other gender
    (tmp_path / "a_copy.jpg").write_bytes((tmp_path / "a.jpg").read_bytes())
    (tmp_path / "b_copy.jpg").write_bytes((tmp_path / "b.jpg").read_bytes())
    records += [{"path": str(tmp_path / "a_copy.jpg"), "name": "a_copy.jpg", "gender": "male", "age": 31},
                {"path": str(tmp_path / "b_copy.jpg"), "name": "b_copy.jpg", "gender": "male", "age": 20}]
    report = DatasetReport("toy")
    frame = finalize_manifest(records, "toy", ["age"], report)
    assert sorted(frame["path"].map(lambda p: p.split("/")[-1])) == ["a.jpg", "c.jpg"]
    assert report.skipped["duplicate of another image (copy removed)"] == ["a_copy.jpg"]
    assert sorted(report.skipped["duplicate image with conflicting gender labels"]) == ["b.jpg", "b_copy.jpg"]
    assert frame.loc[frame["path"].str.endswith("a.jpg"), "age"].isna().all()  # ages disagreed


def test_reencoded_copy_counts_as_duplicate(make_image, tmp_path):
    from PIL import Image

    records = _records(make_image, [("x.jpg", 9, "female", 25)])
    Image.open(tmp_path / "x.jpg").save(tmp_path / "x_resaved.jpg", quality=70)
    records.append({"path": str(tmp_path / "x_resaved.jpg"), "name": "x_resaved.jpg", "gender": "female", "age": 25})
    report = DatasetReport("toy")
    frame = finalize_manifest(records, "toy", ["age"], report)
    assert len(frame) == 1 and report.skipped["duplicate of another image (copy removed)"] == ["x_resaved.jpg"]


def test_unreadable_files_are_reported_not_fatal(make_image, tmp_path):
    records = _records(make_image, [("ok.jpg", 1, "male", 3)])
    (tmp_path / "zero.jpg").write_bytes(b"")
    records.append({"path": str(tmp_path / "zero.jpg"), "name": "zero.jpg", "gender": "male", "age": 3})
    report = DatasetReport("toy")
    with pytest.warns(UserWarning, match="zero.jpg: empty file"):
        frame = finalize_manifest(records, "toy", ["age"], report)
    assert len(frame) == 1 and report.skipped["unreadable image: empty file"] == ["zero.jpg"]


def test_official_split_is_kept(make_image):
    records = _records(make_image, [(f"{i}.jpg", i, "male" if i % 2 else "female", i) for i in range(6)])
    for record in records:
        record["split"] = "test"
    frame = finalize_manifest(records, "toy", ["age"], DatasetReport("toy"))
    assert set(frame["split"]) == {"test"}


def test_write_and_read_round_trip(tmp_path):
    frame = pd.DataFrame({"path": ["/a.jpg"], "gender": ["male"], "split": ["train"], "sha256": ["x"], "age": [3]})
    path = write_manifest(frame, "toy", DatasetReport("toy"), data_dir=tmp_path)
    assert path == tmp_path / "manifests" / "toy.csv"
    assert read_manifest(path).equals(frame)
    assert (tmp_path / "manifests" / "toy.report.json").is_file()
    assert [p.name for p in (tmp_path / "manifests").iterdir() if p.name.startswith(".")] == []


def test_bad_manifests_give_clear_errors(tmp_path):
    with pytest.raises(ManifestError, match="missing.csv: manifest not found"):
        read_manifest(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,gender\n/a.jpg,male\n")
    with pytest.raises(ManifestError, match=r"bad.csv: missing columns \['split', 'sha256'\]"):
        read_manifest(bad)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("path,gender,split,sha256\n/a.jpg,man,train,x\n")
    with pytest.raises(ManifestError, match="unknown gender values"):
        read_manifest(wrong)


def test_split_sample_reads_the_manifest_only_and_draws_like_split_faces():
    import numpy as np
    import pandas as pd

    from nbhelpers.data.manifest import sample_rows, split_sample

    frame = pd.DataFrame({"path": [f"{i}.jpg" for i in range(50)], "split": ["train", "test"] * 25,
                          "gender": ["female", "male"] * 25})
    sample = split_sample(frame, "test", 5, seed=3)
    test_rows = np.flatnonzero(frame["split"] == "test")
    assert list(sample.index) == list(sample_rows(test_rows, 5, 3)) and (sample["split"] == "test").all()
    assert len(split_sample(frame, "test", 0)) == 25 and list(sample.index) == sorted(sample.index)
