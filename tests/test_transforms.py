import numpy as np
import pytest
import torch

from nbhelpers.data.transforms import (
    IMAGENET_MEAN,
    PIPELINES,
    bcos_encode,
    build_pipeline,
    channel_stats,
    normalize,
    random_crop_flip,
    random_flip,
    resize,
    to_float,
)


def batch(seed=0, count=6, size=12):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8))


def test_to_float_layout_and_range():
    images = batch()
    floats = to_float(images)
    assert floats.shape == (6, 3, 12, 12) and floats.max() <= 1.0
    assert floats[2, 1, 3, 4] == pytest.approx(images[2, 3, 4, 1].item() / 255)


def test_crop_without_padding_is_identity_or_flip():
    images = to_float(batch())
    out = random_crop_flip(images, padding=0, generator=torch.Generator().manual_seed(0))
    for original, result in zip(images, out):
        assert torch.equal(result, original) or torch.equal(result, original.flip(-1))


def test_crop_is_a_window_of_the_padded_image():
    images = to_float(batch(count=4))
    out = random_crop_flip(images, padding=4, generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(images, (4,) * 4, mode="reflect")
    for index in range(4):
        windows = [padded[index, :, r:r + 12, c:c + 12] for r in range(9) for c in range(9)]
        assert any(torch.equal(out[index], w) or torch.equal(out[index], w.flip(-1)) for w in windows)
    assert not torch.equal(out, images)


def test_flip_flips_about_half():
    images = to_float(batch(count=400, size=4))
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    share = np.mean([not torch.equal(a, b) for a, b in zip(images, flipped)])
    assert 0.4 < share < 0.6


def test_bcos_encoding():
    images = to_float(batch())
    encoded = bcos_encode(images)
    assert encoded.shape[1] == 6 and torch.allclose(encoded[:, 3:], 1 - images)


def test_normalize_and_resize():
    images = torch.full((1, 3, 8, 8), 0.485)
    assert normalize(images, IMAGENET_MEAN, (1, 1, 1))[0, 0].abs().max() < 1e-6
    assert resize(images, 16).shape[-2:] == (16, 16) and resize(images, 8) is images


def test_channel_stats_match_numpy():
    images = np.random.default_rng(1).integers(0, 256, (50, 5, 5, 3), dtype=np.uint8)
    rows = [3, 7, 10, 40]
    mean, std = channel_stats(images, rows, chunk=3)
    selected = images[rows].astype(np.float64) / 255
    assert np.allclose(mean, selected.mean(axis=(0, 1, 2))) and np.allclose(std, selected.std(axis=(0, 1, 2)))


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("train", [True, False])
def test_pipelines(name, train):
    transform = build_pipeline(name, train, (0.5,) * 3, (0.25,) * 3, 16 if name == "finetune" else None,
                               torch.Generator().manual_seed(0))
    out = transform(batch())
    assert out.dtype == torch.float32
    assert out.shape == ((6, 6, 12, 12) if name == "bcos" else (6, 3, 16, 16) if name == "finetune" else (6, 3, 12, 12))
    if not train:
        assert torch.equal(out, transform(batch()))


def test_pipeline_errors():
    with pytest.raises(KeyError, match="unknown pipeline"):
        build_pipeline("mixup", True)
    with pytest.raises(ValueError, match="mean and std"):
        build_pipeline("pad_crop_flip", True)
