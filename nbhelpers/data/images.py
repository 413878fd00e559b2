"""Safe image decoding: every failure becomes an ``ImageLoadError`` naming the file and the problem in one line.

Formats read: JPEG (also saved as .jfif/.jpe, and MPO, the multi-picture JPEG of many phones), PNG, GIF, BMP, TIFF,
WebP, AVIF (built into Pillow >= 11.3), HEIC/HEIF (iPhone photos, through pillow-heif, registered on first use), and
any other format Pillow opens. Files are recognised by content, never by suffix (``scan_image_folder``).

What is handled: zero-byte, non-image, truncated and corrupt files (errors); a JPEG missing only its end-of-image
marker (decoded, with a warning note); malformed EXIF (ignored with a note, the orientation still applied when
readable); grayscale, palette, alpha, CMYK and 10-16-bit images (8-bit RGB; deep images scaled by the bits their data
uses, so a 12-bit scan in a 16-bit file keeps its contrast).

Limits (two numbers): an image over ``MAX_DECLARED_PIXELS`` (178,956,970 = twice Pillow's default
``Image.MAX_IMAGE_PIXELS``) is refused from its header as a decompression bomb. At most ``max_pixels`` (default
``DEFAULT_MAX_PIXELS``, 40 MP) are decoded into memory: a larger JPEG is decoded reduced by JPEG draft mode (DCT
scaling, ITU-T T.81 / libjpeg) at 1/2, 1/4 or 1/8, whichever is the first to fit (a 50 MP 8160x6120 phone photo
decodes at 1/2, 4080x3060); any other format over the limit is refused. ``max_side`` asks for a smaller decode.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from nbhelpers.data.image_decoding import (ImageLoadError, apply_orientation, decode_without_end_marker, is_jpeg,
                                           one_line, open_image, register_heif_opener, rescale_deep_colour, to_rgb,
                                           warning_notes)

__all__ = ["ImageLoadError", "LoadedImage", "load_rgb", "scan_image_folder", "DEFAULT_MAX_PIXELS",
           "MAX_DECLARED_PIXELS", "DRAFT_SCALES", "difference_hash", "centre_square_box", "square_resize"]

DEFAULT_MAX_PIXELS = 40_000_000  # most pixels decoded into memory (a larger JPEG is decoded reduced)
MAX_DECLARED_PIXELS = 2 * 89_478_485  # a header declaring more is refused outright (Pillow's default hard limit)
DRAFT_SCALES = (1, 2, 4, 8)  # the reductions JPEG draft mode offers


@dataclass
class LoadedImage:
    """A decoded 8-bit RGB image (``image``, mode "RGB"), the mode it was stored in, and the conversions applied
    (``notes``: one line each, e.g. "decoded at 1/2 scale (8160x6120 -> 4080x3060)", "malformed EXIF ignored: ...")."""

    image: Image.Image
    original_mode: str
    notes: list[str] = field(default_factory=list)


@contextmanager
def _byte_stream(source: str | os.PathLike | bytes, label: str | None) -> Iterator[IO[bytes]]:
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageLoadError(label, "empty file (0 bytes)")
        yield io.BytesIO(source)
        return
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(label or path, "not a file" if path.exists() else "file not found")
    try:
        empty = path.stat().st_size == 0
        handle = open(path, "rb")
    except OSError as error:
        raise ImageLoadError(label or path, f"cannot read file ({one_line(error)})") from None
    with handle:
        if empty:
            raise ImageLoadError(label or path, "empty file (0 bytes)")
        yield handle


def _reduced_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    return -(-size[0] // scale), -(-size[1] // scale)


def _size_problem(image: Image.Image, max_pixels: int) -> str | None:
    """Why ``image`` (header read) is refused for its size, or None."""
    width, height = image.size
    if width < 1 or height < 1:
        return f"image has no pixels ({width}x{height})"
    pixels = width * height
    if pixels > MAX_DECLARED_PIXELS:
        return (f"decompression bomb refused ({width}x{height} = {pixels} pixels, over the hard limit of "
                f"{MAX_DECLARED_PIXELS})")
    if pixels <= max_pixels:
        return None
    if not is_jpeg(image):
        return (f"decompression bomb refused ({width}x{height} = {pixels} pixels, over the decode limit of "
                f"{max_pixels}; only JPEGs are decoded reduced)")
    reduced = _reduced_size(image.size, DRAFT_SCALES[-1])
    if reduced[0] * reduced[1] > max_pixels:
        return (f"decompression bomb refused ({width}x{height} = {pixels} pixels, over the decode limit of "
                f"{max_pixels} even at 1/{DRAFT_SCALES[-1]} scale)")
    return None


def _draft_scale(size: tuple[int, int], max_pixels: int, draft_size: tuple[int, int] | None,
                 max_side: int | None) -> int:
    """The JPEG reduction: the smallest that fits ``max_pixels``, or a larger one still meeting the requests."""
    reduced = {scale: _reduced_size(size, scale) for scale in DRAFT_SCALES}
    fitting = min([scale for scale, (width, height) in reduced.items() if width * height <= max_pixels],
                  default=DRAFT_SCALES[-1])
    if draft_size is None and max_side is None:
        return fitting
    requested = [scale for scale, (width, height) in reduced.items()
                 if (draft_size is None or (width >= draft_size[0] and height >= draft_size[1]))
                 and (max_side is None or max(width, height) >= max_side)]
    return max(fitting, max(requested, default=1))


def _load_pixels(image: Image.Image, stream: IO[bytes], label: str | None, scale: int,
                 notes: list[str]) -> Image.Image:
    try:
        image.load()
        return image
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        problem = one_line(error)
    if is_jpeg(image):
        stream.seek(0)
        recovered = decode_without_end_marker(stream.read(), scale)
        if recovered is not None:
            notes.append("warning: JPEG end-of-image marker (FFD9) missing; decoded anyway")
            return recovered
    raise ImageLoadError(label, f"truncated or corrupt image data ({problem})")


def _fit_side(image: Image.Image, max_side: int | None, notes: list[str]) -> Image.Image:
    if max_side is None or max(image.size) <= max_side:
        return image
    factor = max_side / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    notes.append(f"reduced to {size[0]}x{size[1]} (max_side {max_side})")
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _decode(image: Image.Image, stream: IO[bytes], label: str | None, max_pixels: int,
            draft_size: tuple[int, int] | None, max_side: int | None) -> LoadedImage:
    problem = _size_problem(image, max_pixels)
    if problem is not None:
        raise ImageLoadError(label, problem)
    original_mode, original_size, notes = image.mode, image.size, []
    scale = _draft_scale(image.size, max_pixels, draft_size, max_side) if is_jpeg(image) else 1
    if scale > 1:
        image.draft("RGB", (max(1, image.width // scale), max(1, image.height // scale)))
        if image.width * image.height > max_pixels:
            raise ImageLoadError(label, f"decompression bomb refused ({image.width}x{image.height} could not be "
                                        f"decoded reduced below {max_pixels} pixels)")
        if image.size != original_size:
            notes.append(f"decoded at 1/{scale} scale ({original_size[0]}x{original_size[1]} -> "
                         f"{image.width}x{image.height})")
    image = _load_pixels(image, stream, label, scale, notes)
    image = to_rgb(apply_orientation(rescale_deep_colour(image, stream, notes), notes), notes)
    return LoadedImage(_fit_side(image, max_side, notes), original_mode, notes)


def load_rgb(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
    max_side: int | None = None,
) -> LoadedImage:
    """Decode ``source`` (a path or raw bytes) into an upright 8-bit RGB image (EXIF orientation applied).

    ``name`` labels errors (default: the path, or "<bytes>"). At most ``max_pixels`` are decoded: a larger JPEG is
    decoded at 1/2, 1/4 or 1/8 scale, anything else larger is refused; ``MAX_DECLARED_PIXELS`` is refused from the
    header. ``draft_size`` (width, height) lets the JPEG decoder reduce while keeping at least that size (faster
    small caches); ``max_side`` returns an image whose longer side is at most that many pixels (JPEGs reduced while
    decoding, the rest resized with Lanczos). Every conversion is listed in ``LoadedImage.notes``.

    Raises ``ImageLoadError`` (a ``ValueError``; ``path`` and a one-line ``reason``) for every bad input, including
    any unexpected decoder exception and running out of memory ("too large to decode").
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    label = name or (None if isinstance(source, (bytes, bytearray)) else str(source))
    with _byte_stream(source, label) as stream, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        image = open_image(stream, label)
        try:
            loaded = _decode(image, stream, label, max_pixels, draft_size, max_side)
        except ImageLoadError:
            raise
        except MemoryError:
            raise ImageLoadError(label, f"too large to decode ({image.width}x{image.height}: out of memory)") from None
        except Exception as error:  # a decoder bug or an unforeseen malformation: this file fails, not the caller
            raise ImageLoadError(label, f"cannot decode image ({one_line(error)})") from error
    loaded.notes.extend(note for note in warning_notes(caught, image.format) if note not in loaded.notes)
    return loaded


def _image_problem(path: Path, max_pixels: int) -> str | None:
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with open(path, "rb") as handle, open_image(handle, path) as image:
            return _size_problem(image, max_pixels)
    except ImageLoadError as error:
        return error.reason
    except OSError as error:
        return f"cannot read file ({one_line(error)})"


def _scan(folder: Path, recursive: bool, max_pixels: int, images: list[Path],
          skipped: list[tuple[Path, str]]) -> None:
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        skipped.append((folder, f"cannot list folder ({one_line(error)})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            skipped.append((entry, "hidden folder" if entry.is_dir() else "hidden file"))
        elif entry.is_dir():
            if not recursive:
                skipped.append((entry, "folder (not searched: not recursive)"))
            elif entry.is_symlink():
                skipped.append((entry, "linked folder (not followed)"))
            else:
                _scan(entry, recursive, max_pixels, images, skipped)
        else:
            problem = _image_problem(entry, max_pixels)
            if problem is None:
                images.append(entry)
            else:
                skipped.append((entry, problem))


def scan_image_folder(folder: str | os.PathLike, recursive: bool = False, *,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files in ``folder`` recognised by content (header only, whatever the suffix: .JPG, .jfif, .jpe,
    .avif, .heic, ...), sorted, and the entries skipped with the reason (sorted): "not an image file (unrecognised
    format)", "empty file (0 bytes)", "hidden file", "decompression bomb refused (...)", subfolders when not
    ``recursive``. A listed file can still fail ``load_rgb`` if its image data is corrupt.

    Raises ``FileNotFoundError`` / ``NotADirectoryError`` when ``folder`` is missing or not a folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    register_heif_opener()
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    _scan(folder, recursive, max_pixels, images, skipped)
    return sorted(images), sorted(skipped)


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
