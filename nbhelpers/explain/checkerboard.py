"""Checkerboard index of explanation maps: the share of spectral power near the Nyquist frequencies.

Strided convolutions (and transposed ones) give the pixels of an input uneven numbers of kernel taps,
so gradients and gradient-based maps alternate with pixel parity: a checkerboard (Odena, Dumoulin, Olah,
"Deconvolution and Checkerboard Artifacts", Distill 2016). A period-2 pattern puts its power at the
highest frequencies a pixel grid holds, (pi, pi) for a checkerboard and (pi, 0) / (0, pi) for stripes,
while the face-scale structure an explanation should show lives near the origin.

``checkerboard_index`` measures the share of a map's spectral power, the DC term excluded, that lies
in three square bands of half-width ``half_width`` (cycles per pixel; 1/16 = pi/8 rad by default) around
(pi, pi), (pi, 0) and (0, pi). Frequencies are taken modulo 2 pi, so -pi and pi are the same point. Each
map is centred (its mean removed) and multiplied by a 2-D Hann window first, so that the jump at the
borders of the periodic extension does not leak power along the axes. A pure checkerboard scores about
1, a smooth blob about 0, white noise the bands' share of the frequency plane, ``3 * (2 * half_width)^2``
(about 0.047 by default).
"""

from __future__ import annotations

import torch

__all__ = ["checkerboard_index", "nyquist_band_mask"]

DEFAULT_HALF_WIDTH = 1 / 16  # cycles per pixel: pi / 8 rad


def nyquist_band_mask(height: int, width: int, half_width: float = DEFAULT_HALF_WIDTH) -> torch.Tensor:
    """Boolean (height, width) mask, in ``torch.fft.fft2`` order, of the frequencies within ``half_width``
    cycles per pixel (on both axes, modulo 1) of (1/2, 1/2), (1/2, 0) or (0, 1/2); the DC bin is never in it.

    Raises ``ValueError`` for ``half_width`` outside (0, 1/4) or a side under 2 pixels.
    """
    if not 0 < half_width < 0.25:
        raise ValueError(f"half_width must lie in (0, 0.25) cycles per pixel, not {half_width}")
    if height < 2 or width < 2:
        raise ValueError(f"maps need at least 2 x 2 pixels, got {height} x {width}")
    rows, columns = torch.fft.fftfreq(height).abs(), torch.fft.fftfreq(width).abs()  # 0 .. 1/2
    near_nyquist_rows, near_nyquist_columns = (0.5 - rows) <= half_width, (0.5 - columns) <= half_width
    near_zero_rows, near_zero_columns = rows <= half_width, columns <= half_width
    mask = ((near_nyquist_rows[:, None] & near_nyquist_columns[None, :])
            | (near_nyquist_rows[:, None] & near_zero_columns[None, :])
            | (near_zero_rows[:, None] & near_nyquist_columns[None, :]))
    mask[0, 0] = False
    return mask


def checkerboard_index(maps: torch.Tensor, half_width: float = DEFAULT_HALF_WIDTH) -> torch.Tensor:
    """Share (N,) float64 in 0..1 of each (N, H, W) map's spectral power (DC excluded) near the Nyquist
    frequencies (see the module docstring); 0 for a constant map. Accepts one (H, W) map too (returns a scalar).

    Raises ``ValueError`` for another number of dimensions or non-finite values.
    """
    single = maps.dim() == 2
    maps = maps[None] if single else maps
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape (N, H, W), got {tuple(maps.shape)}")
    maps = maps.detach().to(torch.float64)
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")
    height, width = maps.shape[-2:]
    window = torch.outer(torch.hann_window(height, periodic=False, dtype=torch.float64),
                         torch.hann_window(width, periodic=False, dtype=torch.float64)).to(maps.device)
    centred = (maps - maps.mean(dim=(1, 2), keepdim=True)) * window
    power = torch.fft.fft2(centred).abs().square()
    power[:, 0, 0] = 0.0
    band = nyquist_band_mask(height, width, half_width).to(maps.device)
    total = power.sum(dim=(1, 2))
    share = (power * band).sum(dim=(1, 2)) / total.clamp(min=torch.finfo(torch.float64).tiny)
    share = torch.where(total > 0, share, torch.zeros_like(share))
    return share[0] if single else share
