"""Tissue maps without TensorFlow: region reading, tissue detection, grid, areas, GeoJSON, outputs."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from services.errors import BadImage
from services.jobs import kinds
from services.tissuemap import geojson, outputs, reader, report, tissue
from services.tissuemap.grid import Grid, MapAccumulator, cell_coverage, tiles_in_tissue
from services.tissuemap.maps import TissueMap, load_map

CLASSES = ["TUMOR", "STROMA", "ADIPOSE"]


def pattern(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- region reading ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["tiled-zlib", "striped-lzw", "bigtiff-jpeg", "png"])
def test_regions_equal_the_pixels(tmp_path, layout):
    pixels = pattern(700, 530)
    path = tmp_path / ("image.png" if layout == "png" else "image.tif")
    if layout == "tiled-zlib":
        tifffile.imwrite(path, pixels, tile=(128, 128), compression="zlib")
    elif layout == "striped-lzw":
        Image.fromarray(pixels).save(path, compression="tiff_lzw")
    elif layout == "bigtiff-jpeg":
        pixels = np.repeat(np.repeat(pattern(70, 53), 10, axis=0), 10, axis=1)  # smooth enough for JPEG
        tifffile.imwrite(path, pixels, tile=(256, 256), compression="jpeg", bigtiff=True)
    else:
        Image.fromarray(pixels).save(path)
    with reader.open_image(path) as source:
        assert (source.width, source.height) == (530, 700)
        region = source.read_region(100, 250, 300, 400).astype(int)
        expected = pixels[250:650, 100:400].astype(int)
        tolerance = 12 if layout == "bigtiff-jpeg" else 0
        assert np.abs(region - expected).mean() <= tolerance
        outside = source.read_region(500, 680, 60, 40)
        assert (outside[20:] == 255).all() and (outside[:, 30:] == 255).all()
        assert np.abs(outside[:20, :30].astype(int) - pixels[680:, 500:].astype(int)).mean() <= tolerance


def test_microns_per_pixel_from_tiff_metadata_or_refused(tmp_path):
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, pattern(64, 64), resolution=(1e4 / 0.495, 1e4 / 0.495), resolutionunit="CENTIMETER")
    with reader.open_image(path) as source:
        assert source.mpp == pytest.approx(0.495, rel=1e-3)
    aperio = tmp_path / "aperio.tif"
    tifffile.imwrite(aperio, pattern(64, 64), description="Aperio Image Library |AppMag = 20|MPP = 0.2520")
    with reader.open_image(aperio) as source:
        assert source.mpp == pytest.approx(0.252)
    inch = tmp_path / "dpi.tif"
    tifffile.imwrite(inch, pattern(64, 64), resolution=(72, 72), resolutionunit="INCH")  # a screen dpi: no mpp
    with reader.open_image(inch) as source:
        assert source.mpp is None
    for absurd in (0, -1, 500, "abc"):
        with pytest.raises(BadImage, match="not plausible"):
            reader.check_mpp(absurd)


def write_pyramid(path, base: np.ndarray, levels: int) -> None:
    """A tiled TIFF at 0.25 um/px with ``levels`` halvings as SubIFDs."""
    with tifffile.TiffWriter(path) as writer:
        writer.write(base, tile=(128, 128), subifds=levels, resolution=(1e4 / 0.25, 1e4 / 0.25),
                     resolutionunit="CENTIMETER")
        for level in range(1, levels + 1):
            writer.write(base[::2 ** level, ::2 ** level].copy(), tile=(128, 128), subfiletype=1)


def test_pyramid_level_matching_the_model_resolution(tmp_path):
    path = tmp_path / "pyramid.tif"
    base = pattern(512, 512)
    write_pyramid(path, base, 2)
    with reader.open_image(path, target_mpp=0.5) as source:
        assert (source.width, source.mpp, source.downsample) == (256, pytest.approx(0.5), 2.0)
        assert (source.read_region(0, 0, 256, 256) == base[::2, ::2]).all()
    with reader.open_image(path) as source:
        assert source.width == 512


def test_bad_images_get_clear_messages(tmp_path):
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, pattern(300, 300), tile=(128, 128), compression="zlib")
    data = good.read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "garbage.tif").write_bytes(b"II*\x00" + b"\x07" * 200)
    (tmp_path / "empty.png").write_bytes(b"")
    for name, message in (("truncated.tif", "truncated"), ("garbage.tif", "not a readable TIFF"),
                          ("empty.png", "empty"), ("missing.tif", "not found")):
        with pytest.raises(BadImage, match=message) as caught:
            reader.open_image(tmp_path / name)
        assert str(tmp_path) not in str(caught.value)  # no server paths in what a user sees


def test_large_untiled_images_are_refused_but_tiled_ones_read(tmp_path):
    pixels = pattern(400, 400)
    one_strip = tmp_path / "one_strip.tif"
    tifffile.imwrite(one_strip, pixels, rowsperstrip=400)
    with pytest.raises(BadImage, match="tiled TIFF"):
        reader.open_image(one_strip, max_pixels=100_000)
    png = tmp_path / "big.png"
    Image.fromarray(pixels).save(png)
    with pytest.raises(BadImage, match="region by region"):
        reader.open_image(png, max_pixels=100_000)
    tiled = tmp_path / "tiled.tif"
    tifffile.imwrite(tiled, pixels, tile=(64, 64))
    with reader.open_image(tiled, max_pixels=100_000) as source:
        assert (source.read_region(10, 20, 30, 40) == pixels[20:60, 10:40]).all()


def test_thumbnail_is_block_means(tmp_path):
    pixels = pattern(300, 200)
    path = tmp_path / "thumb.tif"
    tifffile.imwrite(path, pixels, tile=(64, 64))
    with reader.open_image(path) as source:
        thumbnail, factor = source.thumbnail(max_side=100)
    assert factor == 3 and thumbnail.shape == (100, 67, 3)
    assert abs(int(thumbnail[5, 7, 1]) - pixels[15:18, 21:24, 1].mean()) <= 0.5


# --- tissue detection and grid -----------------------------------------------------------------

def slide_with_margins(tile: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Tissue (pink, textured) in the middle 4 x 6 tiles of 8 x 10, white glass and a black scanner edge."""
    rng = np.random.default_rng(1)
    image = np.full((8 * tile, 10 * tile, 3), 245, np.uint8)
    image[:, -tile // 2:] = 10  # scanner margin: dark, not tissue
    truth = np.zeros((8, 10), bool)
    truth[2:6, 2:8] = True
    pink = np.array([200, 110, 170]) + rng.normal(0, 12, (4 * tile, 6 * tile, 3))
    image[2 * tile:6 * tile, 2 * tile:8 * tile] = np.clip(pink, 0, 255)
    return image, truth


def test_tissue_detection_skips_blank_margins():
    image, truth = slide_with_margins()
    threshold = tissue.suggested_threshold(image)
    mask = tissue.tissue_mask(image, threshold)
    grid = Grid(image.shape[1], image.shape[0], 40)
    coverage = cell_coverage(grid, mask, 1)
    tiles = tiles_in_tissue(grid, coverage, 0.1)
    found = np.zeros_like(truth)
    found[tiles[:, 0], tiles[:, 1]] = True
    assert (found == truth).all()
    assert tissue.mask_preview(image, mask).shape == image.shape
    assert tiles_in_tissue(grid, cell_coverage(grid, tissue.tissue_mask(image, 255), 1), 0.1).size == 0


def test_grid_with_overlap_averages_predictions():
    grid = Grid(100, 60, 20, overlap=2)
    assert (grid.tile_rows, grid.tile_cols, grid.map_shape, grid.cell) == (5, 9, (6, 10), 10)
    accumulator = MapAccumulator(grid, 2)
    accumulator.add(np.array([[0, 0], [0, 1]]), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    probabilities = accumulator.probabilities()
    assert probabilities[0, 0].tolist() == [1.0, 0.0]
    assert probabilities[0, 1].tolist() == [0.5, 0.5]  # covered by both tiles
    assert probabilities[0, 2].tolist() == [0.0, 1.0]
    assert np.isnan(probabilities[3, 3]).all()
    with pytest.raises(BadImage, match="smaller than one model tile"):
        Grid(100, 60, 80)


# --- maps, areas and outputs -------------------------------------------------------------------

def random_map(seed: int = 0, shape=(9, 12), overlap: int = 1) -> TissueMap:
    rng = np.random.default_rng(seed)
    grid = Grid(shape[1] * 30, shape[0] * 30, 30, overlap)
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), size=grid.map_shape).astype(np.float32)
    probabilities[rng.random(grid.map_shape) < 0.2] = np.nan  # background cells
    coverage = np.where(np.isnan(probabilities[..., 0]), 0.0, rng.uniform(0.3, 1.0, grid.map_shape))
    tiles = np.argwhere(~np.isnan(probabilities[..., 0])).astype(np.int32)
    return TissueMap(probabilities, coverage, grid, CLASSES, 0.5, {"synthetic": True, "image": "x"}, tiles,
                     probabilities[tiles[:, 0], tiles[:, 1]])


def test_area_fractions_sum_to_one_over_tissue():
    tissue_map = random_map()
    areas = tissue_map.areas()
    assert sum(row["fraction"] for row in areas) == pytest.approx(1.0)
    total_px = float(tissue_map.predicted.sum() * 30 * 30)  # a class's area is its mapped cells' area
    assert sum(row["area_px"] for row in areas) == pytest.approx(total_px)
    assert areas[0]["area_mm2"] == pytest.approx(areas[0]["area_px"] * 0.25 / 1e6)
    ratio = tissue_map.tumour_stroma()
    tumour, stroma = areas[0]["cells"], areas[1]["cells"]
    assert ratio["as_mapped"] == pytest.approx(stroma / (tumour + stroma))
    # no held-out confusion matrix in this map's metadata: no interval, no verdict
    assert ratio["corrected"] is None and ratio["category"] == "uncertain"


def test_background_is_never_a_share_of_tissue():
    rng = np.random.default_rng(0)
    grid = Grid(120, 90, 30)
    labels = rng.integers(0, 3, grid.map_shape)
    probabilities = np.eye(3, dtype=np.float32)[labels]
    tiles = np.argwhere(labels >= 0).astype(np.int32)
    tissue_map = TissueMap(probabilities, np.ones(grid.map_shape), grid, ["TUMOR", "STROMA", "EMPTY"], 0.5,
                           {"image": "x"}, tiles, probabilities[tiles[:, 0], tiles[:, 1]])
    areas = {row["class"]: row for row in tissue_map.areas()}
    assert areas["EMPTY"]["fraction"] is None and areas["EMPTY"]["cells"] == int((labels == 2).sum())
    assert areas["TUMOR"]["fraction"] + areas["STROMA"]["fraction"] == pytest.approx(1.0)
    assert np.isnan(outputs.areas_frame(tissue_map).set_index("class").loc["EMPTY", "percent"])


def test_report_areas_equal_geojson_polygon_areas():
    tissue_map = random_map(seed=4)
    mm2_per_px = tissue_map.mpp ** 2 / 1e6
    polygons: dict[str, float] = {}
    for feature in json.loads(outputs.geojson_bytes(tissue_map))["features"]:
        name = feature["properties"]["classification"]["name"]
        area = sum(geojson.ring_area([tuple(p) for p in ring]) for ring in feature["geometry"]["coordinates"])
        polygons[name] = polygons.get(name, 0.0) + area * mm2_per_px
    labels = tifffile.imread(io.BytesIO(outputs.label_tiff(tissue_map)))
    for row in tissue_map.areas():
        assert row["area_mm2"] == pytest.approx(polygons.get(row["class"], 0.0), rel=0.01)
        cells = int((labels == CLASSES.index(row["class"]) + 1).sum())
        assert row["area_mm2"] == pytest.approx(cells * (30 * tissue_map.mpp) ** 2 / 1e6, rel=0.01)
        assert f"<td>{row['area_mm2']:.3f}</td>" in report.render(tissue_map, np.zeros((9, 12, 3), np.uint8),
                                                                 np.zeros((9, 12, 3), np.uint8), {})


def _scipy_tissue_mask(thumbnail, threshold):
    """The mask as scipy.ndimage made it before the OpenCV version (the definition it must keep)."""
    from scipy import ndimage

    score = (thumbnail.max(axis=2) - thumbnail.min(axis=2)).astype(np.uint8)
    stained = score > threshold
    closed = ndimage.binary_closing(stained, structure=np.ones((3, 3), bool), border_value=0) | stained
    holes = ndimage.binary_fill_holes(closed) & ~closed
    if not holes.any():
        return closed
    labelled, count = ndimage.label(holes)
    pale = np.asarray(ndimage.mean(score, labelled, index=np.arange(1, count + 1))) <= tissue.PALE_HOLE
    return closed | np.concatenate([[False], pale])[labelled]


def test_the_opencv_tissue_mask_equals_the_scipy_definition(shared_fixtures):
    rng = np.random.default_rng(0)
    images = []
    for i in range(120):
        height, width = rng.integers(1, 60, 2)
        pixels = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        images.append((pixels // 64 * 20 + 200).clip(0, 255).astype(np.uint8) if i % 3 == 0 else pixels)
    images += [np.asarray(Image.open(p).convert("RGB"))
               for p in sorted((shared_fixtures / "histology" / "kather2016").rglob("*.tif"))[:16]]
    for pixels in images:
        for threshold in (8, 12, 16, 40):
            mask = tissue.tissue_mask(pixels, threshold)
            assert mask.dtype == bool and np.array_equal(mask, _scipy_tissue_mask(pixels, threshold))


def test_fat_lumens_inside_tissue_are_tissue_but_glass_is_not():
    thumbnail = np.full((60, 60, 3), 245, np.uint8)  # glass
    thumbnail[10:50, 10:50] = (230, 150, 200)  # tissue ...
    thumbnail[20:40, 20:40] = 245  # ... around a fat lumen
    mask = tissue.tissue_mask(thumbnail, 12)
    assert mask[30, 30] and mask[15, 15] and not mask[5, 5] and not mask[55, 30]


def _inside(point, ring) -> bool:
    """Even-odd rule: is ``point`` inside the closed ``ring``?"""
    x, y = point
    inside = False
    for (x0, y0), (x1, y1) in zip(ring[:-1], ring[1:]):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def test_geojson_polygons_are_valid_and_cover_the_labelled_cells():
    tissue_map = random_map(seed=3)
    collection = json.loads(outputs.geojson_bytes(tissue_map))
    assert collection["type"] == "FeatureCollection"
    labels, scale = tissue_map.labels, tissue_map.grid.cell
    covered = np.full(labels.shape, -1)
    for feature in collection["features"]:
        assert feature["geometry"]["type"] == "Polygon"
        name = feature["properties"]["classification"]["name"]
        rings = feature["geometry"]["coordinates"]
        for index, ring in enumerate(rings):
            assert len(ring) >= 5 and ring[0] == ring[-1]  # closed, at least a square
            area = geojson.ring_area([tuple(p) for p in ring])
            assert (area > 0) if index == 0 else (area < 0)  # exterior first, then holes
        for r, c in np.argwhere(labels == CLASSES.index(name)):
            centre = ((c + 0.5) * scale, (r + 0.5) * scale)
            if sum(_inside(centre, ring) for ring in rings) % 2:
                assert covered[r, c] == -1
                covered[r, c] = CLASSES.index(name)
    assert (covered == labels).all()  # every labelled cell in exactly one region of its class


def test_label_tiff_csv_and_overlay():
    tissue_map = random_map(seed=5)
    labels = tifffile.imread(io.BytesIO(outputs.label_tiff(tissue_map)))
    assert (labels.astype(int) - 1 == tissue_map.labels).all()
    frame = outputs.tile_frame(tissue_map)
    assert len(frame) == len(tissue_map.tiles)
    assert {"x", "y", "class", "p_TUMOR", "p_STROMA", "p_ADIPOSE"} <= set(frame.columns)
    assert (frame[["p_TUMOR", "p_STROMA", "p_ADIPOSE"]].sum(axis=1).round(3) == 1).all()
    thumbnail = np.full((270, 360, 3), 255, np.uint8)
    image = outputs.overlay(thumbnail, 1, tissue_map, opacity=1.0)
    r, c = np.argwhere(tissue_map.labels == 0)[0]
    assert tuple(image[r * 30 + 5, c * 30 + 5]) == outputs.class_colours(CLASSES)["TUMOR"]
    hidden = outputs.overlay(thumbnail, 1, tissue_map, opacity=1.0, visible=["STROMA"])
    assert (hidden[r * 30 + 5, c * 30 + 5] == 255).all()
    heat = outputs.heat_overlay(thumbnail, 1, tissue_map, tissue_map.confidence, opacity=1.0)
    sure, unsure = np.nanargmax(tissue_map.confidence), np.nanargmin(tissue_map.confidence)
    (r1, c1), (r2, c2) = np.unravel_index(sure, tissue_map.labels.shape), np.unravel_index(unsure, tissue_map.labels.shape)
    assert heat[r1 * 30 + 5, c1 * 30 + 5, 0] > heat[r2 * 30 + 5, c2 * 30 + 5, 0]  # the ramp ends in red
    background = np.argwhere(tissue_map.labels < 0)[0]
    assert (heat[background[0] * 30 + 5, background[1] * 30 + 5] == 255).all()
    assert np.nanmax(tissue_map.entropy) <= 1.0 and np.nanmin(tissue_map.entropy) >= 0.0


def test_map_round_trip_and_report_escapes_user_text(tmp_path):
    tissue_map = random_map(seed=7)
    tissue_map.meta["image"] = "<script>alert(1)</script>.tif"
    tissue_map.save(tmp_path)
    loaded = load_map(tmp_path)
    assert np.allclose(np.nan_to_num(loaded.probabilities), np.nan_to_num(tissue_map.probabilities))
    card = {"name": "<img src=x onerror=alert(2)>", "dataset": "demo", "val_recall": {"<b>": 0.5}}
    thumbnail = np.full((270, 360, 3), 200, np.uint8)
    html = report.render(loaded, thumbnail, thumbnail, card)
    assert "<script>alert" not in html and "<img src=x" not in html and "&lt;script&gt;" in html
    assert "not a diagnosis" in html and "SYNTHETIC" in html and "Stain and scanner" in html
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html


# --- Kather 2016 larger images --------------------------------------------------------------------

def test_kather_larger_images_download_verify_and_extract(data_root, tmp_path):
    import hashlib
    import zipfile

    from services.jobs.context import run_inline
    from services.tissuemap import kather_large
    from tests.conftest import serve_folder

    served = tmp_path / "served"
    served.mkdir()
    image = io.BytesIO()
    tifffile.imwrite(image, pattern(200, 200))
    with zipfile.ZipFile(served / "larger.zip", "w") as archive:
        archive.writestr("Kather_texture_2016_larger_images_10/CRC-Prim-HE-01_APPLICATION.tif", image.getvalue())
    data = (served / "larger.zip").read_bytes()
    with serve_folder(served) as server:
        wrong = run_inline(kinds.KATHER_LARGE_DOWNLOAD, {"source": {"url": server.url + "larger.zip", "size": len(data),
                                                              "sha256": "0" * 64}}, tmp_path / "job0")
        assert wrong.status == "failed" and "sha256" in wrong.error and not kather_large.installed_images()
        source = {"url": server.url + "larger.zip", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        outcome = run_inline(kinds.KATHER_LARGE_DOWNLOAD, {"source": source}, tmp_path / "job1")
    assert outcome.status == "finished", outcome.error
    assert outcome.result["images"] == 1
    [path] = kather_large.installed_images()
    with reader.open_image(path) as opened:
        assert (opened.width, opened.height) == (200, 200)
    assert kather_large.SIZE == 742_020_106 and kather_large.SHA256.startswith("77336ba5")


def test_early_thumbnail_is_the_sources_own_and_only_for_the_level_read(tmp_path):
    from services.tissuemap.job import EarlyThumbnail

    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, pattern(700, 500), tile=(128, 128), compression="zlib")
    early = EarlyThumbnail.make(flat)
    with reader.open_image(flat) as source:
        own, own_factor = source.thumbnail()
        made, made_factor = early.for_source(source)
        assert made_factor == own_factor and np.array_equal(made, own)
    # The pixels it decoded go to the job's source of the same level: read again without decoding.
    early = EarlyThumbnail.make(flat)
    with reader.open_image(flat) as source:
        early.hand_over(source)
        assert early.source._tiff is None, "the early source is closed once handed over"
        decoded = []
        original = source._page.decode
        source._page.decode = lambda *a, **k: decoded.append(1) or original(*a, **k)
        assert np.array_equal(source.read_region(0, 0, 500, 700), pattern(700, 500))
        assert not decoded, "every chunk came from the thumbnail's read"
    pyramid = tmp_path / "pyramid.tif"
    write_pyramid(pyramid, pattern(512, 512), 1)
    with reader.open_image(pyramid, target_mpp=0.5) as source:  # the job reads level 1: made afresh
        other_level = EarlyThumbnail.make(pyramid)
        assert other_level.for_source(source) is None
        other_level.hand_over(source)
        assert not source._cache, "no pixels of another level"
        assert source.read_region(0, 0, 256, 256).shape == (256, 256, 3)
    Image.fromarray(pattern(64, 64)).save(tmp_path / "small.png")
    assert EarlyThumbnail.make(tmp_path / "small.png") is None  # decoded whole: never twice
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x07" * 200)
    assert EarlyThumbnail.make(tmp_path / "broken.tif") is None  # the job's own read reports it


def test_uncertain_cells_are_drawn_and_counted_apart_in_every_output():
    tissue_map = random_map(seed=5)
    tissue_map.meta["min_confidence"] = 0.5
    uncertain = tissue_map.predicted & (tissue_map.confidence < 0.5)
    assert uncertain.any()
    areas = {row["class"]: row for row in tissue_map.areas()}
    assert areas["uncertain"]["cells"] == int(uncertain.sum())
    assert sum(row["fraction"] for row in areas.values()) == pytest.approx(1.0)
    labels = tifffile.imread(io.BytesIO(outputs.label_tiff(tissue_map)))
    assert int((labels == 255).sum()) == int(uncertain.sum())
    polygons = [f for f in json.loads(outputs.geojson_bytes(tissue_map))["features"]
                if f["properties"]["name"] == "uncertain"]
    area = sum(geojson.ring_area([tuple(p) for p in ring]) for f in polygons for ring in f["geometry"]["coordinates"])
    assert area == pytest.approx(uncertain.sum() * 30 * 30)
    image = outputs.overlay(np.full((9 * 30, 12 * 30, 3), 255, np.uint8), 1, tissue_map, opacity=1.0)
    r, c = np.argwhere(uncertain)[0]
    assert tuple(image[r * 30 + 5, c * 30 + 5]) == outputs.UNCERTAIN_COLOUR
    tiles = pd.read_csv(io.BytesIO(outputs.tiles_csv(tissue_map)))
    assert tiles["uncertain"].tolist() == (tissue_map.tile_probabilities.max(axis=1) < 0.5).tolist()
    assert tiles["uncertain"].any() and not tiles["uncertain"].all()
    tissue_map.meta["min_confidence"] = 0.0  # no threshold: no column claiming every tile is certain
    assert "uncertain" not in pd.read_csv(io.BytesIO(outputs.tiles_csv(tissue_map))).columns


def test_an_upload_keeps_its_original_file_name_for_reports_and_downloads(data_root):
    from dashboard.tissuemap_adapters import save_upload

    data = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 150)).save(data, format="PNG")
    path = save_upload("Patient 12 slide (HE).png", data.getvalue())
    assert path.name == "Patient_12_slide__HE_.png" and path.read_bytes() == data.getvalue()
    assert save_upload("../../evil.png", data.getvalue()).parent == path.parent  # one folder per content
