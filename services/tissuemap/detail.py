"""The detail view of a map: one region of the image at full (or a chosen) resolution.

The page's map shows a thumbnail (longest side :data:`~services.tissuemap.reader.THUMBNAIL_SIDE`),
too coarse to see tissue on a 5000 or 20,000 px image. A detail view reads only a box of
``VIEW_SIDE x zoom`` image pixels around a centre through the reader (a tiled TIFF decodes just
the chunks the box touches), block-averages it by ``zoom`` (1 = every image pixel), and is
panned by moving the centre. Coordinates are those of the image level the map was made on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.tissuemap.reader import ImageSource, block_mean

VIEW_SIDE = 640
"""Side of the detail view in screen pixels (at most VIEW_SIDE x max(ZOOMS) image px are read)."""
ZOOMS = (1, 2, 4)
"""Image pixels per view pixel: 1 = full resolution."""
PAN_STEP = 0.5
"""A pan moves the view by this fraction of its side."""


@dataclass(frozen=True)
class DetailBox:
    """The image box (x, y, width, height in image px) a view at ``zoom`` shows."""
    x: int
    y: int
    width: int
    height: int
    zoom: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


def detail_box(image_width: int, image_height: int, centre_x: float, centre_y: float, zoom: int,
               side: int = VIEW_SIDE) -> DetailBox:
    """The box of ``side * zoom`` image px centred as near ``(centre_x, centre_y)`` as the image allows."""
    if zoom not in ZOOMS:
        zoom = ZOOMS[0]
    width, height = min(side * zoom, image_width), min(side * zoom, image_height)
    x = int(round(min(max(centre_x - width / 2, 0), image_width - width)))
    y = int(round(min(max(centre_y - height / 2, 0), image_height - height)))
    return DetailBox(x, y, width, height, zoom)


def panned(box: DetailBox, image_width: int, image_height: int, columns: float, rows: float) -> DetailBox:
    """``box`` moved by ``columns`` / ``rows`` pan steps (negative: left / up), kept in the image."""
    cx, cy = box.centre
    return detail_box(image_width, image_height, cx + columns * PAN_STEP * box.width,
                      cy + rows * PAN_STEP * box.height, box.zoom, max(box.width, box.height) // box.zoom)


def read_detail(source: ImageSource, box: DetailBox) -> np.ndarray:
    """The box's pixels, ``zoom`` x ``zoom`` image px averaged into one (only the box is read)."""
    return block_mean(source.read_region(box.x, box.y, box.width, box.height), box.zoom)


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``limit`` (a scale bar's length)."""
    if limit <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(limit))
    return max(step * power for step in (1, 2, 5) if step * power <= limit)


def with_scale_bar(pixels: np.ndarray, um_per_px: float) -> tuple[np.ndarray, float]:
    """(copy of ``pixels`` with a scale bar at the bottom left, its length in um): black on a white
    border, about a fifth of the width."""
    height, width = pixels.shape[:2]
    length_um = nice_length(width / 5 * um_per_px)
    length = int(round(length_um / um_per_px)) if length_um else 0
    out = pixels.copy()
    if length < 4 or height < 24:
        return out, 0.0
    top, left, thick = height - 14, 10, 5
    out[top - 2:top + thick + 2, left - 2:left + length + 2] = 255
    out[top:top + thick, left:left + length] = 0
    return out, length_um
