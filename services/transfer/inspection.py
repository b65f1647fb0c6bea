"""Per-tile inspection: what each compared model predicts for one tile and where it looked."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from services.errors import UserFacingError
from services.images import decode_image, encode_png
from services.transfer import gradcam


@dataclass
class Tile:
    pixels: np.ndarray
    """RGB uint8 at the models' input size."""
    notes: list[str] = field(default_factory=list)
    """Conversions made on the way (mode, resizing), to show next to the tile."""


def prepare_tile(source: str | os.PathLike | bytes | io.BytesIO, size: tuple[int, int]) -> Tile:
    """Decode a tile safely and bring it to ``size`` = (height, width), noting every change."""
    decoded = decode_image(source)
    pixels, notes = decoded.pixels, list(decoded.notes)
    height, width = pixels.shape[:2]
    if (height, width) != tuple(size):
        pixels = np.asarray(Image.fromarray(pixels).resize((size[1], size[0]), Image.Resampling.BILINEAR))
        notes.append(f"resized from {width}x{height} to {size[1]}x{size[0]} px (the models' input size).")
    return Tile(pixels, notes)


def input_size(model) -> tuple[int, int]:
    height, width = model.input.shape[1:3]
    if height is None or width is None:
        raise UserFacingError(f"model {model.name} has no fixed input size.")
    return int(height), int(width)


def _as_input(pixels: np.ndarray) -> np.ndarray:
    """The models of the comparison take [0, 1] floats (they preprocess inside)."""
    return pixels.astype(np.float32) / 255.0


def probabilities(model, tile: Tile) -> np.ndarray:
    output = model(_as_input(tile.pixels)[None], training=False)
    if isinstance(output, (list, tuple, dict)):
        output = output["main"] if isinstance(output, dict) else output[0]
    return np.asarray(output)[0]


def gradcam_overlay(model, tile: Tile, class_index: int | None = None, layer_name: str | None = None) -> np.ndarray:
    """The tile with the model's Grad-CAM heatmap (predicted class by default) blended over it."""
    heatmap = gradcam.gradcam(model, _as_input(tile.pixels), layer_name, class_index)
    return gradcam.overlay(tile.pixels, heatmap)


def feature_map_mosaic(model, tile: Tile, layer_name: str, count: int = 12) -> np.ndarray:
    """The first ``count`` feature maps of ``layer_name`` for the tile (book ch. 3)."""
    return gradcam.feature_map_grid(gradcam.feature_maps(model, _as_input(tile.pixels), layer_name), count=count)


def gradcam_examples(named_models: list[tuple[str, object]], tile_paths: list[str]) -> list[tuple[str, bytes]]:
    """(caption, PNG) Grad-CAM overlays of a few tiles for every model, for the HTML report.

    A model that cannot be explained (no convolutional layer reachable) is skipped."""
    examples = []
    for path in tile_paths:
        for name, model in named_models:
            try:
                tile = prepare_tile(path, input_size(model))
                overlay = gradcam_overlay(model, tile)
            except UserFacingError:
                continue
            examples.append((f"{os.path.basename(path)} · {name}", encode_png(overlay)))
    return examples
