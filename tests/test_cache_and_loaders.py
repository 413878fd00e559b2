import os

import numpy as np
import pytest
import torch
from PIL import Image

from nbhelpers.data.cache import build_cache
from nbhelpers.data.datasets import build_manifest
from nbhelpers.data.images import load_rgb, square_resize
from nbhelpers.data.loaders import CachedBatchLoader
from nbhelpers.utils.device import DeviceDataLoader, get_default_device, to_device


@pytest.fixture
def toy_manifest(make_image, tmp_path):
    for index in range(24):
        make_image(f"faces/{['female', 'male'][index % 2]}/{index}.jpg", seed=index, size=50)
    frame, _, _ = build_manifest("folder", tmp_path / "faces", data_dir=tmp_path / "data")
    return frame


def test_cache_holds_resized_images(toy_manifest, tmp_path):
    cache = build_cache(toy_manifest, "toy", 16, tmp_path / "cache")
    assert cache.images.shape == (24, 16, 16, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    path = toy_manifest["path"][3]
    assert np.array_equal(cache.images[3], np.asarray(square_resize(load_rgb(path, draft_size=(16, 16)).image, 16)))
    full_decode = np.asarray(square_resize(Image.open(path).convert("RGB"), 16))
    assert np.abs(cache.images[3].astype(int) - full_decode.astype(int)).mean() < 8  # JPEG draft decoding is close


def test_cache_is_reused_then_rebuilt_when_manifest_changes(toy_manifest, tmp_path):
    cache = build_cache(toy_manifest, "toy", 16, tmp_path / "cache")
    stamp = os.stat(cache.path).st_mtime_ns
    assert os.stat(build_cache(toy_manifest, "toy", 16, tmp_path / "cache").path).st_mtime_ns == stamp
    smaller = toy_manifest.iloc[:10].reset_index(drop=True)
    rebuilt = build_cache(smaller, "toy", 16, tmp_path / "cache")
    assert rebuilt.images.shape[0] == 10
    assert build_cache(toy_manifest, "toy", 16, tmp_path / "cache").images.shape[0] == 24


def test_non_square_images_are_centre_cropped():
    image = Image.new("RGB", (60, 20), (0, 0, 0))
    image.paste((255, 255, 255), (20, 0, 40, 20))
    assert np.asarray(square_resize(image, 10)).min() == 255


def test_file_gone_after_manifest_is_reported_and_left_out(toy_manifest, tmp_path):
    os.remove(toy_manifest["path"][5])
    name = os.path.basename(toy_manifest["path"][5])
    with pytest.warns(UserWarning, match=rf"/{name}: file not found; row 5 left out of the cache"):
        cache = build_cache(toy_manifest, "toy", 16, tmp_path / "cache")
    assert len(cache.bad_rows) == 1
    all_rows = np.concatenate([cache.split_indices(s) for s in ("train", "val", "test")])
    assert len(all_rows) == 23 and cache.bad_rows[0] not in all_rows


def test_loader_covers_each_row_once_with_right_labels(toy_manifest, tmp_path):
    cache = build_cache(toy_manifest, "toy", 16, tmp_path / "cache")
    loader = CachedBatchLoader(cache, "train", batch_size=5, shuffle=True, seed=1)
    seen = []
    for images, labels in loader:
        assert images.dtype == torch.uint8 and images.shape[1:] == (16, 16, 3)
        for image, label in zip(images, labels):
            row = int(np.flatnonzero((cache.images == image.numpy()).all(axis=(1, 2, 3)))[0])
            assert label.item() == int(cache.frame["gender"][row] == "male")
            seen.append(row)
    assert sorted(seen) == sorted(cache.split_indices("train"))
    assert len(loader) == int(np.ceil(len(seen) / 5))


def test_loader_shuffles_per_epoch_and_shards_like_distributed_sampler(toy_manifest, tmp_path):
    cache = build_cache(toy_manifest, "toy", 16, tmp_path / "cache")
    loader = CachedBatchLoader(cache, "train", batch_size=100, shuffle=True)
    first = loader._order().copy()
    loader.set_epoch(1)
    assert not np.array_equal(first, loader._order())
    shards = [CachedBatchLoader(cache, "train", shuffle=True, rank=r, world_size=2)._order() for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(cache.split_indices("train"))


def test_device_helpers(monkeypatch):
    monkeypatch.setenv("NBHELPERS_DEVICE", "cpu")
    assert get_default_device() == torch.device("cpu")
    monkeypatch.delenv("NBHELPERS_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_default_device().type in {expected, "mps"}
    moved = to_device({"a": [torch.ones(1), (torch.zeros(2), "text")]}, "cpu")
    assert moved["a"][1][1] == "text" and moved["a"][0].device.type == "cpu"
    loader = DeviceDataLoader([(torch.ones(2), torch.zeros(2))] * 3, "cpu")
    assert len(loader) == 3 and all(batch[0].device.type == "cpu" for batch in loader)


def test_weighted_loader_draws_rows_in_proportion_to_their_weights(toy_manifest, tmp_path):
    cache = build_cache(toy_manifest, "toy", 16, tmp_path / "cache")
    rows = cache.split_indices("train")
    weights = np.zeros(len(rows))
    weights[:2] = [3.0, 1.0]  # only the first two rows, 3:1
    loader = CachedBatchLoader(cache, "train", batch_size=7, shuffle=True, weights=weights)
    draws = np.concatenate([(loader.set_epoch(epoch), loader._order())[1] for epoch in range(200)])
    assert set(draws) == set(rows[:2]) and len(draws) == 200 * len(rows)
    assert abs((draws == rows[0]).mean() - 0.75) < 0.02
    assert sum(len(labels) for _, labels in loader) == len(rows)  # an epoch is still one pass worth of rows
    with pytest.raises(ValueError, match="non-negative"):
        CachedBatchLoader(cache, "train", weights=-np.ones(len(rows)))
