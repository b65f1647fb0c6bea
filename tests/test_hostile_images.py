"""Hostile image files (issue 12): giant files, FIFOs, header bombs, NaN floats, giant strips.

Each is refused (or converted with a note) before memory is spent, with a message that names
the file only; indexing a folder that holds them finishes and lists them as excluded.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from services.datasets import index
from services.errors import BadImage
from services.images import DISPLAY_MAX_SIDE, decode_bytes_needed, decode_image, display_copy
from tests.datasets_helpers import make_dataset


def png_header_only(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG that declares ``width`` x ``height`` but carries no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _index_with_timeout(folder: Path, seconds: float = 30.0):
    """Index ``folder`` in a thread; fail (instead of hanging the suite) if it does not end."""
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(frame=index.load_index(folder, workers=2)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "indexing hangs"
    return outcome["frame"]


def test_an_8_gib_slide_in_a_class_folder_is_refused_unread(data_root):
    folder = make_dataset(data_root / "datasets" / "big", sources=1, tiles_per_source=1)
    slide = folder / "01_TUMOR" / "slide.tif"
    with open(slide, "wb") as handle:
        handle.truncate(8 << 30)  # sparse: takes no disk
    frame = _index_with_timeout(folder)
    row = frame[frame["relpath"] == "01_TUMOR/slide.tif"].iloc[0]
    assert "DASHBOARD_MAX_IMAGE_FILE_BYTES" in row["problem"] and "8,589.9 MB" in row["problem"]
    assert pd.isna(row["content_hash"]) and len(index.usable(frame)) == 2
    with pytest.raises(BadImage, match="slide.tif: 8,589.9 MB is more than the limit") as error:
        decode_image(slide)
    assert str(data_root) not in str(error.value)


def test_a_fifo_named_like_an_image_never_blocks_indexing(data_root):
    folder = make_dataset(data_root / "datasets" / "fifo", sources=1, tiles_per_source=1)
    os.mkfifo(folder / "02_STROMA" / "stuck.png")
    frame = _index_with_timeout(folder)
    row = frame[frame["relpath"] == "02_STROMA/stuck.png"].iloc[0]
    assert "not a regular file" in row["problem"]
    with pytest.raises(BadImage, match="stuck.png: not a regular file"):
        decode_image(folder / "02_STROMA" / "stuck.png")


def test_headers_declaring_too_many_pixels_are_refused_before_decoding():
    with pytest.raises(BadImage, match="7000x7000 pixels is more than the limit of 40,000,000"):
        decode_image(png_header_only(7000, 7000))
    with pytest.raises(BadImage, match="decompression bomb"):  # Pillow's own guard, far above ours
        decode_image(png_header_only(30000, 30000))


def test_decode_memory_is_estimated_from_the_header(monkeypatch):
    sixteen_bit_grey = png_header_only(2000, 2000, bit_depth=16, colour_type=0)
    needed = decode_bytes_needed("I;16", (2000, 2000))
    assert needed == 2000 * 2000 * (2 + 4 + 3 + 12)
    monkeypatch.setenv("DASHBOARD_MAX_DECODE_BYTES", str(needed - 1))
    # The file has no pixel data: a refusal that names the memory proves nothing was decoded.
    with pytest.raises(BadImage, match=r"would need about 84 MB of memory.*DASHBOARD_MAX_DECODE_BYTES"):
        decode_image(sixteen_bit_grey)


def _float_tiff(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.float32), mode="F").save(buffer, format="TIFF")
    return buffer.getvalue()


def test_float_tiff_with_nan_pixels_is_scaled_with_a_note_not_black():
    values = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    values[:8] = np.nan
    decoded = decode_image(_float_tiff(values))
    assert any("512 NaN or infinite pixels shown as black" in note for note in decoded.notes)
    assert decoded.pixels[8:].max() == 255 and decoded.pixels[-1].mean() > 200
    assert (decoded.pixels[:8] == 0).all()


def test_float_tiff_with_only_nan_pixels_is_refused():
    with pytest.raises(BadImage, match="every pixel is NaN"):
        decode_image(_float_tiff(np.full((16, 16), np.nan)))


@pytest.mark.parametrize("shape", [(2, 1_000_000, 3), (1_000_000, 2, 3)])
def test_display_copy_bounds_giant_strips(shape):
    pixels = np.zeros(shape, dtype=np.uint8)
    copy = display_copy(pixels)
    assert max(copy.shape[:2]) == DISPLAY_MAX_SIDE and min(copy.shape[:2]) == 1 and copy.dtype == np.uint8


def test_display_copy_keeps_small_images_and_makes_floats_displayable():
    pixels = np.full((10, 20, 3), 7, dtype=np.uint8)
    assert display_copy(pixels) is pixels
    floats = np.array([[0.0, 0.5, np.nan, 1.0]], dtype=np.float32)
    assert display_copy(floats).tolist() == [[0, 128, 0, 255]]


def test_a_2_by_1_000_000_png_decodes_and_displays_bounded():
    buffer = io.BytesIO()
    Image.new("RGB", (1_000_000, 2), (200, 10, 10)).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (2, 1_000_000, 3)
    assert display_copy(decoded.pixels).shape == (1, DISPLAY_MAX_SIDE, 3)
