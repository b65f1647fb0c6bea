"""Files in the real layouts of the real-tissue demo, generated small, and a sources file pointing
at a local server: a zip of Kather-named tiles, Keras's MobileNetV2 no-top weights file made from
a random-initialised model, and a larger-images zip holding TIFFs (a deflated and a stored image,
plus a big filler member so that reading one member is measurably less than the zip)."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

TILES_ZIP = "Kather_texture_2016_image_tiles_5000.zip"
TILES_PREFIX = "Kather_texture_2016_image_tiles_5000/"
LARGER_ZIP = "Kather_texture_2016_larger_images_10.zip"
LARGER_PREFIX = "Kather_texture_2016_larger_images_10/"
FIRST_IMAGE = "CRC-Prim-HE-01_APPLICATION.tif"
FILLER_BYTES = 6_000_000


def _tiles_zip(served: Path, work: Path) -> list[np.ndarray]:
    from PIL import Image

    from services.datasets.demo import MARKER, write_demo_tiles

    folder = work / "tiles"
    write_demo_tiles(folder, tiles_per_class=6, sources_per_class=3)
    (folder / MARKER).unlink()  # the real zip has no marker: the sources file declares the data generated
    with zipfile.ZipFile(served / TILES_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*.tif")):
            archive.write(path, TILES_PREFIX + path.relative_to(folder).as_posix())
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.rglob("*.tif"))]


def _weights_file(served: Path) -> Path:
    import keras

    from services.models import weights

    keras.utils.set_random_seed(3)
    spec = weights.spec("mobilenet_v2")
    return weights.write_weights_file(spec.build((32, 32, 3)), served / spec.file_name)


def _larger_zip(served: Path, work: Path, tiles: list[np.ndarray]) -> None:
    from services.tissuemap.demo import write_tiled_tiff

    side = 150
    grid = np.array(tiles[: 16]).reshape(4, 4, side, side, 3).transpose(0, 2, 1, 3, 4).reshape(4 * side, 4 * side, 3)
    first, second = work / "first.tif", work / "second.tif"
    write_tiled_tiff(first, np.ascontiguousarray(grid), mpp=0.495, description="generated test image")
    write_tiled_tiff(second, np.ascontiguousarray(grid[::-1]), mpp=0.495, description="generated test image")
    with zipfile.ZipFile(served / LARGER_ZIP, "w") as archive:
        archive.write(first, LARGER_PREFIX + FIRST_IMAGE, compress_type=zipfile.ZIP_DEFLATED)
        archive.write(second, LARGER_PREFIX + "CRC-Prim-HE-02_APPLICATION.tif", compress_type=zipfile.ZIP_STORED)
        archive.writestr(LARGER_PREFIX + "CRC-Prim-HE-03_APPLICATION.tif", os.urandom(FILLER_BYTES),
                         compress_type=zipfile.ZIP_STORED)


def build_served_files(served: Path, work: Path) -> None:
    """The three files of the demo, generated into ``served``."""
    served.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    tiles = _tiles_zip(served, work)
    _weights_file(served)
    _larger_zip(served, work, tiles)


def sources_file(path: Path, served: Path, url: str, *, tiles_md5: str | None = None) -> Path:
    """A ``DASHBOARD_DEMO_SOURCES`` file pointing at ``url`` (the local server of ``served``)."""
    from services.models import weights

    def md5(name: str) -> str:
        return hashlib.md5((served / name).read_bytes()).hexdigest()

    weights_name = weights.spec("mobilenet_v2").file_name
    values = {
        "tiles": {"url": url + TILES_ZIP, "size": (served / TILES_ZIP).stat().st_size,
                  "md5": tiles_md5 or md5(TILES_ZIP), "generated": True},
        "weights": {"url": url + weights_name, "md5": md5(weights_name), "random_weights": True},
        "larger": {"url": url + LARGER_ZIP, "size": (served / LARGER_ZIP).stat().st_size,
                   "sha256": hashlib.sha256((served / LARGER_ZIP).read_bytes()).hexdigest(), "generated": True},
    }
    path.write_text(json.dumps(values))
    return path
