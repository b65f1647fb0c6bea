"""Safe image decoding shared by every page: size limits, odd modes, EXIF orientation.

Pillow is the only decoder used for user files. Every refusal raises :class:`BadImage` with a
message a lab member can act on; conversions that change the data are reported as notes.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from services.config import get_settings
from services.errors import BadImage

MIN_SIDE = 2
"""Images smaller than this on either side are refused (a 1x1 image carries no tissue)."""


@dataclass
class DecodedImage:
    pixels: np.ndarray
    """uint8 array, H x W x 3, RGB."""
    original_mode: str
    original_size: tuple[int, int]
    """(width, height) as stored in the file."""
    notes: list[str] = field(default_factory=list)
    """What was converted on the way (mode, alpha, orientation, downscaling)."""


def _open(source: str | os.PathLike | bytes | io.BytesIO, max_pixels: int) -> Image.Image:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    name = getattr(source, "name", None) or (str(source) if not isinstance(source, io.IOBase) else "upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise BadImage(
                    f"{Path(name).name}: {width}x{height} pixels is more than the limit of "
                    f"{max_pixels:,} pixels (DASHBOARD_MAX_IMAGE_PIXELS); refused as a possible "
                    "decompression bomb."
                )
            image.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImage(f"{Path(name).name}: refused as a possible decompression bomb ({error}).") from error
    except FileNotFoundError as error:
        raise BadImage(f"{name}: file not found.") from error
    except Exception as error:  # Pillow raises many types for corrupt data
        raise BadImage(f"{Path(name).name}: not a readable image ({type(error).__name__}: {error}).") from error
    return image


def _to_uint8_rgb(image: Image.Image, notes: list[str]) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image).astype(np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
        notes.append(f"{mode} image scaled to 8 bits per channel (range {low:g}..{high:g}).")
        grey = scaled.round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("transparency flattened onto white.")
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode != "RGB":
        notes.append(f"{mode} image converted to RGB.")
    return np.asarray(image.convert("RGB"))


def decode_image(
    source: str | os.PathLike | bytes | io.BytesIO,
    *,
    max_pixels: int | None = None,
    min_side: int = MIN_SIDE,
    max_side: int | None = None,
    honour_exif: bool = True,
) -> DecodedImage:
    """Decode ``source`` into an RGB uint8 array, or raise :class:`BadImage`.

    ``max_side`` downscales (with a note) instead of refusing; ``max_pixels`` refuses.
    """
    limit = max_pixels or get_settings().max_image_pixels
    image = _open(source, limit)
    original_mode, original_size = image.mode, image.size
    notes: list[str] = []
    if min(image.size) < min_side:
        raise BadImage(
            f"image of {image.size[0]}x{image.size[1]} pixels is too small (at least "
            f"{min_side}x{min_side} needed)."
        )
    if honour_exif and _has_orientation(image):
        image = ImageOps.exif_transpose(image)
        notes.append("rotated according to its EXIF orientation.")
    pixels = _to_uint8_rgb(image, notes)
    if max_side and max(pixels.shape[:2]) > max_side:
        pixels = resize_longest_side(pixels, max_side)
        notes.append(
            f"downscaled from {original_size[0]}x{original_size[1]} to "
            f"{pixels.shape[1]}x{pixels.shape[0]} (longest side {max_side})."
        )
    return DecodedImage(pixels=pixels, original_mode=original_mode, original_size=original_size, notes=notes)


def _has_orientation(image: Image.Image) -> bool:
    try:
        return image.getexif().get(0x0112, 1) not in (1, None)
    except Exception:
        return False


def resize_longest_side(pixels: np.ndarray, longest: int, min_side: int = 1) -> np.ndarray:
    """Resize an RGB uint8 array (up or down, Lanczos) so its longest side is ``longest``,
    keeping every side at least ``min_side``; returns ``pixels`` itself when nothing changes."""
    height, width = pixels.shape[:2]
    scale = longest / max(height, width)
    size = (max(min_side, round(width * scale)), max(min_side, round(height * scale)))
    if size == (width, height):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB (or greyscale) uint8 array, for downloads."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
