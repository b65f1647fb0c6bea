"""A finished tissue map: per-class probabilities per cell, and what is derived from them.

The argmax class map, a confidence map (max probability, and normalised entropy), per-class
areas (px, mm2 and fraction of the detected tissue) and the tumour-stroma ratio
(:mod:`services.tissuemap.tsr`). One area definition everywhere: the area of a class is the area
of the map cells labelled with it, exactly what the label TIFF and the GeoJSON polygons show
(the tissue mask, holes filled, decides which cells are mapped). Background classes (EMPTY,
BACK) are listed with their area but are never a share of tissue. Saved as one
``.npz`` (no pickles) plus JSON metadata in the job folder, so the page reads it without
TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services import untrusted_json
from services.tissuemap.grid import Grid
from services.tissuemap import tsr

MAP_FILE = "map.npz"
META_FILE = "map.json"
UNCERTAIN, UNCERTAIN_NAME = -2, "uncertain"
"""Label and name of cells below the confidence threshold: drawn and counted apart."""
BACKGROUND_NAMES = ("EMPTY", "BACK", "BACKGROUND")
"""Classes of empty glass or background: mapped and listed, never a share of tissue."""


def is_background(name: str) -> bool:
    return str(name).upper().split("_")[-1] in BACKGROUND_NAMES


def has_background(classes: list[str]) -> bool:
    """Whether a model can call a tile background (then tiles at the tissue's edge are given to it)."""
    return any(is_background(name) for name in classes)


@dataclass
class TissueMap:
    probabilities: np.ndarray
    """rows x cols x classes float32; NaN where no tile was predicted."""
    coverage: np.ndarray
    """rows x cols: fraction of tissue in each cell (from the tissue mask)."""
    grid: Grid
    classes: list[str]
    mpp: float
    meta: dict
    tiles: np.ndarray
    """(row, col) of every predicted tile (N x 2)."""
    tile_probabilities: np.ndarray
    """The model's probabilities of every predicted tile (N x classes)."""

    @property
    def predicted(self) -> np.ndarray:
        return ~np.isnan(self.probabilities[..., 0])

    @property
    def argmax_labels(self) -> np.ndarray:
        """Most probable class per cell, -1 where nothing was predicted (background)."""
        filled = np.nan_to_num(self.probabilities, nan=-1.0)
        return np.where(self.predicted, filled.argmax(axis=2), -1).astype(np.int16)

    @property
    def min_confidence(self) -> float:
        """Cells whose (calibrated) confidence is below this are "uncertain" (0: none)."""
        value = self.meta.get("min_confidence")
        return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else 0.0

    @property
    def labels(self) -> np.ndarray:
        """Class index per cell, -1 where nothing was predicted (background), :data:`UNCERTAIN`
        where the confidence is under :attr:`min_confidence`."""
        labels = self.argmax_labels
        if self.min_confidence > 0:
            labels[self.predicted & (np.nan_to_num(self.confidence, nan=1.0) < self.min_confidence)] = UNCERTAIN
        return labels

    @property
    def confidence(self) -> np.ndarray:
        """Max probability per cell (NaN on background)."""
        return np.where(self.predicted, np.nan_to_num(self.probabilities, nan=0).max(axis=2), np.nan)

    @property
    def entropy(self) -> np.ndarray:
        """Entropy of the probabilities divided by log(classes): 0 certain, 1 uniform (NaN on background)."""
        p = np.clip(np.nan_to_num(self.probabilities, nan=1.0), 1e-12, 1.0)
        value = -(p * np.log(p)).sum(axis=2) / np.log(max(len(self.classes), 2))
        return np.where(self.predicted, value, np.nan)

    def areas(self) -> list[dict]:
        """Per class: cells, area in image px and mm2 (cells x cell area: what the label TIFF and
        the GeoJSON show), and the fraction of the mapped tissue (None for background classes,
        which are not tissue). With a confidence threshold, an ``uncertain`` row counts the cells
        under it apart; the tissue fractions (uncertain included) sum to 1."""
        labels = self.labels
        cell_px = self.grid.cell ** 2
        names = list(self.classes) + ([UNCERTAIN_NAME] if self.min_confidence > 0 else [])
        indices = list(range(len(self.classes))) + ([UNCERTAIN] if self.min_confidence > 0 else [])
        cells = [int((labels == index).sum()) for index in indices]
        tissue_cells = sum(n for n, name in zip(cells, names) if not is_background(name))
        rows = []
        for name, count, index in zip(names, cells, indices):
            area = count * cell_px
            background = index != UNCERTAIN and is_background(name)
            rows.append({"class": name, "cells": count, "area_px": area, "area_mm2": area * self.mpp ** 2 / 1e6,
                         "background": background,
                         "fraction": None if background else (count / tissue_cells if tissue_cells else 0.0)})
        return rows

    def tumour_stroma(self) -> dict | None:
        """The tumour-stroma ratio over every mapped cell's most probable class with its interval and
        verdict (:func:`services.tissuemap.tsr.estimate`),
        corrected with the held-out confusion matrix of the model card in the map's metadata."""
        if "_tumour_stroma" not in self.__dict__:  # a seeded bootstrap: the same every time, computed once
            card = self.meta.get("model_card") if isinstance(self.meta.get("model_card"), dict) else {}
            labels = self.argmax_labels  # every mapped cell: the held-out confusion matrix covers all tiles
            self.__dict__["_tumour_stroma"] = tsr.estimate(labels[labels >= 0], self.classes,
                                                           card.get("test_confusion_matrix"))
        return self.__dict__["_tumour_stroma"]

    def save(self, folder: Path) -> None:
        np.savez_compressed(folder / MAP_FILE, probabilities=self.probabilities.astype(np.float32),
                            coverage=self.coverage.astype(np.float32), tiles=self.tiles.astype(np.int32),
                            tile_probabilities=self.tile_probabilities.astype(np.float32))
        meta = {**self.meta, "grid": self.grid.to_dict(), "classes": self.classes, "mpp": self.mpp}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))


def load_map(folder: Path) -> TissueMap:
    meta = untrusted_json.read(Path(folder) / META_FILE, what="the map's metadata", allow_nan=True)
    with np.load(Path(folder) / MAP_FILE, allow_pickle=False) as arrays:
        values = {name: arrays[name] for name in ("probabilities", "coverage", "tiles", "tile_probabilities")}
    return TissueMap(grid=Grid(**meta["grid"]), classes=list(meta["classes"]), mpp=float(meta["mpp"]), meta=meta,
                     **values)
