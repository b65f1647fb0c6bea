"""CSV injection (issue 17): no CSV the product writes holds a cell a spreadsheet runs as a formula."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from services import csv_files
from services.tissuemap import job, outputs
from services.tissuemap.grid import Grid
from services.tissuemap.maps import TissueMap
from services.tissuemap.models import ModelChoice

HOSTILE = ['=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "'=already quoted"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _assert_no_formula(data: bytes) -> None:
    for row in _cells(data):
        for cell in row:
            if cell.startswith(FORMULA_STARTS):
                float(cell)  # only a plain number may start so (-0.5)


def test_text_cells_are_neutralised_numbers_stay_numbers_and_reading_back_restores(tmp_path):
    frame = pd.DataFrame({"class": HOSTILE, "score": [-0.5] * len(HOSTILE), "note": ["-0.25", "ok", *["x"] * 5]})
    data = csv_files.csv_bytes(frame.rename(columns={"note": "=note"}))
    _assert_no_formula(data)
    rows = _cells(data)
    assert rows[0] == ["class", "score", "'=note"]
    assert rows[1][0] == "'" + HOSTILE[0] and rows[1][1] == "-0.5" and rows[1][2] == "-0.25"
    assert rows[7][0] == "''=already quoted"
    path = csv_files.write_csv(frame, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(csv_files.read_csv(path), frame)


def test_tissue_map_areas_and_tiles_csv_neutralise_hostile_class_names(tmp_path):
    grid = Grid(120, 90, 30)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(len(HOSTILE)), size=grid.map_shape).astype(np.float32)
    tiles = np.argwhere(np.ones(grid.map_shape, bool)).astype(np.int32)
    tissue_map = TissueMap(probabilities, np.ones(grid.map_shape), grid, HOSTILE, 0.5, {"image": "x"}, tiles,
                           probabilities[tiles[:, 0], tiles[:, 1]])
    choice = ModelChoice("run", "model.keras", "model", HOSTILE)
    thumbnail = np.full((90, 120, 3), 200, np.uint8)
    folder = job.write_outputs(tmp_path, tissue_map, thumbnail, 1, np.ones((90, 120), bool), choice)
    for name in ("areas.csv", "tiles.csv"):
        data = (folder / name).read_bytes()
        _assert_no_formula(data)
        assert "'" + HOSTILE[1] in data.decode()
    assert outputs.tiles_csv(tissue_map) == (folder / "tiles.csv").read_bytes()
