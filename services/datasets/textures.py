"""Procedural H&E-like textures, one painter per Kather class (for the synthetic demo set).

Each painter draws a 150x150 RGB tile that resembles its tissue class at a glance: nuclei are
hematoxylin purple, cytoplasm and fibres eosin pink, fat and background near white. A
:class:`Stain` (drawn once per synthetic source image) shifts the colours slightly, the way
staining varies between slides, so tiles of one source image look alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 150
Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Stain:
    """Per-source-image colours: hematoxylin (nuclei), eosin (cytoplasm/fibres), background."""

    hematoxylin: Colour
    eosin: Colour
    background: Colour

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Stain":
        def jitter(colour: Colour, spread: float) -> Colour:
            return tuple(float(np.clip(c + rng.normal(0, spread), 0, 255)) for c in colour)

        return cls(
            hematoxylin=jitter((75, 45, 125), 10),
            eosin=jitter((228, 135, 185), 9),
            background=jitter((246, 240, 246), 3),
        )


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(x * (1 - t) + y * t for x, y in zip(a, b))


def smooth_noise(rng: np.random.Generator, cells: int = 6) -> np.ndarray:
    """Low-frequency noise in [0, 1], SIZE x SIZE (a small random grid upsampled bicubically)."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.float32) / 255


def _canvas(colour: Colour, rng: np.random.Generator, variation: float = 10.0) -> np.ndarray:
    shade = (smooth_noise(rng) - 0.5)[..., None] * variation
    return np.asarray(colour, dtype=np.float32)[None, None, :] + shade


def _paint(canvas: np.ndarray, mask: Image.Image, colour: Colour, opacity: float = 1.0, blur: float = 0.6) -> None:
    """Blend ``colour`` into ``canvas`` (float H x W x 3) where the L-mode ``mask`` is set."""
    if blur:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255 * opacity
    canvas *= 1 - alpha
    canvas += alpha * np.asarray(colour, dtype=np.float32)


_ANGLES = np.linspace(0, 2 * np.pi, 12, endpoint=False)


def _blobs(cx, cy, rx, ry, angle, jitter: float, rng: np.random.Generator) -> list[list[float]]:
    """Outlines of rotated ellipses whose radius wobbles by ``jitter`` (irregular nuclei), as
    flat [x0, y0, x1, y1, ...] lists for ImageDraw.polygon. Arguments are arrays (one per blob)."""
    cx, cy, rx, ry, angle = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (cx, cy, rx, ry, angle))
    wobble = 1 + rng.uniform(-jitter, jitter, (len(cx), len(_ANGLES)))
    x, y = rx[:, None] * np.cos(_ANGLES) * wobble, ry[:, None] * np.sin(_ANGLES) * wobble
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    points = np.stack([cx[:, None] + x * cos - y * sin, cy[:, None] + x * sin + y * cos], axis=-1)
    return points.reshape(len(cx), -1).tolist()


def _mask() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (SIZE, SIZE), 0)
    return image, ImageDraw.Draw(image)


def _nuclei(rng: np.random.Generator, count: int, radius: tuple[float, float], elongation: tuple[float, float],
            jitter: float, angle: float | None = None) -> Image.Image:
    mask, draw = _mask()
    if count <= 0:
        return mask
    r = rng.uniform(*radius, count)
    angles = angle + rng.normal(0, 0.25, count) if angle is not None else rng.uniform(0, np.pi, count)
    centres = rng.uniform(-5, SIZE + 5, (2, count))
    for outline in _blobs(centres[0], centres[1], r * rng.uniform(*elongation, count), r, angles, jitter, rng):
        draw.polygon(outline, fill=255)
    return mask


def _speckle(canvas: np.ndarray, rng: np.random.Generator, count: int, colour: Colour, size: int = 1) -> None:
    mask, draw = _mask()
    for x, y in rng.uniform(0, SIZE, (count, 2)):
        draw.ellipse((x, y, x + size, y + size), fill=255)
    _paint(canvas, mask, colour, opacity=0.8, blur=0.3)


def tumour(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(_mix(stain.eosin, stain.hematoxylin, 0.3), rng, 25)
    nuclei = _nuclei(rng, int(rng.integers(50, 70)), (5, 9), (1.0, 1.6), 0.3)
    _paint(canvas, nuclei, stain.hematoxylin, opacity=0.9)
    _speckle(canvas, rng, 150, _mix(stain.hematoxylin, (20, 10, 40), 0.5))  # coarse chromatin
    return canvas


def stroma(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(_mix(stain.eosin, stain.background, 0.25), rng, 15)
    direction = rng.uniform(0, np.pi)
    fibres, draw = _mask()
    x = np.linspace(-40, SIZE + 40, 60)
    for offset in np.arange(-SIZE, 2 * SIZE, rng.uniform(5, 8)):
        y = offset + 6 * np.sin(x / rng.uniform(12, 25) + rng.uniform(0, 6)) - SIZE / 2
        cos, sin = np.cos(direction), np.sin(direction)
        xs, ys = (x - SIZE / 2) * cos - y * sin + SIZE / 2, (x - SIZE / 2) * sin + y * cos + SIZE / 2
        draw.line(list(zip(xs, ys)), fill=int(rng.integers(150, 255)), width=int(rng.integers(1, 3)))
    _paint(canvas, fibres, _mix(stain.eosin, (200, 60, 130), 0.35), opacity=0.8)
    nuclei = _nuclei(rng, int(rng.integers(4, 10)), (2, 3), (3.0, 5.0), 0.1, angle=direction)
    _paint(canvas, nuclei, stain.hematoxylin, opacity=0.85)
    return canvas


def lympho(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(_mix(stain.eosin, stain.background, 0.45), rng, 15)
    nuclei = _nuclei(rng, int(rng.integers(260, 360)), (2.5, 4.0), (1.0, 1.15), 0.08)
    _paint(canvas, nuclei, _mix(stain.hematoxylin, (30, 15, 70), 0.4), opacity=0.95, blur=0.4)
    return canvas


def debris(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(_mix(stain.eosin, stain.background, 0.6), rng, 20)
    for colour, count in ((stain.eosin, 35), (_mix(stain.hematoxylin, stain.eosin, 0.4), 25)):
        fragments = _nuclei(rng, count, (1.5, 6), (1.0, 2.5), 0.6)
        _paint(canvas, fragments, colour, opacity=rng.uniform(0.5, 0.85))
    _speckle(canvas, rng, 400, stain.hematoxylin)
    return canvas


def mucosa(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(_mix(stain.eosin, stain.hematoxylin, 0.1), rng, 15)
    epithelium, lumen, nuclei, goblets = _mask(), _mask(), _mask(), _mask()
    for _ in range(int(rng.integers(2, 5))):
        cx, cy, r = rng.uniform(10, SIZE - 10), rng.uniform(10, SIZE - 10), rng.uniform(12, 26)
        epithelium[1].ellipse((cx - r - 12, cy - r - 12, cx + r + 12, cy + r + 12), fill=255)
        lumen[1].ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        angles = np.linspace(0, 2 * np.pi, int(r * 1.6), endpoint=False)
        d = r + rng.uniform(7, 10, len(angles))
        for outline in _blobs(cx + d * np.cos(angles), cy + d * np.sin(angles), np.full(len(angles), 3.5),
                              np.full(len(angles), 1.5), angles, 0.1, rng):
            nuclei[1].polygon(outline, fill=255)
        g = r + 4
        for angle in angles[rng.random(len(angles)) < 0.25]:
            gx, gy = cx + g * np.cos(angle), cy + g * np.sin(angle)
            goblets[1].ellipse((gx - 2, gy - 2, gx + 2, gy + 2), fill=255)
    _paint(canvas, epithelium[0], _mix(stain.eosin, stain.hematoxylin, 0.3), opacity=0.7)
    _paint(canvas, nuclei[0], stain.hematoxylin, opacity=0.9)
    _paint(canvas, goblets[0], stain.background, opacity=0.8)
    _paint(canvas, lumen[0], stain.background, opacity=0.95)
    return canvas


def adipose(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(stain.background, rng, 4)
    seeds = rng.uniform(-20, SIZE + 20, (int(rng.integers(10, 18)), 2))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    distance = (xx[..., None] - seeds[:, 0]) ** 2 + (yy[..., None] - seeds[:, 1]) ** 2
    cells = distance.argmin(axis=2)
    edges = np.zeros((SIZE, SIZE), dtype=bool)
    edges[:, 1:] |= cells[:, 1:] != cells[:, :-1]
    edges[1:, :] |= cells[1:, :] != cells[:-1, :]
    _paint(canvas, Image.fromarray(edges.astype(np.uint8) * 255), stain.eosin, opacity=0.85, blur=0.7)
    nuclei = _nuclei(rng, int(rng.integers(0, 3)), (2, 3), (1.5, 2.5), 0.1)
    _paint(canvas, nuclei, stain.hematoxylin, opacity=0.8)
    return canvas


def empty(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(_mix(stain.background, (252, 252, 252), 0.5), rng, 6)
    _speckle(canvas, rng, int(rng.integers(4, 20)), _mix(stain.eosin, (150, 150, 160), 0.5), size=2)
    return canvas


def complex_stroma(stain: Stain, rng: np.random.Generator) -> np.ndarray:
    """Mixtures: stroma interleaved with tumour cells or lymphocytes and debris."""
    partner = (tumour, lympho, debris)[int(rng.integers(0, 3))]
    region = smooth_noise(rng, cells=4)[..., None]
    weight = np.clip((region - 0.5) * 6 + 0.5, 0, 1)
    return stroma(stain, rng) * (1 - weight) + partner(stain, rng) * weight


Painter = Callable[[Stain, np.random.Generator], np.ndarray]

PAINTERS: dict[str, Painter] = {
    "TUMOR": tumour, "STROMA": stroma, "COMPLEX": complex_stroma, "LYMPHO": lympho,
    "DEBRIS": debris, "MUCOSA": mucosa, "ADIPOSE": adipose, "EMPTY": empty,
}


def render(label: str, stain: Stain, rng: np.random.Generator, noise: float = 5.0) -> np.ndarray:
    """A finished uint8 tile: the class texture, slight optical blur and sensor noise."""
    canvas = PAINTERS[label](stain, rng)
    canvas += rng.normal(0, noise, canvas.shape).astype(np.float32)
    tile = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.5))
    return np.asarray(tile)
