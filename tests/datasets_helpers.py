"""Helpers shared by the dataset tests: tiny generated datasets and the demo set."""

from __future__ import annotations

import functools
import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.datasets.naming import kather_tile_name


def write_tile(path: Path, seed: int, size: int = 24, fmt: str = "TIFF") -> Path:
    """A small random RGB tile (distinct per seed)."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def make_dataset(folder: Path, classes=("01_TUMOR", "02_STROMA"), sources: int = 3, tiles_per_source: int = 2) -> Path:
    """A folder of class folders with Kather-named random tiles."""
    seed = 0
    for class_folder in classes:
        for source in range(sources):
            for tile in range(tiles_per_source):
                seed += 1
                name = kather_tile_name(f"{seed:04X}", f"SRC-{class_folder}-{source}.tif", tile * 150 + 1, 1)
                write_tile(folder / class_folder / name, seed)
    return folder


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _generated_demo_root() -> Path:
    """Generate the demo set once per test process (test modules import the fixtures below,
    which pytest would otherwise set up once per module)."""
    from services.datasets.demo import ensure_demo_dataset

    root = Path(tempfile.mkdtemp(prefix="demo-root-"))
    ensure_demo_dataset(root)
    return root


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """A data root holding the generated demo set (shared: tests may add jobs, caches and splits,
    never change the tiles)."""
    return _generated_demo_root()


@pytest.fixture
def demo_data_root(demo_root, monkeypatch) -> Path:
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(demo_root))
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    return demo_root
