"""What real users send (phones, browsers, scanners): malformed EXIF, unexpected decoder failures, HEIC/AVIF, large
photos, a JPEG missing its end marker, 12-bit data in 16-bit files, folders named by content. Files are generated;
the ../shared/bad-inputs files are checked too when present."""

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, features

from nbhelpers.data.images import MAX_DECLARED_PIXELS, ImageLoadError, load_rgb, scan_image_folder
from tests.conftest import ROOT, face_like, save

BAD_INPUTS = Path(os.environ.get("BAD_INPUTS_PATH", ROOT.parent / "shared" / "bad-inputs"))


def shared_file(name: str) -> Path:
    path = BAD_INPUTS / name
    if not path.exists():
        pytest.skip(f"{path} not found (the shared bad-inputs folder is absent; set BAD_INPUTS_PATH)")
    return path


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


# --- 1. malformed EXIF -------------------------------------------------------------------------------------------

def _entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
    return struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\x00")


def _exif(entries: list[bytes], extra: bytes = b"", count: int | None = None) -> bytes:
    ifd = struct.pack(">H", len(entries) if count is None else count) + b"".join(entries) + struct.pack(">I", 0)
    return b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 8) + ifd + extra


def _orientation(value: int = 6) -> bytes:
    return _entry(0x0112, 3, 1, struct.pack(">H", value))


MALFORMED_EXIF = {  # name: (EXIF bytes, orientation still readable)
    "xresolution_as_text": (_exif([_orientation(), _entry(282, 2, 3, b"72\x00")]), True),
    "rational_offset_outside": (_exif([_orientation(), _entry(282, 5, 1, struct.pack(">I", 99_999))]), True),
    "rational_zero_denominator": (_exif([_orientation(), _entry(282, 5, 1, struct.pack(">I", 38))],
                                        struct.pack(">II", 72, 0)), True),
    "orientation_count_two": (_exif([_entry(0x0112, 3, 2, struct.pack(">HH", 6, 6))]), True),
    "orientation_as_text": (_exif([_entry(0x0112, 2, 2, b"6\x00")]), True),
    "unknown_type": (_exif([_orientation(), _entry(282, 99, 1, b"abcd")]), True),
    "entry_count_past_end": (_exif([_orientation()], count=0xFFFF), True),
    "garbage_ifd": (b"Exif\x00\x00\x13\x37garbage-garbage", False),
    "ifd_offset_past_end": (b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 0xFFFFFF), False),
}
SILENTLY_TOLERATED = {"rational_zero_denominator", "unknown_type", "garbage_ifd"}  # Pillow reads these quietly


@pytest.mark.parametrize("variant", sorted(MALFORMED_EXIF))
def test_malformed_exif_never_fails_the_image(variant):
    exif, readable = MALFORMED_EXIF[variant]
    loaded = load_rgb(jpeg_bytes(Image.new("RGB", (30, 10), (0, 0, 255)), exif=exif), name=f"{variant}.jpg")
    assert loaded.image.size == ((10, 30) if readable else (30, 10))
    assert ("EXIF orientation applied" in loaded.notes) == readable
    noted = any(note.startswith("malformed EXIF ignored: ") for note in loaded.notes)
    assert noted == (variant not in SILENTLY_TOLERATED)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_fallback_orientation_matches_exif_transpose(orientation):
    image = face_like(11, size=48).crop((0, 0, 48, 20))
    good = Image.open(io.BytesIO(jpeg_bytes(image, quality=95, exif=_exif([_orientation(orientation)]))))
    expected = np.asarray(ImageOps.exif_transpose(good))
    bad_exif = _exif([_orientation(orientation), _entry(282, 2, 3, b"72\x00")])
    loaded = load_rgb(jpeg_bytes(image, quality=95, exif=bad_exif))
    assert np.array_equal(np.asarray(loaded.image), expected)
    assert "exif" not in loaded.image.info  # a second exif_transpose downstream cannot rotate it again


def test_shared_phone_photo_with_text_xresolution_loads_upright():
    loaded = load_rgb(shared_file("phone_exif_xresolution_as_text.jpg"))
    assert loaded.image.size == (360, 448)  # stored landscape 448x360 with orientation 6
    assert "EXIF orientation applied" in loaded.notes
    assert loaded.notes[0].startswith("malformed EXIF ignored: TypeError")


# --- 2. any decoder exception names the file ---------------------------------------------------------------------

@pytest.mark.parametrize(("raised", "reason"), [(RuntimeError("decoder bug\nsecond line"),
                                                 "cannot decode image (RuntimeError: decoder bug second line)"),
                                                (MemoryError(), "too large to decode (40x40: out of memory)")])
def test_unexpected_decoder_exception_becomes_image_load_error(make_image, monkeypatch, raised, reason):
    path = make_image("odd.jpg", 1)

    def failing_load(self):
        raise raised

    monkeypatch.setattr(ImageFile.ImageFile, "load", failing_load)
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(path)
    assert caught.value.path == str(path) and caught.value.reason == reason and "\n" not in str(caught.value)


def test_keyboard_interrupt_is_not_swallowed(make_image, monkeypatch):
    path = make_image("odd.jpg", 1)

    def interrupted_load(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageFile.ImageFile, "load", interrupted_load)
    with pytest.raises(KeyboardInterrupt):
        load_rgb(path)


# --- 3. HEIC/HEIF and AVIF ---------------------------------------------------------------------------------------

def test_heic_loads(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = save(Image.new("RGB", (64, 48), (200, 30, 30)), tmp_path / "IMG_0001.HEIC", format="HEIF", quality=90)
    loaded = load_rgb(path)
    assert loaded.image.mode == "RGB" and loaded.image.size == (64, 48)
    assert np.abs(np.asarray(loaded.image, dtype=int)[24, 32] - (200, 30, 30)).max() < 12


def test_heif_opener_is_registered_on_first_load_not_at_import():
    code = ("from PIL import Image; import nbhelpers.data.images as images; before = 'HEIF' in Image.ID; "
            "images.register_heif_opener(); print(before, 'HEIF' in Image.ID)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert output.stdout.split() == ["False", "True"]


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support (needs Pillow >= 11.3)")
def test_avif_loads(tmp_path):
    path = save(Image.new("RGB", (64, 48), (30, 200, 30)), tmp_path / "c_android.avif", quality=90)
    loaded = load_rgb(path)
    assert loaded.image.size == (64, 48)
    assert np.abs(np.asarray(loaded.image, dtype=int)[24, 32] - (30, 200, 30)).max() < 12
    assert load_rgb(shared_file("folder/c_android.avif")).image.size == (448, 448)


# --- 4. large photos ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fifty_megapixel_jpeg() -> bytes:
    return jpeg_bytes(face_like(3, size=64).resize((8160, 6120), Image.Resampling.NEAREST), quality=30)


def test_fifty_megapixel_jpeg_decodes_at_half_scale(fifty_megapixel_jpeg):
    loaded = load_rgb(fifty_megapixel_jpeg, name="phone.jpg")
    assert loaded.image.size == (4080, 3060)
    assert loaded.notes == ["decoded at 1/2 scale (8160x6120 -> 4080x3060)"]


def test_max_side_asks_for_a_reduced_decode(fifty_megapixel_jpeg, tmp_path):
    loaded = load_rgb(fifty_megapixel_jpeg, max_side=1000)
    assert loaded.image.size == (1000, 750)
    assert loaded.notes == ["decoded at 1/8 scale (8160x6120 -> 1020x765)", "reduced to 1000x750 (max_side 1000)"]
    png = load_rgb(save(face_like(4, size=300), tmp_path / "big.png"), max_side=100)
    assert png.image.size == (100, 100) and png.notes == ["reduced to 100x100 (max_side 100)"]


def test_smaller_decode_limit_drafts_further(fifty_megapixel_jpeg):
    assert load_rgb(fifty_megapixel_jpeg, max_pixels=4_000_000).image.size == (2040, 1530)
    with pytest.raises(ImageLoadError, match="over the decode limit of 500000 even at 1/8 scale"):
        load_rgb(fifty_megapixel_jpeg, max_pixels=500_000)


def test_png_over_decode_limit_is_refused_with_sizes(tmp_path):
    path = save(Image.new("1", (8000, 6000)), tmp_path / "large.png")
    with pytest.raises(ImageLoadError, match=r"large\.png: decompression bomb refused \(8000x6000 = 48000000 pixels, "
                                             r"over the decode limit of 40000000; only JPEGs are decoded reduced\)"):
        load_rgb(path)


def test_jpeg_declaring_an_absurd_size_is_refused_from_its_header():
    data = bytearray(jpeg_bytes(face_like(5)))
    start = data.index(b"\xff\xc0")  # baseline frame header: length(2) precision(1) height(2) width(2)
    data[start + 5:start + 9] = struct.pack(">HH", 20_000, 20_000)
    assert 20_000 * 20_000 > MAX_DECLARED_PIXELS
    with pytest.raises(ImageLoadError, match=r"huge\.jpg: decompression bomb refused"):
        load_rgb(bytes(data), name="huge.jpg")


# --- 5. JPEG missing only its end-of-image marker ----------------------------------------------------------------

@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_without_end_marker_decodes_with_warning(progressive):
    data = jpeg_bytes(face_like(6, size=200).resize((400, 300)), quality=90, progressive=progressive)
    assert data.endswith(b"\xff\xd9")
    loaded = load_rgb(data[:-2], name="no_end.jpg")
    assert np.array_equal(np.asarray(loaded.image), np.asarray(Image.open(io.BytesIO(data))))
    assert loaded.notes == ["warning: JPEG end-of-image marker (FFD9) missing; decoded anyway"]


@pytest.mark.parametrize("kept", [0.6, 0.9, 0.99])
def test_jpeg_cut_in_the_image_data_stays_an_error(kept):
    data = jpeg_bytes(face_like(7, size=200).resize((400, 300)), quality=90)
    with pytest.raises(ImageLoadError, match=r"cut\.jpg: truncated or corrupt image data"):
        load_rgb(data[: int(len(data) * kept)], name="cut.jpg")


def test_shared_jpeg_without_end_marker():
    loaded = load_rgb(shared_file("jpeg_without_end_marker.jpg"))
    assert loaded.image.size == (448, 448) and "end-of-image marker" in loaded.notes[0]


# --- 6. deep images scaled by the range their data uses ----------------------------------------------------------

@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_deep_gray_keeps_the_contrast_of_its_eight_bit_copy(tmp_path, bits):
    eight_bit = np.asarray(face_like(8, size=64).convert("L"), dtype=np.float64)
    deep = np.rint(eight_bit * (2**bits - 1) / 255).astype(np.uint16)
    loaded = load_rgb(save(Image.fromarray(deep), tmp_path / f"scan_{bits}.png"))
    pixels = np.asarray(loaded.image)[..., 0].astype(int)
    assert np.abs(pixels - eight_bit).max() <= 1 and abs(pixels.mean() - eight_bit.mean()) < 1
    assert loaded.notes[0] == f"16-bit image using {bits} bits scaled to 8-bit"


def test_deep_colour_png_keeps_the_contrast_of_its_eight_bit_copy(tmp_path):
    cv2 = pytest.importorskip("cv2")
    eight_bit = np.asarray(face_like(9, size=64), dtype=np.float64)
    deep = np.rint(eight_bit * 4095 / 255).astype(np.uint16)
    path = tmp_path / "scan_rgb_12bit.png"
    assert cv2.imwrite(str(path), deep[..., ::-1].copy())
    loaded = load_rgb(path)
    assert np.abs(np.asarray(loaded.image, dtype=int) - eight_bit).max() <= 1
    assert loaded.notes == ["16-bit colour image using 12 bits scaled to 8-bit"]


def test_shared_twelve_bit_gray_has_normal_contrast():
    loaded = load_rgb(shared_file("gray_16bit_12bit_range.png"))
    pixels = np.asarray(loaded.image, dtype=np.float64)
    assert loaded.notes[0] == "16-bit image using 12 bits scaled to 8-bit"
    assert pixels.max() > 200 and 60 < pixels.mean() < 200  # decoded almost black before (mean 22)


# --- 7. folders scanned by content, not suffix ------------------------------------------------------------------

def test_scan_image_folder_reads_content_not_suffix(tmp_path):
    photo = face_like(10, size=64)
    for name in ["a_camera.JPG", "b_chrome.jfif", "e_old.jpe", "f_renamed.txt"]:
        save(photo, tmp_path / name, format="JPEG")
    save(photo, tmp_path / "c_android.avif", format="AVIF" if features.check("avif") else "PNG")
    (tmp_path / "notes.jpg").write_text("not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    save(photo, tmp_path / "nested" / "g_deep.jpeg")
    images, skipped = scan_image_folder(tmp_path)
    assert [path.name for path in images] == ["a_camera.JPG", "b_chrome.jfif", "c_android.avif", "e_old.jpe",
                                              "f_renamed.txt"]
    assert [(path.name, reason) for path, reason in skipped] == [
        (".DS_Store", "hidden file"), ("empty.png", "empty file (0 bytes)"),
        ("nested", "folder (not searched: not recursive)"), ("notes.jpg", "not an image file (unrecognised format)")]
    assert all(load_rgb(path).image.size == (64, 64) for path in images)
    assert tmp_path / "nested" / "g_deep.jpeg" in scan_image_folder(tmp_path, recursive=True)[0]
    with pytest.raises(NotADirectoryError):
        scan_image_folder(tmp_path / "a_camera.JPG")


def test_shared_folder_gives_all_four_files():
    folder = shared_file("folder")
    images, skipped = scan_image_folder(folder)
    assert [path.name for path in images] == ["a_camera.JPG", "b_saved_by_chrome.jfif", "c_android.avif",
                                              "e_old_camera.jpe"]
    assert skipped == []
