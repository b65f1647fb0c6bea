"""Safe image decoding shared by every page: size limits, odd modes, EXIF orientation.

Pillow is the only decoder used for user files. Every refusal raises :class:`BadImage` with a
message a lab member can act on; conversions that change the data are reported as notes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.config import get_settings
from services.errors import BadImage

MIN_SIDE = 2
"""Images smaller than this on either side are refused (a 1x1 image carries no tissue)."""
DISPLAY_MAX_SIDE = 2048
"""Longest side of the copies :func:`display_copy` hands to ``st.image``."""
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}
"""Bytes per pixel Pillow keeps for a mode (every other mode is stored as 4 bytes per pixel)."""
Source = str | os.PathLike | bytes | io.IOBase


@dataclass
class DecodedImage:
    pixels: np.ndarray
    """uint8 array, H x W x 3, RGB."""
    original_mode: str
    original_size: tuple[int, int]
    """(width, height) as stored in the file."""
    notes: list[str] = field(default_factory=list)
    """What was converted on the way (mode, alpha, orientation, NaN pixels, downscaling)."""


def _label(source: Source) -> str:
    """The name of ``source`` for messages: a file name only, never a server path."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) and name else "upload"


def open_regular_file(path: str | os.PathLike, max_bytes: int) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file of at most ``max_bytes`` bytes,
    checked before any byte is read (a FIFO never blocks: it is opened non-blocking and refused)."""
    name = Path(path).name
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as error:
        raise BadImage(f"{name}: file not found.") from error
    except OSError as error:
        raise BadImage(f"{name}: cannot be read ({error.strerror or type(error).__name__}).") from error
    info = os.fstat(descriptor)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"{name}: not a regular file (a pipe, device or socket); not read."
    elif info.st_size > max_bytes:
        problem = (f"{name}: {info.st_size / 1e6:,.1f} MB is more than the limit of {max_bytes / 1e6:,.1f} MB "
                   "for one image file (DASHBOARD_MAX_IMAGE_FILE_BYTES); not read.")
    if problem:
        os.close(descriptor)
        raise BadImage(problem)
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def decode_bytes_needed(mode: str, size: tuple[int, int]) -> int:
    """Memory a decode of an image of ``mode`` and ``size`` needs, estimated from its header:
    Pillow's own buffer, the RGB conversion and the uint8 result (plus float work arrays for
    16-bit, integer and float images)."""
    pixels = size[0] * size[1]
    per_pixel = _STORED_BYTES.get(mode, 4) + 4 + 3 + (12 if mode in _HIGH_DEPTH else 0)
    return pixels * per_pixel


def _check_header(image: Image.Image, name: str, max_pixels: int, max_bytes: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise BadImage(
            f"{name}: {width}x{height} pixels is more than the limit of {max_pixels:,} pixels "
            "(DASHBOARD_MAX_IMAGE_PIXELS); refused as a possible decompression bomb."
        )
    needed = decode_bytes_needed(image.mode, image.size)
    if needed > max_bytes:
        raise BadImage(
            f"{name}: decoding {width}x{height} pixels ({image.mode}) would need about {needed / 1e6:,.0f} MB of "
            f"memory, more than the limit of {max_bytes / 1e6:,.0f} MB (DASHBOARD_MAX_DECODE_BYTES); refused."
        )


def _open(source: Source, max_pixels: int) -> Image.Image:
    """Open, check the header against the limits, then decode ``source``."""
    settings = get_settings()
    name = _label(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        handle = open_regular_file(source, settings.max_image_file_bytes)
    else:
        handle = contextlib.nullcontext(source)
    try:
        with handle as stream, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            _check_header(image, name, max_pixels, settings.max_decode_bytes)
            image.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImage(f"{name}: refused as a possible decompression bomb ({error}).") from error
    except UnidentifiedImageError as error:
        raise BadImage(f"{name}: not a readable image (not a PNG, JPEG, TIFF, BMP, GIF or WebP file).") from error
    except Exception as error:  # Pillow raises many types for corrupt data
        raise BadImage(f"{name}: not a readable image ({type(error).__name__}: {_clean(error)}).") from error
    return image


def _clean(error: Exception) -> str:
    """An exception's text without Python reprs or file paths (Pillow names what it was given)."""
    text = getattr(error, "strerror", None) or str(error)
    text = re.sub(r"<[^<>]*>", "the file", text)
    return re.sub(r"(?:/[^/\s'\"]+)+/([^/\s'\"]+)", r"\1", text)


def _high_depth_to_uint8(image: Image.Image, notes: list[str]) -> np.ndarray:
    """16-bit, 32-bit integer and float images scaled to 8 bits over their finite range; NaN
    and infinite pixels become 0 with a note; an image with no finite pixel is refused."""
    array = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.any():
        raise BadImage("every pixel is NaN or infinite; there is nothing to show.")
    values = array[finite]
    low, high = float(values.min()), float(values.max())
    scaled = np.zeros_like(array) if high <= low else (np.where(finite, array, low) - low) / (high - low) * 255.0
    notes.append(f"{image.mode} image scaled to 8 bits per channel (range {low:g}..{high:g}).")
    bad = int(array.size - values.size)
    if bad:
        scaled[~finite] = 0
        notes.append(f"{bad:,} NaN or infinite pixels shown as black (0).")
    grey = scaled.round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _to_uint8_rgb(image: Image.Image, notes: list[str]) -> np.ndarray:
    mode = image.mode
    if mode in _HIGH_DEPTH:
        return _high_depth_to_uint8(image, notes)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("transparency flattened onto white.")
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode != "RGB":
        notes.append(f"{mode} image converted to RGB.")
    return np.asarray(image.convert("RGB"))


def decode_image(
    source: Source,
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
    name = _label(source)
    original_mode, original_size = image.mode, image.size
    notes: list[str] = []
    if min(image.size) < min_side:
        raise BadImage(
            f"{name}: image of {image.size[0]}x{image.size[1]} pixels is too small (at least "
            f"{min_side}x{min_side} needed)."
        )
    if honour_exif and _has_orientation(image):
        image = ImageOps.exif_transpose(image)
        notes.append("rotated according to its EXIF orientation.")
    try:
        pixels = _to_uint8_rgb(image, notes)
    except BadImage as error:
        raise BadImage(f"{name}: {error}") from error
    except (ValueError, OSError) as error:  # modes Pillow cannot convert (LAB, HSV, ...)
        raise BadImage(f"{name}: {image.mode} images cannot be converted to RGB ({_clean(error)}).") from error
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


FAST_PNG = 1
"""zlib level for PNGs written by jobs: about 3x faster to encode than Pillow's default (6), for
files about 6 % larger (a 1250 px tissue-map overlay: 0.26 s vs 0.74 s)."""


def encode_png(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of an RGB (or greyscale) uint8 array, for downloads."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def display_copy(pixels: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """A copy of an image array that is safe to hand to ``st.image``: uint8 (floats in 0..1 or
    0..255, judged on the finite pixels, are scaled and clipped; NaN becomes 0, infinity the top)
    with its longest side at most ``max_side`` (aspect kept, every side at least one pixel). A 2 x 1,000,000 strip becomes 2048 x 1."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        values = array.astype(np.float32)
        finite = np.isfinite(values)
        top = 255.0 if finite.any() and values[finite].max() > 1.0 else 1.0  # the scale from finite pixels only
        values = np.nan_to_num(values, nan=0.0, posinf=top, neginf=0.0) * (255.0 / top)
        array = np.clip(values, 0, 255).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if max(array.shape[:2]) <= max_side:
        return array
    return resize_longest_side(array, max_side)
