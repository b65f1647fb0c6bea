"""Colour analysis of tiles: RGB/HSV histograms, mean colour, and H&E stain separation.

Stain separation is Ruifrok & Johnston's colour deconvolution (Anal Quant Cytol Histol 2001):
by Beer-Lambert, the optical density OD = -log10(I / I0) of each pixel is a linear mix of the
stain vectors (rows of :data:`RGB_FROM_HED`, the standard H&E-DAB matrix, each normalised),
so ``concentrations = OD @ inv(RGB_FROM_HED)``. Everything here is plain numpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from services.errors import BadImage
from services.images import decode_image

STAINS = ("Hematoxylin", "Eosin", "DAB")
_RAW_VECTORS = np.array([[0.65, 0.70, 0.29],   # hematoxylin
                         [0.07, 0.99, 0.11],   # eosin
                         [0.27, 0.57, 0.78]])  # DAB
RGB_FROM_HED = _RAW_VECTORS / np.linalg.norm(_RAW_VECTORS, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
BACKGROUND = 255.0
"""I0: the intensity of the light with no tissue (8-bit white)."""
CHANNELS = {"rgb": ("red", "green", "blue"), "hsv": ("hue", "saturation", "value")}


def optical_density(pixels: np.ndarray) -> np.ndarray:
    """OD per channel of an RGB uint8 image (0 for white; 1 intensity unit floor avoids log 0)."""
    intensity = np.maximum(pixels.astype(np.float64), 1.0)
    return -np.log10(intensity / BACKGROUND)


def rgb_to_hed(pixels: np.ndarray) -> np.ndarray:
    """Stain concentrations (H, E, DAB), H x W x 3 float, in optical-density units."""
    return optical_density(pixels) @ HED_FROM_RGB


def hed_to_rgb(concentrations: np.ndarray) -> np.ndarray:
    """The RGB uint8 image that given stain concentrations produce (inverse of rgb_to_hed)."""
    od = np.asarray(concentrations, dtype=np.float64) @ RGB_FROM_HED
    return np.clip(BACKGROUND * 10.0 ** (-od), 0, 255).round().astype(np.uint8)


def single_stain_images(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """The tile as each stain alone would colour it (H, E, DAB), for display."""
    hed = rgb_to_hed(pixels)
    images = {}
    for i, name in enumerate(STAINS):
        only = np.zeros_like(hed)
        only[..., i] = np.clip(hed[..., i], 0, None)
        images[name] = hed_to_rgb(only)
    return images


def to_hsv(pixels: np.ndarray) -> np.ndarray:
    """HSV uint8 (each channel 0..255, as Pillow scales it)."""
    return np.asarray(Image.fromarray(pixels).convert("HSV"))


def channel_histograms(tiles: Iterable[np.ndarray], space: str = "rgb", bins: int = 32) -> pd.DataFrame:
    """Fraction of pixels per bin and channel over all ``tiles``: columns channel, value, fraction."""
    counts = np.zeros((3, bins))
    edges = np.linspace(0, 256, bins + 1)
    for pixels in tiles:
        values = to_hsv(pixels) if space == "hsv" else pixels
        for c in range(3):
            counts[c] += np.histogram(values[..., c], bins=edges)[0]
    fractions = counts / max(counts[0].sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return pd.DataFrame([{"channel": name, "value": centres[b], "fraction": fractions[c, b]}
                         for c, name in enumerate(CHANNELS[space]) for b in range(bins)])


def stain_histograms(stain_maps: Iterable[np.ndarray], bins: int = 40, max_od: float = 1.2) -> pd.DataFrame:
    """Distribution of per-pixel hematoxylin and eosin concentration over ``stain_maps``
    (outputs of :func:`rgb_to_hed`): stain, value, fraction."""
    edges = np.linspace(0, max_od, bins + 1)
    counts = np.zeros((2, bins))
    for hed in stain_maps:
        for s in range(2):
            counts[s] += np.histogram(np.clip(hed[..., s], 0, max_od), bins=edges)[0]
    fractions = counts / max(counts[0].sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return pd.DataFrame([{"stain": STAINS[s], "value": centres[b], "fraction": fractions[s, b]}
                         for s in range(2) for b in range(bins)])


def hex_colour(rgb: Iterable[float]) -> str:
    return "#" + "".join(f"{int(round(v)):02x}" for v in rgb)


@dataclass
class ColourProfile:
    """Per-class colour statistics of a sample of tiles."""

    histograms: pd.DataFrame
    """label, space ("rgb"/"hsv"), channel, value, fraction."""
    means: pd.DataFrame
    """label, red, green, blue, hex, tiles."""
    stains: pd.DataFrame
    """label, stain, value, fraction (per-pixel concentration distributions)."""
    tile_stains: pd.DataFrame
    """label, relpath, hematoxylin, eosin (mean concentration per tile)."""


ANALYSIS_SIDE = 512
"""Tiles larger than this on a side are analysed downscaled (bounded memory per class; the
150 px Kather tiles are analysed as they are)."""


def sample_per_class(frame: pd.DataFrame, per_class: int, seed: int = 0) -> pd.DataFrame:
    rows = frame[frame["problem"].isna()]
    return rows.sample(frac=1.0, random_state=seed).groupby("label_index").head(per_class)


def class_colour_profile(frame: pd.DataFrame, per_class: int = 40, seed: int = 0, bins: int = 32) -> ColourProfile:
    """Colour statistics per class from up to ``per_class`` random usable tiles of each."""
    histograms, means, stains, tile_stains = [], [], [], []
    for (label_index, label), group in sample_per_class(frame, per_class, seed).groupby(["label_index", "label"]):
        tiles, kept = [], []
        for row in group.itertuples():
            try:
                tiles.append(decode_image(row.path, max_side=ANALYSIS_SIDE).pixels)
                kept.append(row.relpath)
            except BadImage:
                continue  # changed since indexing; the quality report shows it next time
        if not tiles:
            continue
        for space in ("rgb", "hsv"):
            histograms.append(channel_histograms(tiles, space, bins).assign(label=label, space=space))
        mean = np.mean([t.reshape(-1, 3).mean(axis=0) for t in tiles], axis=0)
        means.append({"label": label, "red": mean[0], "green": mean[1], "blue": mean[2],
                      "hex": hex_colour(mean), "tiles": len(tiles)})
        stain_maps = [rgb_to_hed(pixels) for pixels in tiles]
        stains.append(stain_histograms(stain_maps).assign(label=label))
        for relpath, hed in zip(kept, stain_maps):
            mean = np.clip(hed, 0, None).reshape(-1, 3).mean(axis=0)
            tile_stains.append({"label": label, "relpath": relpath, "hematoxylin": mean[0], "eosin": mean[1]})
    return ColourProfile(
        histograms=pd.concat(histograms, ignore_index=True) if histograms else pd.DataFrame(),
        means=pd.DataFrame(means), stains=pd.concat(stains, ignore_index=True) if stains else pd.DataFrame(),
        tile_stains=pd.DataFrame(tile_stains),
    )
