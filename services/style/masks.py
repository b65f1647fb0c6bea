"""Silhouettes and masking as book ch. 5 defines them.

A silhouette is a solid black shape on white, strictly 0/255. Masking an image with it makes
every pixel where the silhouette is white, white (``result[mask == 255] = 255``); the shape
keeps the image. An optional feathered edge blends over a few pixels instead of a hard cut.
Silhouettes can also be derived from a photo (Otsu threshold, or OpenCV GrabCut from a
rectangle around the object).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from services.errors import UserFacingError

WHITE, BLACK = 255, 0
THRESHOLD = 128


class BadMask(UserFacingError):
    """A silhouette that cannot be used (empty, full, wrong shape)."""


@dataclass
class MaskResult:
    mask: np.ndarray
    """uint8 HxW with only 0 (shape) and 255 (background)."""
    notes: list[str] = field(default_factory=list)


def to_grey(image: np.ndarray) -> np.ndarray:
    """HxW uint8 from a greyscale, RGB or RGBA array (alpha ignored; luma weights)."""
    array = np.asarray(image)
    if array.dtype == bool:
        return np.where(array, WHITE, BLACK).astype(np.uint8)
    if array.ndim == 3:
        rgb = array[..., :3].astype(np.float32)
        array = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


def validate_mask(image: np.ndarray, shape: tuple[int, int] | None = None) -> MaskResult:
    """A strictly binary 0/255 silhouette of size ``shape`` (height, width), with notes.

    Grey values are thresholded at 128 (noted); another size is resized with nearest neighbour
    (noted; no new grey values); an all-black or all-white mask raises :class:`BadMask`.
    """
    grey = to_grey(image)
    if grey.ndim != 2 or min(grey.shape) < 2:
        raise BadMask("a silhouette must be a 2-D image of at least 2x2 pixels.")
    notes: list[str] = []
    grey_pixels = int(np.count_nonzero((grey != BLACK) & (grey != WHITE)))
    if grey_pixels:
        notes.append(f"{grey_pixels:,} grey pixels ({grey_pixels / grey.size:.1%}) thresholded at {THRESHOLD} "
                     "to make the mask strictly black and white.")
    mask = np.where(grey >= THRESHOLD, WHITE, BLACK).astype(np.uint8)
    if shape is not None and tuple(mask.shape) != tuple(shape):
        notes.append(f"resized from {mask.shape[1]}x{mask.shape[0]} to {shape[1]}x{shape[0]} (nearest neighbour).")
        mask = np.asarray(Image.fromarray(mask).resize((shape[1], shape[0]), Image.Resampling.NEAREST))
    if not (mask == BLACK).any():
        raise BadMask("the silhouette is all white: there is no shape to keep. Use a black shape on white.")
    if not (mask == WHITE).any():
        raise BadMask("the silhouette is all black: nothing would be masked. Use a black shape on white.")
    return MaskResult(mask, notes)


def apply_mask(image: np.ndarray, mask: np.ndarray, *, feather: float = 0.0) -> np.ndarray:
    """Pixels where ``mask`` is white become white (the book's rule); the shape keeps ``image``.

    ``mask`` must already be valid and the image's size (see :func:`validate_mask`).
    ``feather`` > 0 blends the edge over about that many pixels (Gaussian sigma).
    """
    if mask.shape != image.shape[:2]:
        raise BadMask(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}.")
    if feather <= 0:
        result = image.copy()
        result[mask == WHITE] = WHITE
        return result
    import cv2

    alpha = cv2.GaussianBlur((mask == WHITE).astype(np.float32), (0, 0), sigmaX=float(feather))[..., None]
    blended = image.astype(np.float32) * (1.0 - alpha) + WHITE * alpha
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _shape_is_dark(binary: np.ndarray) -> bool:
    """Whether the dark class is the object: the background is the class that owns the border."""
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    return border.mean() >= 0.5


def otsu_silhouette(image: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """Black shape on white from Otsu's threshold; the class touching the border is background."""
    import cv2

    grey = to_grey(image)
    _, binary = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    shape = (binary == 0) if _shape_is_dark(binary) else (binary == 1)
    if invert:
        shape = ~shape
    return np.where(shape, BLACK, WHITE).astype(np.uint8)


def grabcut_silhouette(image: np.ndarray, rectangle: tuple[int, int, int, int], *, iterations: int = 5) -> np.ndarray:
    """Black shape on white from OpenCV GrabCut, started from ``rectangle`` (x, y, width, height)
    around the object. Raises :class:`BadMask` if the rectangle is empty or covers the image."""
    import cv2

    height, width = image.shape[:2]
    x, y, w, h = (int(v) for v in rectangle)
    x, y = max(0, x), max(0, y)
    w, h = min(w, width - x), min(h, height - y)
    if w < 2 or h < 2 or (w >= width and h >= height):
        raise BadMask("draw the GrabCut rectangle around the object, inside the picture (not the whole picture).")
    labels = np.zeros((height, width), np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(np.asarray(image)[..., :3][..., ::-1])
    cv2.grabCut(bgr, labels, (x, y, w, h), background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    shape = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return np.where(shape, BLACK, WHITE).astype(np.uint8)


def mask_preview(mask: np.ndarray) -> np.ndarray:
    """The mask as an RGB image for display."""
    return np.repeat(mask[..., None], 3, axis=2)
