"""The context swap: inner faces kept, surroundings from another face of the batch, seeded; training takes it by name."""

import pytest
import torch

from nbhelpers.data.context_swap import ContextSwap, inner_face_mask, swap_context
from nbhelpers.data.photo_augment import build_augmentation
from nbhelpers.training.config import TrainConfig, run_directory


def _plain_faces(count: int = 6, size: int = 40) -> torch.Tensor:
    """uint8 NHWC: face i is the flat grey level 20 * (i + 1), so every pixel names the face it came from."""
    levels = (20 * torch.arange(1, count + 1)).to(torch.uint8)
    return levels[:, None, None, None].expand(count, size, size, 3).contiguous()


def test_mask_is_one_inside_zero_outside_with_a_ramp():
    mask = inner_face_mask(100, 100, ContextSwap(centre=(0.5, 0.5), semi_axes=(0.3, 0.4), edge=0.1))
    assert mask.shape == (100, 100) and mask.dtype == torch.float32
    assert mask[50, 50] == 1 and mask[0, 0] == 0 and mask[50, 99] == 0 and mask[99, 50] == 0
    assert 0 < mask[50, 80] < 1  # x = 0.805, on the horizontal border (0.5 + 0.3)
    assert mask[50, 70] == 1 and mask[50, 90] == 0  # well inside, well outside
    hard = inner_face_mask(100, 100, ContextSwap(centre=(0.5, 0.5), semi_axes=(0.3, 0.4), edge=0.0))
    assert set(hard.unique().tolist()) == {0.0, 1.0}


def test_swapped_faces_keep_their_centre_and_take_another_faces_corners():
    batch = _plain_faces()
    out = swap_context(batch, ContextSwap(probability=1.0), torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert torch.equal(out[:, 22, 20], batch[:, 22, 20])  # the inner face is untouched
    corners = out[:, 0, 0, 0]
    assert torch.all(corners != batch[:, 0, 0, 0])  # never its own surroundings (a derangement)
    assert sorted(corners.tolist()) == sorted(batch[:, 0, 0, 0].tolist())  # each face donates exactly once


def test_probability_zero_is_the_identity_and_a_share_is_swapped_otherwise():
    batch = _plain_faces(count=200, size=16)
    assert torch.equal(swap_context(batch, ContextSwap(probability=0.0)), batch)
    out = swap_context(batch, ContextSwap(probability=0.5), torch.Generator().manual_seed(1))
    swapped = (out[:, 0, 0, 0] != batch[:, 0, 0, 0]).float().mean().item()
    assert 0.35 < swapped < 0.65
    assert torch.equal(swap_context(batch[:1], ContextSwap(probability=1.0)), batch[:1])  # one face: no donor


def test_seeded_and_validated():
    batch = torch.randint(0, 256, (8, 24, 24, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    first = swap_context(batch, ContextSwap(), torch.Generator().manual_seed(3))
    assert torch.equal(first, swap_context(batch, ContextSwap(), torch.Generator().manual_seed(3)))
    assert not torch.equal(first, swap_context(batch, ContextSwap(), torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="uint8 NHWC"):
        swap_context(batch.float())
    with pytest.raises(ValueError, match="probability"):
        ContextSwap(probability=1.5)
    with pytest.raises(ValueError, match="semi_axes"):
        ContextSwap(semi_axes=(0.0, 0.4))


def test_named_augmentation_and_its_run_folder():
    augment = build_augmentation("context", 0)
    assert build_augmentation("context_quarter", 0)(_plain_faces()).shape == (6, 40, 40, 3)
    batch = _plain_faces()
    assert augment(batch).shape == batch.shape
    assert run_directory(TrainConfig(checkpoint_dir="c", augment="context")) != run_directory(
        TrainConfig(checkpoint_dir="c", augment="photo"))
