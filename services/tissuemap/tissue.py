"""Tissue detection on a thumbnail: stained tissue is coloured, glass and background are not.

Stained pixels are found by colour; holes they enclose (fat lumens) are tissue too (see
:func:`tissue_mask`). The score of a pixel is its colour saturation (max - min of R, G, B, 0..255): H&E-stained
tissue is pink to purple, empty glass is near white, scanner margins are white or black, all
with little saturation. Pixels whose score is above the threshold are tissue; the default
threshold comes from Otsu's method on the thumbnail, bounded (see :data:`MIN_THRESHOLD`). The page shows the mask and lets the user move the threshold.
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 12
PALE_HOLE = 12
"""Holes in the stained mask paler than this (mean saturation) are lumens or glass: filled when
enclosed by tissue (real fat lumens: 2-6; real empty glass: 2-3)."""
MIN_THRESHOLD, MAX_THRESHOLD = 8, 16
"""Otsu's threshold is clipped to this range: an all-glass image has no real tissue/glass split, and
fat (adipose tissue: empty cells between thin membranes) has only 15-30 % of its pixels above
a saturation of 16 (measured on real Kather 2016 tiles; glass: under 1 %)."""


def saturation(pixels: np.ndarray) -> np.ndarray:
    """max - min over the colour channels (uint8 H x W; OpenCV's per-channel max and min, about
    20x faster than numpy's reductions over the last axis)."""
    import cv2

    red, green, blue = cv2.split(np.ascontiguousarray(pixels[..., :3], np.uint8))
    return cv2.subtract(cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue))


def otsu_threshold(values: np.ndarray) -> int:
    histogram = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    if total == 0:
        return DEFAULT_THRESHOLD
    levels = np.arange(256)
    weight_low = np.cumsum(histogram)
    weight_high = total - weight_low
    mean_low = np.cumsum(histogram * levels)
    mean_total = mean_low[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_total * weight_low / total - mean_low) ** 2 / (weight_low * weight_high / total)
    between = np.nan_to_num(between, nan=0.0, posinf=0.0)
    return int(np.argmax(between))


def suggested_threshold(thumbnail: np.ndarray) -> int:
    """Otsu's threshold of the saturation, clipped to [MIN_THRESHOLD, MAX_THRESHOLD]."""
    return int(np.clip(otsu_threshold(saturation(thumbnail)), MIN_THRESHOLD, MAX_THRESHOLD))


def tissue_mask(thumbnail: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of tissue pixels of the thumbnail: stained pixels, and the pale holes they
    enclose. Fat (adipose tissue) is stained membranes around empty lumens: a lumen enclosed by
    tissue is tissue, while glass around the tissue (reaching the image border) stays background.
    Only pale holes (mean saturation at most :data:`PALE_HOLE`, like glass or a lumen) are
    filled: stained tissue under a high threshold stays out, so the threshold keeps its meaning.
    A one-pixel closing first seals membranes broken by the thumbnail's downsampling.

    OpenCV's morphology and connected components (same result as scipy.ndimage's closing, hole
    filling and labelling, about 3x faster: 0.03 vs 0.08 s for a 1250 px thumbnail): holes are the
    4-connected background components that do not touch the image border."""
    import cv2

    score = saturation(thumbnail)
    stained = (score > threshold).astype(np.uint8)
    closed = cv2.morphologyEx(stained, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8),
                              borderType=cv2.BORDER_CONSTANT, borderValue=0) | stained
    count, labels = cv2.connectedComponents(1 - closed, connectivity=4)  # label 0: the closed mask itself
    if count <= 1:
        return closed.astype(bool)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    flat = labels.ravel()
    sums = np.bincount(flat, weights=score.ravel(), minlength=count)
    sizes = np.bincount(flat, minlength=count)
    fill = sums <= PALE_HOLE * sizes  # mean saturation at most PALE_HOLE
    fill[0] = False
    fill[border] = False
    return closed.astype(bool) | fill[labels]


def mask_preview(thumbnail: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The thumbnail with skipped background tinted blue (what the page shows)."""
    preview = thumbnail.astype(np.float32)
    tint = np.array([40, 90, 200], np.float32)
    preview[~mask] = preview[~mask] * 0.45 + tint * 0.55
    return preview.round().astype(np.uint8)
