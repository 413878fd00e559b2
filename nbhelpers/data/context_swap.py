"""Context swap: train on faces whose surroundings belong to another face, so context cannot carry the label.

Notebook 07's diagnosis found that on real photos of women the evidence for "male" lies more on the background
and the chip's edges than on UTKFace faces of the same group (issue 21). This augmentation breaks any link
between a face's label and what surrounds it: for a random share of the faces of a batch, everything outside
an ellipse around the inner face (brows to chin, as the landmark template of ``nbhelpers.fairness.face_regions``
places them on a UTKFace chip) is taken from another face of the same batch, drawn at random, with a soft edge.
The inner face is untouched, so the label stays right; the donor's label is independent of it.

It is a form of background augmentation against shortcut learning: Xiao, Engstrom, Ilyas and Madry, "Noise or
Signal: The Role of Image Backgrounds in Object Recognition", ICLR 2021 (mixed-background training sets); Geirhos
et al., "Shortcut Learning in Deep Neural Networks", Nature Machine Intelligence 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ContextSwap", "inner_face_mask", "swap_context"]


@dataclass(frozen=True)
class ContextSwap:
    """Where the kept inner face lies and how often the context is swapped (fractions of the chip side).

    The default ellipse covers the UTKFace template's brows (y 0.16), chin (y 0.98) and the inner half of the
    jaw line at the cheeks; the corners, the hair beside the face and the neck lie outside it."""

    probability: float = 0.5  # share of the faces whose context is swapped
    centre: tuple[float, float] = (0.5, 0.55)  # (x, y) of the ellipse's centre
    semi_axes: tuple[float, float] = (0.36, 0.44)  # (horizontal, vertical) half-widths
    edge: float = 0.05  # width of the soft edge (a linear ramp across the ellipse's border)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"ContextSwap.probability must lie in [0, 1], got {self.probability}")
        if min(self.semi_axes) <= 0 or self.edge < 0:
            raise ValueError(f"ContextSwap needs positive semi_axes and edge >= 0, got {self.semi_axes}, {self.edge}")


def inner_face_mask(height: int, width: int, settings: ContextSwap = ContextSwap()) -> torch.Tensor:
    """float32 (height, width) in [0, 1]: 1 inside the inner-face ellipse, 0 outside, a linear ramp of width
    ``settings.edge`` (fraction of the side) across its border."""
    rows = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    columns = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    horizontal = (columns[None, :] - settings.centre[0]) / settings.semi_axes[0]
    vertical = (rows[:, None] - settings.centre[1]) / settings.semi_axes[1]
    # distance outside the ellipse, roughly in fractions of the side (radius 1 maps to the border)
    outside = (torch.sqrt(horizontal ** 2 + vertical ** 2) - 1.0) * min(settings.semi_axes)
    if settings.edge == 0:
        return (outside <= 0).float()
    return (0.5 - outside / settings.edge).clamp(0.0, 1.0)


def swap_context(batch: torch.Tensor, settings: ContextSwap = ContextSwap(),
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 NHWC batch (as the cache stores it) -> the same batch where ``settings.probability`` of the faces
    keep their inner face and take everything around it from another face of the batch (a random derangement,
    so never their own). A batch of one face is returned unchanged. Raises ``ValueError`` for a batch that is not
    uint8 NHWC with 1 or 3 channels."""
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[-1] not in (1, 3):
        raise ValueError(f"swap_context needs a uint8 NHWC batch, got {tuple(batch.shape)} {batch.dtype}")
    count, height, width = batch.shape[:3]
    if count < 2:
        return batch
    chosen = torch.rand(count, generator=generator) < settings.probability
    # a derangement: shift a random permutation by a random non-zero offset
    order = torch.randperm(count, generator=generator)
    offset = int(torch.randint(1, count, (1,), generator=generator))
    donors = torch.empty_like(order)
    donors[order] = order.roll(offset)
    mask = inner_face_mask(height, width, settings)[None, :, :, None]
    mixed = batch.float() * mask + batch[donors].float() * (1.0 - mask)
    swapped = mixed.round_().to(torch.uint8)
    return torch.where(chosen[:, None, None, None], swapped, batch)
