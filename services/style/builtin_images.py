"""Pictures that work offline: scikit-image's bundled photos as content, generated styles.

The stained-glass style is a Voronoi mosaic: random seed points, every pixel coloured like its
nearest seed (with a little glass-like shading), and dark "leading" where two tiles meet (the
nearest and second-nearest seeds are almost equally far). Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

JEWEL_COLOURS = np.array([
    (178, 34, 34), (220, 160, 30), (30, 80, 170), (20, 130, 90), (120, 40, 140),
    (230, 110, 40), (40, 160, 190), (200, 60, 110), (240, 210, 90), (60, 60, 150),
], dtype=np.float32)


@dataclass(frozen=True)
class BuiltinImage:
    name: str
    description: str
    load: Callable[[], np.ndarray]
    generated: bool = False
    """True for procedurally generated pictures (labelled as such in the UI)."""


def _skimage_photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        pixels = getattr(skimage.data, name)()
        return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]

    return load


def horse_silhouette() -> np.ndarray:
    """scikit-image's binary horse: a black horse on white, uint8 0/255 (HxW)."""
    import skimage.data

    return np.where(skimage.data.horse(), 255, 0).astype(np.uint8)


def horse_silhouette_rgb() -> np.ndarray:
    return np.repeat(horse_silhouette()[..., None], 3, axis=2)


def _nearest_two(height: int, width: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index of the nearest point, its distance, distance to the second nearest) per pixel."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    nearest = np.zeros((height, width), np.int32)
    first = np.full((height, width), np.inf, np.float32)
    second = np.full((height, width), np.inf, np.float32)
    for index, (row, col) in enumerate(points):
        distance = np.hypot(rows - row, cols - col)
        closer = distance < first
        second = np.where(closer, first, np.minimum(second, distance))
        nearest = np.where(closer, index, nearest)
        first = np.where(closer, distance, first)
    return nearest, first, second


def stained_glass(size: tuple[int, int] = (384, 384), *, tiles: int = 90, leading: float = 2.5, seed: int = 0,
                  palette: np.ndarray = JEWEL_COLOURS) -> np.ndarray:
    """A Voronoi stained-glass picture (RGB uint8) with dark leading between the tiles."""
    height, width = size
    rng = np.random.default_rng(seed)
    points = rng.uniform((0, 0), (height, width), size=(tiles, 2))
    nearest, first, second = _nearest_two(height, width, points)
    colours = palette[rng.integers(0, len(palette), tiles)] * rng.uniform(0.75, 1.1, (tiles, 1))
    shading = 1.0 - 0.35 * np.clip(first / (np.sqrt(height * width / tiles)), 0, 1)  # light in tile centres
    image = colours[nearest] * shading[..., None]
    image[(second - first) < leading] = (25, 22, 20)
    return np.clip(image, 0, 255).astype(np.uint8)


def mosaic_tiles(size: tuple[int, int] = (384, 384), seed: int = 1) -> np.ndarray:
    """Smaller, paler tiles with light grout: a Roman-mosaic look."""
    pale = JEWEL_COLOURS * 0.6 + 90
    image = stained_glass(size, tiles=400, leading=1.5, seed=seed, palette=pale)
    image[(image == (25, 22, 20)).all(axis=2)] = (235, 230, 215)
    return image


def waves(size: tuple[int, int] = (384, 384), seed: int = 2) -> np.ndarray:
    """Colourful interfering waves: a smooth, swirly texture."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size[0], 0:size[1]].astype(np.float32) / max(size)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(4, 14), rng.uniform(4, 14), rng.uniform(0, 2 * np.pi)
        channels.append(np.sin(2 * np.pi * (fx * cols + fy * rows * rows) + phase + 3 * np.sin(6 * rows)))
    return ((np.stack(channels, axis=2) * 0.5 + 0.5) * 255).astype(np.uint8)


def brush_strokes(size: tuple[int, int] = (384, 384), seed: int = 3, strokes: int = 500) -> np.ndarray:
    """Short random coloured strokes on canvas: a crude painterly texture."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((*size, 3), (240, 232, 210), np.uint8)
    for _ in range(strokes):
        start = rng.uniform((0, 0), (size[1], size[0])).astype(int)
        angle, length = rng.uniform(0, np.pi), rng.uniform(10, 40)
        end = (start + length * np.array([np.cos(angle), np.sin(angle)])).astype(int)
        colour = tuple(int(c) for c in JEWEL_COLOURS[rng.integers(len(JEWEL_COLOURS))])
        cv2.line(image, tuple(int(v) for v in start), tuple(int(v) for v in end), colour, int(rng.integers(3, 9)),
                 lineType=cv2.LINE_AA)
    return image


CONTENT_IMAGES: dict[str, BuiltinImage] = {
    image.name: image for image in (
        BuiltinImage("Astronaut", "Eileen Collins (scikit-image)", _skimage_photo("astronaut")),
        BuiltinImage("Chelsea the cat", "scikit-image sample photo", _skimage_photo("chelsea")),
        BuiltinImage("Coffee", "scikit-image sample photo", _skimage_photo("coffee")),
        BuiltinImage("Rocket", "scikit-image sample photo", _skimage_photo("rocket")),
        BuiltinImage("Immunohistochemistry", "stained tissue section (scikit-image)",
                     _skimage_photo("immunohistochemistry")),
        BuiltinImage("Horse silhouette", "binary horse shipped with scikit-image", horse_silhouette_rgb),
    )
}

STYLE_IMAGES: dict[str, BuiltinImage] = {
    image.name: image for image in (
        BuiltinImage("Stained glass", "Voronoi tiles with dark leading", stained_glass, generated=True),
        BuiltinImage("Mosaic", "small pale tiles with light grout", mosaic_tiles, generated=True),
        BuiltinImage("Waves", "interfering colour waves", waves, generated=True),
        BuiltinImage("Brush strokes", "random coloured strokes", brush_strokes, generated=True),
    )
}

SILHOUETTES: dict[str, Callable[[], np.ndarray]] = {"Horse (scikit-image)": horse_silhouette}
