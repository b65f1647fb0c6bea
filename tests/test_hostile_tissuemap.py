"""Hostile images on the Tissue map page (issue 17): bounded preview work, pyramid levels that lie."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dashboard import tissuemap_adapters as ui
from services.errors import BadImage
from services.tissuemap import reader


def shared_tile_tiff(path: Path, width: int, height: int, tile: int = 256) -> Path:
    """A tiled RGB TIFF declaring ``width`` x ``height`` pixels whose tiles all point at one stored
    tile of tissue colour: a few MB on disk, any size declared."""
    data = np.broadcast_to(np.array([200, 80, 150], np.uint8), (tile, tile, 3)).tobytes()
    count = -(-width // tile) * -(-height // tile)
    offsets_at = 8 + len(data)
    counts_at = offsets_at + 4 * count
    bits_at = counts_at + 4 * count
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
               (277, 3, 1, 3), (284, 3, 1, 1), (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, count, offsets_at),
               (325, 4, count, counts_at)]
    with open(path, "wb") as out:
        out.write(b"II*\x00" + struct.pack("<I", bits_at + 6) + data)
        out.write(np.full(count, 8, "<u4").tobytes() + np.full(count, len(data), "<u4").tobytes())
        out.write(struct.pack("<3H", 8, 8, 8) + struct.pack("<H", len(entries)))
        for tag, kind, number, value in entries:
            inline = struct.pack("<HH", value, 0) if kind == 3 and number == 1 else struct.pack("<I", value)
            out.write(struct.pack("<HHI", tag, kind, number) + inline)
        out.write(struct.pack("<I", 0))
    return path


def test_a_small_file_declaring_200000_px_a_side_is_refused_at_once(data_root, tmp_path):
    path = shared_tile_tiff(tmp_path / "huge.tif", 200_000, 200_000)
    assert path.stat().st_size < 6_000_000
    started = time.monotonic()
    with pytest.raises(BadImage, match=r"200,000 x 200,000 pixels .* refused\. Save it as a pyramidal"):
        ui.image_preview(path, None)
    assert time.monotonic() - started < 10


def test_a_preview_that_runs_past_its_time_is_refused_and_the_refusal_remembered(data_root, tmp_path, monkeypatch):
    path = shared_tile_tiff(tmp_path / "slow.tif", 20_000, 20_000)
    monkeypatch.setattr(reader, "PREVIEW_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(BadImage, match="takes longer than 0 s; refused"):
        ui.image_preview(path, None)
    assert time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(BadImage, match="takes longer"):
        ui.image_preview(path, None)  # the refusal is cached, not recomputed on every rerun
    assert time.monotonic() - started < 1


def test_pyramid_levels_whose_aspect_ratio_disagrees_with_the_base_are_skipped(tmp_path):
    path = tmp_path / "lying-pyramid.tif"
    base = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    pages = [(base, (128, 128), "Aperio Image Library v12\n800x600 |AppMag = 40|MPP = 0.25"),
             (base[::8, ::8], None, "Aperio thumbnail"),  # the Aperio SVS layout tifffile reads levels from
             (base[:100:2, ::2], (128, 128), "Aperio level"),  # 400 x 50: it should be 400 x 300
             (base[::4, ::4], (128, 128), "Aperio level")]  # 200 x 150: consistent
    with tifffile.TiffWriter(path) as writer:
        for pixels, tile, description in pages:
            writer.write(np.ascontiguousarray(pixels), tile=tile, description=description, metadata=None)
    with reader.open_image(path, target_mpp=0.5) as source:
        assert source.levels == [(800, 600), (200, 150)] and "1 pyramid level(s) skipped" in source.notes[0]
        assert (source.width, source.height) == (800, 600)  # 0.5 um/px: the lying level is not used
    with reader.open_image(path, target_mpp=1.0) as source:
        assert (source.width, source.height, source.downsample) == (200, 150, 4.0)
        assert (source.read_region(0, 0, 200, 150) == base[::4, ::4]).all()
