"""Safe image decoding: every failure becomes an ``ImageLoadError`` naming the file and the problem.

Handles zero-byte files, non-image files, truncated or corrupt JPEGs, decompression bombs,
EXIF orientation, and converts grayscale, palette, alpha, CMYK and 16-bit images to 8-bit RGB.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "LoadedImage", "load_rgb", "DEFAULT_MAX_PIXELS", "difference_hash", "centre_square_box",
           "square_resize"]

DEFAULT_MAX_PIXELS = 40_000_000  # larger images are treated as decompression bombs
_ORIENTATION_TAG = 0x0112
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageLoadError(ValueError):
    """An image could not be read; ``path`` names the file and ``reason`` says why."""

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = str(path) if path is not None else "<bytes>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class LoadedImage:
    """A decoded 8-bit RGB image, the mode it was stored in, and the conversions applied."""

    image: Image.Image
    original_mode: str
    notes: list[str] = field(default_factory=list)


def _open(source: str | os.PathLike | bytes, name: str | None) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageLoadError(name, "empty file (0 bytes)")
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(name or path, "not a file" if path.exists() else "file not found")
        if path.stat().st_size == 0:
            raise ImageLoadError(name or path, "empty file (0 bytes)")
        stream = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(stream)
    except UnidentifiedImageError:
        raise ImageLoadError(name or source, "not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageLoadError(name or source, f"decompression bomb refused ({error})") from None
    except OSError as error:
        raise ImageLoadError(name or source, f"cannot open image ({error})") from None


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if (mode.startswith("I;16") or values.max(initial=0) > 255) else 1.0
        values = values * 255.0 if mode == "F" and values.max(initial=0) <= 1.0 else values / scale
        notes.append(f"{mode} scaled to 8-bit")
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
        mode = "L"
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        notes.append(f"{mode} alpha composited on white")
        return background
    if mode != "RGB":
        notes.append(f"{mode} converted to RGB")
        image = image.convert("RGB")
    return image


def load_rgb(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> LoadedImage:
    """Decode ``source`` (a path or raw bytes) into an 8-bit RGB image, applying EXIF orientation.

    ``draft_size`` lets the JPEG decoder downscale on the fly (faster when building small caches).
    Raises ``ImageLoadError`` with the file name and a readable reason for every bad input.
    """
    label = name or (None if isinstance(source, (bytes, bytearray)) else str(source))
    image = _open(source, label)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(label, f"decompression bomb refused ({width}x{height} exceeds {max_pixels} pixels)")
    if width < 1 or height < 1:
        raise ImageLoadError(label, f"image has no pixels ({width}x{height})")
    original_mode = image.mode
    notes: list[str] = []
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.load()
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        oriented = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(label, f"truncated or corrupt image data ({error})") from None
    if orientation not in (None, 1):
        notes.append("EXIF orientation applied")
    return LoadedImage(_to_rgb(oriented, notes), original_mode, notes)


def difference_hash(image: Image.Image, hash_size: int = 8) -> int:
    """Perceptual difference hash (dHash): survives re-encoding, so it finds re-saved copies."""
    small = image.convert("L").resize((hash_size + 1, hash_size), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(np.packbits(bits).tobytes().hex(), 16)


def centre_square_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest centred square of a ``width`` x ``height`` image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_resize(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to ``size`` x ``size`` with antialiasing."""
    box = centre_square_box(*image.size)
    if box != (0, 0, *image.size):
        image = image.crop(box)
    return image if image.size[0] == size else image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
