"""The built-in demo image: a mosaic of synthetic demo tiles with a known class layout.

Tiles of the synthetic demo set (150 px at Kather's 0.495 um/px) are placed on a grid whose
cells follow a fixed layout of blob-shaped regions, with a margin of empty white glass all
round (which tissue detection must skip). The mosaic is a tiled TIFF with its resolution and
"SYNTHETIC DEMO" in its description; the layout (class name per grid cell) is saved beside it,
so the map can be checked against it. It is synthetic: every page and output says so.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from services import untrusted_json
from services.config import layout
from services.tissuemap.models import KATHER_MPP, KATHER_TILE_PX

DEMO_FILE = "demo_mosaic.tif"
LAYOUT_FILE = "demo_mosaic.json"
DEMO_ROWS, DEMO_COLS, DEMO_MARGIN = 8, 10, KATHER_TILE_PX
DEMO_CLASSES = ("TUMOR", "STROMA", "LYMPHO", "MUCOSA", "ADIPOSE", "DEBRIS", "COMPLEX")
DESCRIPTION = "SYNTHETIC DEMO MOSAIC: procedural H&E-like tiles, not real tissue."


def blob_layout(rows: int, cols: int, classes, seed: int = 7, regions: int = 9) -> np.ndarray:
    """Class index (into ``classes``) per grid cell: nearest of ``regions`` random seeds (Voronoi)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0, 0], [rows, cols], size=(regions, 2))
    owners = np.arange(regions) % len(classes)
    yy, xx = np.mgrid[0:rows, 0:cols] + 0.5
    distances = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
    return owners[distances.argmin(axis=2)]


def placed_tiles(tiles_by_class: dict[int, list[np.ndarray]], layout: np.ndarray) -> list[np.ndarray]:
    """The tile of every grid cell in row-major order: class ``layout[r, c]``'s tiles in turn."""
    used = {k: 0 for k in tiles_by_class}
    placed = []
    for label in layout.ravel().tolist():
        pool = tiles_by_class[label]
        placed.append(pool[used[label] % len(pool)])
        used[label] += 1
    return placed


def build_mosaic(tiles_by_class: dict[int, list[np.ndarray]], layout: np.ndarray, *, tile: int = KATHER_TILE_PX,
                 margin: int = 0) -> np.ndarray:
    """RGB mosaic of :func:`placed_tiles` on the layout's grid, with a white margin around."""
    rows, cols = layout.shape
    mosaic = np.full((rows * tile + 2 * margin, cols * tile + 2 * margin, 3), 255, np.uint8)
    for index, pixels in enumerate(placed_tiles(tiles_by_class, layout)):
        y, x = margin + (index // cols) * tile, margin + (index % cols) * tile
        mosaic[y:y + tile, x:x + tile] = pixels[:tile, :tile]
    return mosaic


def write_tiled_tiff(path: Path, pixels: np.ndarray, *, mpp: float, description: str) -> None:
    import tifffile

    tifffile.imwrite(path, pixels, tile=(256, 256), compression="zlib", description=description,
                     resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER", metadata=None)


def _class_tiles(dataset: Path, names) -> dict[int, list[np.ndarray]]:
    from PIL import Image

    tiles = {}
    for index, name in enumerate(names):
        folder = next(p for p in sorted(dataset.iterdir()) if p.is_dir() and p.name.upper().endswith(name))
        tiles[index] = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir())[:12]]
    return tiles


def demo_paths(root: Path | None = None) -> tuple[Path, Path]:
    folder = layout(root).tissuemap_dir
    return folder / DEMO_FILE, folder / LAYOUT_FILE


def ensure_demo_mosaic(root: Path | None = None) -> Path:
    """Write the demo mosaic (and its layout) under ``<data root>/tissuemap/`` unless it is there."""
    from services.datasets.demo import ensure_demo_dataset

    image_path, layout_path = demo_paths(root)
    if image_path.is_file() and layout_path.is_file():
        return image_path
    layout = blob_layout(DEMO_ROWS, DEMO_COLS, DEMO_CLASSES)
    pixels = build_mosaic(_class_tiles(ensure_demo_dataset(root), DEMO_CLASSES), layout, margin=DEMO_MARGIN)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    staging = image_path.with_name(f".{uuid.uuid4().hex[:8]}.tif")
    write_tiled_tiff(staging, pixels, mpp=KATHER_MPP, description=DESCRIPTION)
    layout_path.write_text(json.dumps({"classes": list(DEMO_CLASSES), "layout": layout.tolist(),
                                       "tile_px": KATHER_TILE_PX, "margin_px": DEMO_MARGIN, "mpp": KATHER_MPP,
                                       "synthetic": True}))
    os.replace(staging, image_path)
    return image_path


def demo_layout(root: Path | None = None) -> dict:
    return untrusted_json.read(demo_paths(root)[1], what="the demo mosaic's layout")
