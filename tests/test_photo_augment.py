"""The real-photo degradations: each does what it says, seeded, on whole uint8 batches; training takes it by name."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from nbhelpers.data.photo_augment import (
    PhotoDegradation, build_augmentation, degrade_photos, jpeg_round_trip, random_affine, random_blur, random_lighting,
)
from nbhelpers.training.cli import main
from nbhelpers.training.config import TrainConfig, run_directory
from nbhelpers.training.runs import find_run

OFF = PhotoDegradation(jitter_probability=0, blur_probability=0, jpeg_probability=0, lighting_probability=0,
                       noise_probability=0, grayscale_probability=0)


def _faces(count: int = 8, size: int = 48, seed: int = 0) -> torch.Tensor:
    """uint8 NHWC: smooth random pictures with a bright centred square (a stand-in for the face)."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, 6, 6, generator=generator)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False) * 0.5
    images[:, :, size // 4:3 * size // 4, size // 4:3 * size // 4] = 0.95
    return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _float(batch: torch.Tensor) -> torch.Tensor:
    return batch.permute(0, 3, 1, 2).float() / 255


def test_all_off_is_the_identity_and_shape_dtype_are_kept():
    batch = _faces()
    assert torch.equal(degrade_photos(batch, OFF, torch.Generator().manual_seed(0)), batch)
    degraded = degrade_photos(batch, PhotoDegradation(), torch.Generator().manual_seed(0))
    assert degraded.shape == batch.shape and degraded.dtype == torch.uint8 and not torch.equal(degraded, batch)


def test_seeded_and_different_per_seed():
    batch = _faces()
    first = degrade_photos(batch, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, degrade_photos(batch, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(first, degrade_photos(batch, generator=torch.Generator().manual_seed(2)))


def test_zooming_out_shrinks_the_face_and_no_jitter_keeps_it():
    images = _float(_faces())
    zoom_out = replace(OFF, jitter_probability=1.0, zoom=(1.5, 1.5), shift=0.0, rotation_degrees=0.0)
    bright = lambda x: (x.mean(dim=1) > 0.9).float().mean().item()  # noqa: E731 (share of face pixels)
    assert bright(random_affine(images, zoom_out)) == pytest.approx(bright(images) / 1.5 ** 2, rel=0.15)
    assert torch.allclose(random_affine(images, OFF), images, atol=1e-5)


def test_blur_removes_fine_detail_on_the_chosen_images_only():
    pattern = (torch.arange(96)[:, None] + torch.arange(96)[None]) % 2  # 96 px: sigma is in px of a 96 px chip
    checker = pattern.float().expand(4, 3, 96, 96).contiguous()
    blurred = random_blur(checker, replace(OFF, blur_probability=1.0, blur_sigma=(1.5, 1.5)))
    assert blurred.std() < 0.1 * checker.std() and blurred.mean() == pytest.approx(0.5, abs=0.02)
    assert torch.equal(random_blur(checker, OFF), checker)


def test_lighting_brightness_and_grayscale():
    images = _float(_faces())
    darker = replace(OFF, lighting_probability=1.0, brightness=0.0, contrast=0.0, saturation=0.0, colour_gain=0.0,
                     gamma=(2.0, 2.0))
    assert random_lighting(images.clone(), darker).mean() < images.mean() - 0.05  # gamma 2 darkens
    gray = random_lighting(images.clone(), replace(OFF, grayscale_probability=1.0))
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    noisy = random_lighting(images.clone(), replace(OFF, noise_probability=1.0, noise_sigma=0.05))
    assert 0 < (noisy - images).abs().mean() < 0.05 and noisy.min() >= 0 and noisy.max() <= 1


def test_jpeg_round_trip_loses_a_little():
    batch = _faces().permute(0, 3, 1, 2).contiguous()
    coded = jpeg_round_trip(batch, replace(OFF, jpeg_probability=1.0, jpeg_quality=(20, 20)))
    error = (coded.float() - batch.float()).abs()
    assert error.mean() > 0.3 and error.mean() < 12  # lossy, but the same picture
    assert torch.equal(jpeg_round_trip(batch, OFF), batch)


def test_named_augmentations_and_their_run_folders():
    assert build_augmentation("", 0) is None
    augment = build_augmentation("photo", 0)
    assert augment(_faces()).shape == _faces().shape
    with pytest.raises(KeyError, match="photo"):
        build_augmentation("phtoo", 0)
    plain = run_directory(TrainConfig(checkpoint_dir="c"))
    assert plain != run_directory(TrainConfig(checkpoint_dir="c", augment="photo"))


def test_training_with_photo_augmentation_records_it(toy_data, tmp_path, single_thread):
    common = ["--model", "simple_cnn", "--profile", "smoke", "--data-dir", str(toy_data), "--dataset", "folder",
              "--epochs", "1", "--image-size", "16", "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main([*common, "--augment", "photo"]) == 0
    run = find_run(tmp_path / "ckpt", "simple_cnn")
    assert run["config"]["augment"] == "photo" and np.isfinite(run["test_accuracy"])
