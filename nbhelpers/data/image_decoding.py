"""Decoding steps behind ``load_rgb``: opening (HEIC/HEIF through pillow-heif), EXIF orientation that survives
malformed EXIF, recovery of a JPEG missing only its end-of-image marker, and deep (10-16 bit) images scaled to 8 bit
by the range their data actually uses.

Sources: the EXIF 2.32 specification (CIPA DC-008-2019) for the Orientation tag (0x0112) and its eight values;
ITU-T T.81 (JPEG) for the end-of-image marker FFD9 and the entropy-coded segment it closes; libheif through
pillow-heif (https://github.com/bigcat88/pillow_heif) for HEIC/HEIF. Every failure is an ``ImageLoadError``.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "ORIENTATION_TAG", "END_OF_IMAGE", "register_heif_opener", "one_line", "open_image",
           "is_jpeg", "warning_notes", "decode_without_end_marker", "apply_orientation", "rescale_deep_colour", "to_rgb"]

ORIENTATION_TAG = 0x0112
END_OF_IMAGE = b"\xff\xd9"
_FILLER = bytes(range(255)) * 64  # 16 KB of entropy-coded-looking bytes, no 0xFF (so no marker)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}
_heif_state: dict[str, bool] = {}


class ImageLoadError(ValueError):
    """An image could not be read; ``path`` names the file and ``reason`` (one line) says why."""

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = str(path) if path is not None else "<bytes>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def register_heif_opener() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with Pillow, once (on first use, not at import); False if absent."""
    if "registered" not in _heif_state:
        try:
            import pillow_heif
        except ImportError:
            _heif_state["registered"] = False
        else:
            pillow_heif.register_heif_opener()
            _heif_state["registered"] = True
    return _heif_state["registered"]


def one_line(error: BaseException, limit: int = 200) -> str:
    """``error`` as one line ("Type: message"), at most ``limit`` characters."""
    message = " ".join(str(error).split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_image(stream: IO[bytes], label: str | None) -> Image.Image:
    """Read the header of ``stream`` (nothing decoded yet). Pillow's own bomb warning is left to the caller's
    limits; its hard refusal (over twice ``Image.MAX_IMAGE_PIXELS``) becomes an ``ImageLoadError``."""
    register_heif_opener()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not an image file (unrecognised format)") from None
    except Image.DecompressionBombError as error:
        raise ImageLoadError(label, f"decompression bomb refused ({one_line(error)})") from None
    except MemoryError:
        raise ImageLoadError(label, "too large to decode (out of memory reading the header)") from None
    except Exception as error:  # a plugin failing on a malformed header
        raise ImageLoadError(label, f"cannot open image ({one_line(error)})") from error


def is_jpeg(image: Image.Image) -> bool:
    """True for JPEG and its multi-picture variant MPO (most phone JPEGs), whose decoder can draft."""
    return image.format in {"JPEG", "MPO"}


def warning_notes(caught: list[warnings.WarningMessage], image_format: str | None) -> list[str]:
    """Notes for the ``UserWarning``s Pillow raised while decoding one file (each once); other warnings are re-emitted.
    Pillow's TIFF reader warning about a non-TIFF file is about its EXIF block: "malformed EXIF ignored: ..."."""
    notes: list[str] = []
    for item in caught:
        if not issubclass(item.category, UserWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
            continue
        is_exif = os.path.basename(item.filename) == "TiffImagePlugin.py" and image_format != "TIFF"
        note = f"{'malformed EXIF ignored' if is_exif else 'warning'}: {' '.join(str(item.message).split())}"
        if note not in notes:
            notes.append(note)
    return notes


def _decode_jpeg(data: bytes, scale: int) -> Image.Image | None:
    try:
        image = Image.open(io.BytesIO(data))
        if scale > 1:
            image.draft("RGB", (max(1, image.width // scale), max(1, image.height // scale)))
        image.load()
        return image
    except Exception:  # any failure means "not recoverable this way"
        return None


def decode_without_end_marker(data: bytes, scale: int = 1) -> Image.Image | None:
    """Decode ``data``, a JPEG whose entropy-coded data is complete but whose end-of-image marker is missing.

    Returns the decoded image (at 1/``scale``) when the marker was the only missing part, else None. The test: with
    FFD9 appended the decoder pads a short scan with grey, while with 16 KB of filler before FFD9 it decodes the filler
    as image data; a complete scan skips the filler, so both decodes agree only when no image data is missing.
    """
    if not data.startswith(b"\xff\xd8") or data.endswith(END_OF_IMAGE):
        return None
    completed = _decode_jpeg(data + END_OF_IMAGE, scale)
    padded = _decode_jpeg(data + _FILLER + END_OF_IMAGE, scale)
    if completed is None or padded is None or completed.size != padded.size:
        return None
    return completed if np.array_equal(np.asarray(completed), np.asarray(padded)) else None


def _orientation_value(raw: object) -> int | None:
    if isinstance(raw, (tuple, list)) and raw:
        raw = raw[0]
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace").strip("\x00 ")
    try:
        value = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return value if 1 <= value <= 8 else None


def _oriented(image: Image.Image, notes: list[str]) -> Image.Image:
    try:
        raw = image.getexif().get(ORIENTATION_TAG)
    except Exception as error:  # an EXIF block Pillow cannot parse at all
        notes.append(f"malformed EXIF ignored: {one_line(error)}")
        return image
    value = _orientation_value(raw)
    if raw is None or value == 1:
        return image
    if value is None:
        notes.append(f"malformed EXIF ignored: orientation value {raw!r}")
        return image
    if isinstance(raw, int):
        try:
            oriented = ImageOps.exif_transpose(image)
            notes.append("EXIF orientation applied")
            return oriented
        except Exception as error:  # exif_transpose rewrites the EXIF; a malformed tag elsewhere can break that
            notes.append(f"malformed EXIF ignored: {one_line(error)}")
    else:
        notes.append(f"malformed EXIF ignored: orientation stored as {type(raw).__name__} {raw!r}")
    oriented = image.transpose(_TRANSPOSES[value])
    oriented.info.pop("exif", None)  # its orientation is applied: a later exif_transpose must not apply it again
    notes.append("EXIF orientation applied")
    return oriented


def apply_orientation(image: Image.Image, notes: list[str]) -> Image.Image:
    """Turn ``image`` upright by its EXIF Orientation tag (values 2-8), with ``ImageOps.exif_transpose`` when the EXIF
    is well-formed, else by reading the tag and ``Image.transpose``. Malformed EXIF never fails the image: each problem
    (an exception or a warning from Pillow's EXIF reader) adds a note "malformed EXIF ignored: ...", and the
    orientation is applied if it is still readable."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        oriented = _oriented(image, notes)
    notes.extend(note for note in warning_notes(caught, None) if note not in notes)
    return oriented


def _bits_used(maximum: float) -> int:
    for bits in (8, 10, 12, 14, 16):
        if maximum <= 2**bits - 1:
            return bits
    return int(maximum).bit_length()


def _scaled_to_eight_bit(values: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(np.rint(values.astype(np.float64) * (255.0 / (2**bits - 1))), 0, 255).astype(np.uint8)


def rescale_deep_colour(image: Image.Image, stream: IO[bytes], notes: list[str]) -> Image.Image:
    """Redo a 16-bit-per-channel colour PNG/TIFF whose data uses at most 14 bits (Pillow keeps only the high byte of
    each sample, so such an image comes out nearly black) from its full samples in ``stream``, scaled by the bits
    used. Other images are returned as they are."""
    if image.format not in {"PNG", "TIFF"} or image.mode not in {"RGB", "RGBA"}:
        return image
    if max(high for _, high in image.getextrema()[:3]) >= 64:  # 16-bit data over 14 bits, or an 8-bit image
        return image
    import cv2  # opencv decodes 16-bit colour samples, which Pillow does not expose

    stream.seek(0)
    samples = cv2.imdecode(np.frombuffer(stream.read(), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if samples is None or samples.dtype != np.uint16 or samples.ndim != 3 or samples.shape[2] not in (3, 4):
        return image
    bits = _bits_used(samples[..., :3].max(initial=0))
    colour = _scaled_to_eight_bit(samples[..., 2::-1], bits)
    if samples.shape[2] == 4:
        colour = np.dstack([colour, _scaled_to_eight_bit(samples[..., 3], 16)])
    notes.append(f"16-bit colour image using {bits} bits scaled to 8-bit")
    rescaled = Image.fromarray(colour, mode="RGBA" if samples.shape[2] == 4 else "RGB")
    rescaled.info.update(image.info)
    return rescaled


def _deep_to_gray(image: Image.Image, notes: list[str]) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    maximum = float(np.nanmax(values, initial=0))
    if image.mode == "F" and maximum <= 1.0:
        notes.append("32-bit float image in 0-1 scaled to 8-bit")
        eight_bit = np.clip(np.rint(np.nan_to_num(values) * 255.0), 0, 255).astype(np.uint8)
    else:
        depth = 16 if image.mode in _SIXTEEN_BIT_MODES else 32
        bits = _bits_used(maximum)
        notes.append(f"{depth}-bit image using {bits} bits {'kept as' if bits == 8 else 'scaled to'} 8-bit")
        eight_bit = _scaled_to_eight_bit(np.nan_to_num(values), bits)
    gray = Image.fromarray(eight_bit, mode="L")
    gray.info.update(image.info)
    return gray


def to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """8-bit RGB from any mode: 16/32-bit and float gray scaled by the bits their data uses (a 12-bit scan in a 16-bit
    file keeps its contrast), alpha composited on white, palette, CMYK and the rest converted; each step noted."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in {"I", "F"}:
        image = _deep_to_gray(image, notes)
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        notes.append(f"{mode} alpha composited on white")
        return background
    if mode != "RGB":
        notes.append(f"{mode} converted to RGB")
        image = image.convert("RGB")
    return image
