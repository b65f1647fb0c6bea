"""The downloadable forms of a tissue map: overlay PNG, label TIFF, tile CSV, QuPath GeoJSON.

Class colours are fixed per class name (Kather's eight classes have their own, other names take
a palette colour by position), so every map, legend and report uses the same colours.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from services.csv_files import csv_bytes
from services.tissuemap.geojson import feature_collection
from services.tissuemap.maps import UNCERTAIN, UNCERTAIN_NAME, TissueMap

KATHER_COLOURS = {
    "TUMOR": (214, 39, 40), "STROMA": (255, 152, 150), "COMPLEX": (148, 103, 189), "LYMPHO": (31, 119, 180),
    "DEBRIS": (140, 86, 75), "MUCOSA": (44, 160, 44), "ADIPOSE": (255, 221, 87), "EMPTY": (190, 190, 190),
}
PALETTE = [(23, 190, 207), (227, 119, 194), (188, 189, 34), (255, 127, 14), (127, 127, 127), (57, 59, 121),
           (99, 121, 57), (140, 109, 49), (132, 60, 57), (123, 65, 115)]
UNCERTAIN_COLOUR = (90, 90, 90)
SYNTHETIC_NOTE = "MODEL TRAINED ON SYNTHETIC DATA: not a statement about real tissue."


def class_colours(classes: list[str]) -> dict[str, tuple[int, int, int]]:
    """Colour of every class, and of the uncertain cells."""
    colours = {UNCERTAIN_NAME: UNCERTAIN_COLOUR}
    for index, name in enumerate(classes):
        key = str(name).upper().split("_")[-1]
        colours[name] = KATHER_COLOURS.get(key, PALETTE[index % len(PALETTE)])
    return colours


def cells_at(cells: np.ndarray, cell: float, height: int, width: int, factor: float, fill,
             origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A per-cell array resampled to an image of ``height`` x ``width`` px (``factor`` image px each)
    whose top-left pixel is image pixel ``origin`` (x, y): the whole image's thumbnail, or a region."""
    step = cell / factor
    rows = np.floor((origin[1] / factor + np.arange(height)) / step).astype(int)
    cols = np.floor((origin[0] / factor + np.arange(width)) / step).astype(int)
    inside_rows = (rows >= 0) & (rows < cells.shape[0])
    inside_cols = (cols >= 0) & (cols < cells.shape[1])
    out = np.full((height, width), fill, cells.dtype)
    out[np.ix_(inside_rows, inside_cols)] = cells[np.ix_(rows[inside_rows], cols[inside_cols])]
    return out


def labels_at(tissue_map: TissueMap, height: int, width: int, factor: float,
              origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The class map resampled to an image of ``height`` x ``width`` px (``factor`` image px each)."""
    return cells_at(tissue_map.labels, tissue_map.grid.cell, height, width, factor, -1, origin)


HEAT_STOPS = np.array([[48, 18, 59], [40, 120, 220], [30, 200, 160], [240, 220, 50], [220, 40, 20]], np.float32)
"""Colour ramp of value maps (confidence, entropy, class probability): 0 dark blue ... 1 red."""


def heat_overlay(thumbnail: np.ndarray, factor: float, tissue_map: TissueMap, values: np.ndarray, *,
                 opacity: float = 0.6, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The thumbnail (or a region at ``origin``) with a per-cell value map in [0, 1] blended in
    (NaN cells left as they are)."""
    resampled = cells_at(values.astype(np.float32), tissue_map.grid.cell, thumbnail.shape[0], thumbnail.shape[1],
                         factor, np.nan, origin)
    known = ~np.isnan(resampled)
    position = np.clip(np.nan_to_num(resampled), 0, 1) * (len(HEAT_STOPS) - 1)
    low = np.minimum(position.astype(int), len(HEAT_STOPS) - 2)
    weight = (position - low)[..., None]
    colours = HEAT_STOPS[low] * (1 - weight) + HEAT_STOPS[low + 1] * weight
    alpha = np.where(known, float(opacity), 0.0)[..., None]
    return (thumbnail.astype(np.float32) * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def overlay(thumbnail: np.ndarray, factor: float, tissue_map: TissueMap, *, opacity: float = 0.45,
            visible: list[str] | None = None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The thumbnail (or a region at ``origin``) with the class map blended in (only ``visible``
    classes; all by default)."""
    labels = labels_at(tissue_map, thumbnail.shape[0], thumbnail.shape[1], factor, origin)
    colours = class_colours(tissue_map.classes)
    # row 0 background, 1.. the classes, the last row the uncertain cells (label -2 + 1 = -1)
    lookup = np.zeros((len(tissue_map.classes) + 2, 3), np.float32)
    shown = np.zeros(len(tissue_map.classes) + 2, bool)
    for index, name in enumerate(tissue_map.classes):
        lookup[index + 1] = colours[name]
        shown[index + 1] = visible is None or name in visible
    lookup[-1], shown[-1] = UNCERTAIN_COLOUR, True
    index = labels.astype(np.int32) + 1
    alpha = np.where(shown[index], float(opacity), 0.0)[..., None]
    blended = thumbnail.astype(np.float32) * (1 - alpha) + lookup[index] * alpha
    return blended.round().astype(np.uint8)


def label_tiff(tissue_map: TissueMap) -> bytes:
    """uint8 label image, one pixel per map cell: 0 background, i + 1 for class i (legend in the
    description), with its resolution so viewers scale it onto the image."""
    import tifffile

    labels = (tissue_map.labels + 1).astype(np.uint8)  # uncertain (-2) wraps to 255
    cell_um = tissue_map.grid.cell * tissue_map.mpp
    legend = {"0": "background (not mapped)", **{str(i + 1): c for i, c in enumerate(tissue_map.classes)}}
    if tissue_map.min_confidence > 0:
        legend["255"] = f"{UNCERTAIN_NAME} (confidence under {tissue_map.min_confidence:g})"
    description = json.dumps({"tissue_map_labels": legend, "cell_px": tissue_map.grid.cell,
                              "synthetic_model": bool(tissue_map.meta.get("synthetic"))})
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels, compression="zlib", description=description,
                     resolution=(1e4 / cell_um, 1e4 / cell_um), resolutionunit="CENTIMETER")
    return buffer.getvalue()


def tile_frame(tissue_map: TissueMap) -> pd.DataFrame:
    """One row per predicted tile: x, y, width, height (image px), class, confidence (calibrated),
    with a confidence threshold whether the tile is ``uncertain`` (under it: the map draws such
    cells apart), probabilities."""
    grid = tissue_map.grid
    origins = np.array([grid.tile_origin(r, c) for r, c in tissue_map.tiles.tolist()], int).reshape(-1, 2)
    probabilities = tissue_map.tile_probabilities
    frame = pd.DataFrame({"x": origins[:, 0], "y": origins[:, 1], "width": grid.tile_px, "height": grid.tile_px})
    frame["class"] = [tissue_map.classes[i] for i in probabilities.argmax(axis=1)] if len(frame) else []
    frame["confidence"] = probabilities.max(axis=1) if len(frame) else []
    if tissue_map.min_confidence > 0:
        frame["uncertain"] = frame["confidence"] < tissue_map.min_confidence
    for index, name in enumerate(tissue_map.classes):
        frame[f"p_{name}"] = probabilities[:, index].round(5)
    if tissue_map.meta.get("synthetic"):
        frame["note"] = "synthetic-data model"
    return frame


def tiles_csv(tissue_map: TissueMap) -> bytes:
    return csv_bytes(tile_frame(tissue_map))


def geojson_bytes(tissue_map: TissueMap) -> bytes:
    """QuPath-importable regions, in full-resolution pixel coordinates."""
    scale = tissue_map.grid.cell * float(tissue_map.meta.get("downsample", 1.0))
    labels = tissue_map.labels
    labels = np.where(labels == UNCERTAIN, len(tissue_map.classes), labels)  # uncertain cells: their own regions
    colours = class_colours(tissue_map.classes)
    collection = feature_collection(labels, [*tissue_map.classes, UNCERTAIN_NAME], colours,
                                    scale=scale, synthetic=bool(tissue_map.meta.get("synthetic")))
    return json.dumps(collection).encode()


def areas_frame(tissue_map: TissueMap) -> pd.DataFrame:
    """The areas table (``percent`` of tissue empty for background classes, which are not tissue)."""
    frame = pd.DataFrame(tissue_map.areas())
    frame["percent"] = (pd.to_numeric(frame["fraction"]) * 100).round(2)
    return frame
