"""The tile grid over an image and the averaging of overlapping tile predictions.

A model tile covers ``tile`` image pixels (its field of view at the image's resolution, e.g.
150 px at 0.495 um/px = 74.25 um). With ``overlap`` = k, tiles step by ``tile / k``: the map
has one *cell* per step, each tile covers k x k cells, and every cell's probabilities are the
mean over the tiles covering it (k = 1: no overlap, one cell per tile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.errors import BadImage

MAX_OVERLAP = 4


@dataclass(frozen=True)
class Grid:
    width: int
    height: int
    tile: float
    """Side of one model tile in image pixels."""
    overlap: int = 1

    def __post_init__(self):
        if not 1 <= self.overlap <= MAX_OVERLAP:
            raise BadImage(f"overlap must be 1 to {MAX_OVERLAP} tiles per tile side (got {self.overlap}).")
        if self.tile < 8:
            raise BadImage(f"A model tile would be {self.tile:.1f} image pixels wide: the image's resolution is "
                           "much coarser than the model's. Check the microns per pixel.")
        if self.tile > min(self.width, self.height):
            raise BadImage(f"The image ({self.width}x{self.height} px) is smaller than one model tile "
                           f"({self.tile:.0f} px at this resolution). Check the microns per pixel.")

    @property
    def cell(self) -> float:
        """Side of one map cell (the stride) in image pixels."""
        return self.tile / self.overlap

    @property
    def tile_px(self) -> int:
        return int(round(self.tile))

    @property
    def tile_rows(self) -> int:
        return int(math.floor((self.height - self.tile) / self.cell + 1e-9)) + 1

    @property
    def tile_cols(self) -> int:
        return int(math.floor((self.width - self.tile) / self.cell + 1e-9)) + 1

    @property
    def map_shape(self) -> tuple[int, int]:
        return self.tile_rows + self.overlap - 1, self.tile_cols + self.overlap - 1

    def tile_origin(self, row: int, col: int) -> tuple[int, int]:
        """(x, y) of the top-left image pixel of tile (row, col)."""
        return int(round(col * self.cell)), int(round(row * self.cell))

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "tile": self.tile, "overlap": self.overlap}


def _box_means(mask: np.ndarray, tops, lefts, sizes_y, sizes_x) -> np.ndarray:
    """Mean of ``mask`` over many boxes (integral image; boxes clipped to the mask)."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.float64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.float64), axis=1)
    y0 = np.clip(tops, 0, mask.shape[0])
    x0 = np.clip(lefts, 0, mask.shape[1])
    y1 = np.clip(np.maximum(tops + sizes_y, y0 + 1), 0, mask.shape[0])
    x1 = np.clip(np.maximum(lefts + sizes_x, x0 + 1), 0, mask.shape[1])
    area = np.maximum((y1 - y0) * (x1 - x0), 1)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return total / area


def cell_coverage(grid: Grid, mask: np.ndarray, factor: int) -> np.ndarray:
    """Fraction of tissue in every map cell, from the thumbnail mask (``factor`` image px per mask px)."""
    rows, cols = grid.map_shape
    edges_y = np.round(np.arange(rows + 1) * grid.cell / factor).astype(int)
    edges_x = np.round(np.arange(cols + 1) * grid.cell / factor).astype(int)
    top, left = np.meshgrid(edges_y[:-1], edges_x[:-1], indexing="ij")
    height, width = np.meshgrid(np.diff(edges_y), np.diff(edges_x), indexing="ij")
    return _box_means(mask.astype(np.float64), top, left, height, width)


def tiles_in_tissue(grid: Grid, coverage: np.ndarray, min_tissue: float, ring: bool = False) -> np.ndarray:
    """(row, col) of every tile whose mean cell coverage is at least ``min_tissue``, row-major.

    ``ring``: also every tile next to one of those (8 neighbours), so the model, not the colour
    threshold, decides tiles at the tissue's edge: fat whose lumens are as pale as glass is kept
    (a model with a background class calls true glass background, which is never tissue)."""
    from scipy import ndimage

    k = grid.overlap
    summed = np.zeros((grid.tile_rows, grid.tile_cols))
    for dy in range(k):
        for dx in range(k):
            summed += coverage[dy:dy + grid.tile_rows, dx:dx + grid.tile_cols]
    chosen = summed / (k * k) >= min_tissue
    if ring and chosen.any():
        chosen = ndimage.binary_dilation(chosen, structure=np.ones((3, 3), bool), iterations=k)
    rows, cols = np.nonzero(chosen)
    return np.stack([rows, cols], axis=1).astype(np.int32)


class MapAccumulator:
    """Sums of tile probabilities per cell; :meth:`probabilities` averages them."""

    def __init__(self, grid: Grid, classes: int):
        self.grid = grid
        self.sums = np.zeros((*grid.map_shape, classes), np.float32)
        self.counts = np.zeros(grid.map_shape, np.uint16)

    def add(self, tiles: np.ndarray, probabilities: np.ndarray) -> None:
        rows, cols = tiles[:, 0], tiles[:, 1]
        for dy in range(self.grid.overlap):
            for dx in range(self.grid.overlap):
                np.add.at(self.sums, (rows + dy, cols + dx), probabilities)
                np.add.at(self.counts, (rows + dy, cols + dx), 1)

    def probabilities(self) -> np.ndarray:
        """Mean probabilities per cell (rows x cols x classes); NaN where no tile was predicted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts[..., None] > 0, self.sums / self.counts[..., None], np.nan)
