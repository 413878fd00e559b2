import io

import numpy as np
import pytest
from PIL import Image

from nbhelpers.data.images import ImageLoadError, difference_hash, load_rgb
from tests.conftest import face_like, save


def test_plain_jpeg_loads_as_rgb(make_image):
    loaded = load_rgb(make_image("a.jpg", 1))
    assert loaded.image.mode == "RGB" and loaded.image.size == (40, 40) and loaded.notes == []


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        load_rgb(path)


def test_text_renamed_to_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageLoadError, match="notes.jpg: not an image file"):
        load_rgb(path)


def test_truncated_jpeg(make_image, tmp_path):
    data = make_image("full.jpg", 2, size=120).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg: truncated or corrupt"):
        load_rgb(path)


def test_corrupt_bytes_after_header(make_image, tmp_path):
    data = bytearray(make_image("full.jpg", 3, size=120).read_bytes())
    data[200:] = b"\x00" * (len(data) - 200)
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="corrupt.jpg"):
        load_rgb(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_rgb(tmp_path / "nope.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    path = save(Image.new("1", (20000, 20000)), tmp_path / "bomb.png")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageLoadError, match="bomb.png: decompression bomb refused"):
        load_rgb(path)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK"])
def test_other_modes_convert_to_rgb(tmp_path, mode):
    image = face_like(4).convert(mode)
    path = save(image, tmp_path / f"x_{mode}.{'png' if mode == 'P' else 'jpg'}")
    loaded = load_rgb(path)
    assert loaded.image.mode == "RGB" and loaded.original_mode == mode
    assert loaded.notes == [f"{mode} converted to RGB"]


def test_grayscale_values_are_kept(tmp_path):
    path = save(Image.new("L", (10, 10), 77), tmp_path / "gray.png")
    pixels = np.asarray(load_rgb(path).image)
    assert (pixels == 77).all()


def test_rgba_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    pixels = np.asarray(load_rgb(save(image, tmp_path / "alpha.png")).image)
    assert tuple(pixels[0, 0]) == (255, 0, 0) and tuple(pixels[5, 5]) == (255, 255, 255)


def test_sixteen_bit_png_scales_to_eight_bit(tmp_path):
    values = np.full((8, 8), 65535, dtype=np.uint16)
    values[0, 0] = 257 * 100
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    loaded = load_rgb(path)
    pixels = np.asarray(loaded.image)
    assert pixels[0, 0, 0] == 100 and pixels[1, 1, 0] == 255
    assert "scaled to 8-bit" in loaded.notes[0]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    loaded = load_rgb(path)
    assert loaded.image.size == (10, 30) and loaded.notes == ["EXIF orientation applied"]


def test_bytes_input_and_name_in_error():
    with pytest.raises(ImageLoadError, match="upload.png: empty file"):
        load_rgb(b"", name="upload.png")
    buffer = io.BytesIO()
    face_like(5).save(buffer, format="PNG")
    assert load_rgb(buffer.getvalue()).image.size == (40, 40)


def test_difference_hash_survives_reencoding(tmp_path):
    original = face_like(6, size=100)
    buffer = io.BytesIO()
    original.save(buffer, format="JPEG", quality=60)
    reencoded = Image.open(buffer)
    assert difference_hash(original) == difference_hash(reencoded)
    assert difference_hash(original) != difference_hash(face_like(7, size=100))
