"""The built-in synthetic demo set: Kather's 8 classes as procedural H&E-like tiles.

Generated once, deterministically (fixed seed), into ``<data_root>/datasets/demo/``: folders
``01_TUMOR ... 08_EMPTY`` of 150x150 RGB TIFF tiles named like Kather's
(``0A1F_SYN-HE-03_002.tif_Row_151_Col_301.tif``), from a few synthetic source images per class
so that grouped splits have something to do. Like the real data it holds one exact duplicate
and one near duplicate. It is synthetic: every page that shows it says so.

``python -m services.datasets.demo`` generates it (``make run`` does this).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from services.config import layout
from services.datasets.naming import KATHER_CLASSES, kather_tile_name
from services.datasets.textures import SIZE, Stain, render
from services.errors import UserFacingError

SEED = 42
TILES_PER_CLASS = 45
SOURCES_PER_CLASS = 5
VERSION = f"synthetic-demo v1 seed {SEED} {TILES_PER_CLASS}x{len(KATHER_CLASSES)}"
MARKER = "SYNTHETIC_DEMO.txt"
DEMO_NAME = "demo"
_lock = threading.Lock()


def demo_folder(root: Path | None = None) -> Path:
    return layout(root).datasets_dir / DEMO_NAME


def is_demo_folder(folder: Path) -> bool:
    marker = Path(folder) / MARKER
    return marker.is_file() and marker.read_text().startswith(VERSION)


def ensure_demo_dataset(root: Path | None = None) -> Path:
    """Generate the demo set under ``<root or data_root>/datasets/demo`` unless it is there.

    Generation writes to a temporary sibling folder and renames it into place, so a reader never
    sees half a dataset and two concurrent callers cannot mix their files.
    """
    target = demo_folder(root)
    with _lock:
        if is_demo_folder(target):
            return target
        if target.exists() and not (target / MARKER).exists():
            raise UserFacingError(
                f"{target} exists but is not the generated demo set (no {MARKER}); move it "
                "elsewhere so the demo set can be generated there."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{DEMO_NAME}-{uuid.uuid4().hex[:8]}")
        try:
            write_demo_tiles(staging)
            if target.exists():  # an older demo version: replace it
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _tile_positions(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    cells = rng.choice(30 * 30, size=count, replace=False)
    return [(int(c // 30) * SIZE + 1, int(c % 30) * SIZE + 1) for c in cells]


def write_demo_tiles(folder: Path, *, tiles_per_class: int = TILES_PER_CLASS,
                     sources_per_class: int = SOURCES_PER_CLASS) -> None:
    """Write every tile of the demo set (and its marker) into ``folder``, one class per thread."""
    folder.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda args: _write_class(folder, *args, tiles_per_class, sources_per_class),
                      enumerate(KATHER_CLASSES, start=1)))
    _add_duplicates(folder)
    (folder / MARKER).write_text(
        f"{VERSION}\nSYNTHETIC DEMO DATA: procedural textures that imitate H&E tissue classes. "
        "Not real tissue; do not draw medical conclusions from models trained on it.\n"
    )


def _write_class(folder: Path, class_number: int, label: str, tiles_per_class: int, sources_per_class: int) -> None:
    class_dir = folder / f"{class_number:02d}_{label}"
    class_dir.mkdir()
    tile_number = (class_number - 1) * tiles_per_class
    for source in range(sources_per_class):
        rng = np.random.default_rng([SEED, class_number, source])
        stain = Stain.draw(rng)
        source_image = f"SYN-HE-{class_number}{source}_{source + 1:03d}.tif"
        count = len(range(source, tiles_per_class, sources_per_class))
        for row, col in _tile_positions(rng, count):
            tile_number += 1
            name = kather_tile_name(f"{tile_number:04X}", source_image, row, col)
            Image.fromarray(render(label, stain, rng)).save(class_dir / name, format="TIFF")


def _add_duplicates(folder: Path) -> None:
    """Replace two tiles by copies of others, like the duplicates of the real data set:
    an exact copy (DEBRIS) and a slightly brightened copy (LYMPHO, a near duplicate)."""
    for class_dir, brighten in (("05_DEBRIS", None), ("04_LYMPHO", 1.04)):
        tiles = sorted((folder / class_dir).iterdir())
        original, replaced = tiles[0], tiles[-1]
        image = Image.open(original)
        if brighten:
            image = ImageEnhance.Brightness(image).enhance(brighten)
        image.save(replaced, format="TIFF")


def main() -> None:
    folder = ensure_demo_dataset()
    print(f"synthetic demo set ready: {folder}")


if __name__ == "__main__":
    main()
