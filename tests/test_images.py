"""Every bad-image case through services.images.decode_image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.errors import BadImage
from services.images import decode_image


def _encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _rgb(size=(20, 10)) -> Image.Image:
    pixels = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    return Image.fromarray(pixels)


def test_plain_rgb_tiff_decodes_unchanged():
    image = _rgb()
    decoded = decode_image(_encoded(image, "TIFF"))
    assert decoded.pixels.shape == (10, 20, 3) and decoded.pixels.dtype == np.uint8
    assert np.array_equal(decoded.pixels, np.asarray(image)) and decoded.notes == []
    assert (decoded.original_mode, decoded.original_size) == ("RGB", (20, 10))


@pytest.mark.parametrize("data, fragment", [
    (b"", "not a readable image"),
    (b"this is a text file, not an image", "not a readable image"),
    (b"%PDF-1.4 fake document", "not a readable image"),
])
def test_non_images_are_refused(data, fragment):
    with pytest.raises(BadImage, match=fragment):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "JPEG"])
def test_truncated_images_are_refused(fmt):
    data = _encoded(_rgb((64, 64)), fmt)
    with pytest.raises(BadImage, match="not a readable image"):
        decode_image(data[: len(data) // 2])


def test_corrupt_bytes_inside_a_png_are_refused():
    data = bytearray(_encoded(_rgb((64, 64))))
    data[60:90] = b"\xff" * 30
    with pytest.raises(BadImage):
        decode_image(bytes(data))


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(BadImage, match="not found"):
        decode_image(tmp_path / "nothing.png")


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits():
    ramp = np.linspace(1000, 3000, 30 * 10).reshape(10, 30).astype(np.uint16)
    decoded = decode_image(_encoded(Image.fromarray(ramp), "PNG"))
    assert decoded.pixels.shape == (10, 30, 3)
    assert decoded.pixels.min() == 0 and decoded.pixels.max() == 255
    assert decoded.original_mode.startswith("I") and "scaled to 8 bits" in decoded.notes[0]


def test_palette_image_is_converted_to_rgb():
    palette = _rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    decoded = decode_image(_encoded(palette))
    assert decoded.original_mode == "P" and decoded.pixels.shape == (10, 20, 3)
    assert "converted to RGB" in decoded.notes[0]


def test_rgba_is_flattened_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    decoded = decode_image(_encoded(rgba))
    assert tuple(decoded.pixels[1, 1]) == (255, 255, 255)  # fully transparent -> white
    assert tuple(decoded.pixels[0, 0]) == (0, 0, 255)
    assert "transparency" in decoded.notes[0]


def test_greyscale_becomes_three_equal_channels():
    decoded = decode_image(_encoded(Image.new("L", (5, 5), 77)))
    assert decoded.pixels.shape == (5, 5, 3) and (decoded.pixels == 77).all()
    assert "converted to RGB" in decoded.notes[0]


@pytest.mark.parametrize("size", [(1, 1), (1, 50), (50, 1)])
def test_one_pixel_images_are_refused(size):
    with pytest.raises(BadImage, match="too small"):
        decode_image(_encoded(Image.new("RGB", size)))


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    bomb = _encoded(Image.new("L", (4000, 4000)))  # 16 Mpx compress to a few kB
    assert len(bomb) < 100_000
    with pytest.raises(BadImage, match="decompression bomb"):
        decode_image(bomb, max_pixels=1_000_000)
    monkeypatch.setenv("DASHBOARD_MAX_IMAGE_PIXELS", "2000000")
    with pytest.raises(BadImage, match="2,000,000 pixels"):
        decode_image(bomb)


def test_exif_orientation_is_honoured():
    image = Image.new("RGB", (30, 10), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    decoded = decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (30, 10, 3) and "EXIF" in decoded.notes[0]


def test_large_images_can_be_downscaled_instead_of_refused():
    decoded = decode_image(_encoded(_rgb((400, 200))), max_side=100)
    assert decoded.pixels.shape == (50, 100, 3) and "downscaled" in decoded.notes[-1]
