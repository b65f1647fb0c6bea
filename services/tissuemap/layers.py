"""What the tissue-map page shows of a finished map: the layers a person can lay over the image
(classes, confidence, entropy, one class's probability), the figure with one clickable square
per tile, the bar chart of areas, and the tumour-stroma ratio to print."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from services.tissuemap import outputs
from services.tissuemap.maps import TissueMap

CLASS_MAP, CONFIDENCE, ENTROPY = "Class map", "Confidence (max probability)", "Uncertainty (entropy)"
PROBABILITY_OF = "Probability of "
FIGURE_HEIGHT = 620
SCATTERGL_ABOVE = 3000
"""More tiles than this are drawn with WebGL."""


def layer_names(classes: list[str]) -> list[str]:
    return [CLASS_MAP, CONFIDENCE, ENTROPY] + [f"{PROBABILITY_OF}{c}" for c in classes]


def layer_image(tissue_map: TissueMap, pixels: np.ndarray, layer: str, opacity: float, visible: list[str], *,
                factor: float | None = None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The thumbnail (or a detail region at ``origin``, ``factor`` image px per pixel) with the
    chosen layer: classes (only the ``visible`` ones), confidence, entropy or one class's probability."""
    factor = float(tissue_map.meta.get("thumbnail_factor", 1)) if factor is None else factor
    if layer == CLASS_MAP:
        return outputs.overlay(pixels, factor, tissue_map, opacity=opacity, visible=visible, origin=origin)
    if layer == CONFIDENCE:
        values = tissue_map.confidence
    elif layer == ENTROPY:
        values = tissue_map.entropy
    else:
        values = tissue_map.probabilities[..., tissue_map.classes.index(layer.removeprefix(PROBABILITY_OF))]
    return outputs.heat_overlay(pixels, factor, tissue_map, values, opacity=opacity, origin=origin)


def overlay_figure(tissue_map: TissueMap, image: np.ndarray) -> go.Figure:
    """The shown image with one invisible square per tile (trace 1), as large as the tile is on
    screen at the initial zoom (the figure is :data:`FIGURE_HEIGHT` px high at most): a click
    anywhere on a tile selects it."""
    factor = float(tissue_map.meta.get("thumbnail_factor", 1))
    figure = go.Figure(go.Image(z=image, hoverinfo="skip"))
    grid = tissue_map.grid
    origins = [grid.tile_origin(r, c) for r, c in tissue_map.tiles.tolist()]
    xs = [(x + grid.tile / 2) / factor for x, _ in origins]
    ys = [(y + grid.tile / 2) / factor for _, y in origins]
    labels = [tissue_map.classes[i] for i in tissue_map.tile_probabilities.argmax(axis=1)]
    scatter = go.Scattergl if len(xs) > SCATTERGL_ABOVE else go.Scatter
    tile_on_screen = grid.tile / factor * FIGURE_HEIGHT / max(image.shape[0], 1)
    figure.add_trace(scatter(x=xs, y=ys, mode="markers", text=labels,
                             marker={"size": max(8.0, tile_on_screen), "symbol": "square", "opacity": 0.02},
                             hovertemplate="%{text}<extra></extra>", name="tiles"))
    figure.update_layout(margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=FIGURE_HEIGHT, dragmode="pan",
                         showlegend=False)
    height, width = image.shape[:2]
    figure.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    figure.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    return figure


def areas_figure(areas: pd.DataFrame, colours: dict) -> go.Figure:
    """Share of the tissue per class, in the map's colours."""
    bars = go.Figure(go.Bar(x=areas["class"], y=areas["percent"],
                            marker_color=[f"rgb{colours[c]}" for c in areas["class"]]))
    bars.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0}, yaxis_title="% of tissue")
    return bars


def map_ratio(result: dict | None, tissue_map: TissueMap) -> dict | None:
    """The tumour-stroma ratio the job computed (its bootstrap takes a moment), else computed now."""
    saved = (result or {}).get("tumour_stroma")
    return saved if isinstance(saved, dict) and "defined" in saved else tissue_map.tumour_stroma()
