"""The map's detail view: only the region is read, at full (or 1:z) resolution, with the map overlaid there."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from services.tissuemap import detail, outputs, reader
from tests.test_tissuemap_core import pattern, random_map

CHUNK = 128


@pytest.fixture
def tiled(tmp_path):
    pixels = pattern(1500, 1700, seed=3)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, pixels, tile=(CHUNK, CHUNK), compression="zlib")
    return path, pixels


def spy_chunks(source: reader.TiffSource) -> list[int]:
    """Record every chunk index the source is asked to decode."""
    asked, original = [], source._chunk
    source._chunk = lambda index: asked.append(index) or original(index)
    return asked


def test_full_resolution_region_is_the_image_pixels_and_reads_only_its_chunks(tiled):
    path, pixels = tiled
    with reader.open_image(path) as source:
        asked = spy_chunks(source)
        box = detail.detail_box(source.width, source.height, 900, 700, zoom=1, side=300)
        assert (box.x, box.y, box.width, box.height) == (750, 550, 300, 300)
        region = detail.read_detail(source, box)
        assert (region == pixels[550:850, 750:1050]).all()
        columns = -(-1700 // CHUNK)
        needed = {row * columns + col for row in range(550 // CHUNK, 849 // CHUNK + 1)
                  for col in range(750 // CHUNK, 1049 // CHUNK + 1)}
        assert set(asked) == needed  # 16 of the 14 x 12 = 168 chunks
        assert len(needed) < columns * -(-1500 // CHUNK) / 8


def test_zoomed_out_region_is_block_means_of_the_box(tiled):
    path, pixels = tiled
    with reader.open_image(path) as source:
        box = detail.detail_box(source.width, source.height, 800, 600, zoom=2, side=200)
        assert (box.width, box.height, box.zoom) == (400, 400, 2)
        region = detail.read_detail(source, box).astype(int)
    crop = pixels[box.y:box.y + 400, box.x:box.x + 400].astype(float)
    expected = crop.reshape(200, 2, 200, 2, 3).mean(axis=(1, 3))
    assert region.shape == (200, 200, 3)
    assert np.abs(region - expected).max() <= 1


def test_box_stays_inside_the_image_and_pans_by_half_a_view():
    box = detail.detail_box(1000, 800, 10, 790, zoom=1, side=300)
    assert (box.x, box.y, box.width, box.height) == (0, 500, 300, 300)
    right = detail.panned(box, 1000, 800, 1, 0)
    assert (right.x, right.y) == (150, 500)
    assert detail.panned(right, 1000, 800, 0, 1) == right  # already at the bottom edge
    small = detail.detail_box(200, 150, 100, 75, zoom=4, side=300)
    assert (small.x, small.y, small.width, small.height) == (0, 0, 200, 150)
    assert detail.detail_box(1000, 800, 500, 400, zoom=3).zoom == 1  # not an offered zoom


def test_region_overlay_matches_the_whole_image_overlay_there():
    tissue_map = random_map()
    grid = tissue_map.grid
    image = pattern(grid.height, grid.width, seed=5)
    whole = outputs.overlay(image, 1, tissue_map, opacity=0.6, visible=["TUMOR", "ADIPOSE"])
    x, y, w, h = 47, 61, 130, 90
    region = outputs.overlay(image[y:y + h, x:x + w], 1, tissue_map, opacity=0.6, visible=["TUMOR", "ADIPOSE"],
                             origin=(x, y))
    assert (region == whole[y:y + h, x:x + w]).all()
    values = tissue_map.confidence
    heat = outputs.heat_overlay(image[y:y + h, x:x + w], 1, tissue_map, values, origin=(x, y))
    assert (heat == outputs.heat_overlay(image, 1, tissue_map, values)[y:y + h, x:x + w]).all()


def test_scale_bar_has_a_round_length_in_microns():
    assert [detail.nice_length(v) for v in (0.7, 37, 99, 250)] == [0.5, 20, 50, 200]
    pixels = np.full((200, 640, 3), 128, np.uint8)
    drawn, length_um = detail.with_scale_bar(pixels, 0.495)
    assert length_um == 50  # 640 / 5 px x 0.495 um = 63 um -> 50 um = 101 px
    bar = (drawn == 0).all(axis=2)
    assert bar.sum(axis=1).max() == round(50 / 0.495)
    assert (pixels == 128).all()  # the input is not drawn on
