"""Large images read region by region, never whole.

:func:`open_image` sniffs the file and returns an :class:`ImageSource`:

- TIFF and BigTIFF (tiled or striped, any codec tifffile and imagecodecs decode, pyramidal SVS/NDPI
  too) through :class:`TiffSource`: a region decodes only the tiles or strips it touches, with a
  small byte-bounded cache, so memory stays at a few chunks whatever the image size;
- PNG, JPEG and other Pillow formats through :class:`PillowSource`, decoded whole and therefore
  refused above the configured pixel limit (``DASHBOARD_MAX_IMAGE_PIXELS``);
- MRXS and other OpenSlide-only formats through :class:`OpenSlideSource`, only when the optional
  ``openslide`` package is importable.

Pyramidal files open at the level whose resolution best matches the model's (``target_mpp``).
Every refusal is a :class:`~services.errors.BadImage` with a message a lab member can act on.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from services.config import get_settings
from services.errors import BadImage

MPP_RANGE = (0.05, 50.0)
"""Microns per pixel outside this range are absurd for microscopy (metadata is ignored, entries refused)."""
CHUNK_CACHE_BYTES = 96 * 1024**2
THUMBNAIL_SIDE = 1536
"""Longest side of the thumbnail tissue is detected on (the page previews the same one)."""
THUMBNAIL_MAX_PIXELS = 1_000_000_000
"""Pixels a thumbnail may read (from the smallest suitable pyramid level): past this it is refused."""
PREVIEW_SECONDS = 10.0
"""Time the page's preview may take to read a thumbnail before it is refused."""
THUMBNAIL_BLOCK = (256, 4096)
"""Rows and columns (at least) read at once for a thumbnail, so memory stays bounded whatever the shape."""
LEVEL_ASPECT_TOLERANCE = 0.01
"""A pyramid level whose height differs from the base's aspect ratio by more than this (and 2 px) is skipped."""
PYRAMID_ADVICE = "Save it as a pyramidal tiled TIFF (e.g. `vips tiffsave in.tif out.tif --tile --pyramid`) to map it."
OPENSLIDE_SUFFIXES = {".mrxs", ".vms", ".vmu", ".scn", ".bif", ".svslide"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
WHITE = 255


def plausible_mpp(value) -> float | None:
    """``value`` as microns per pixel if it is a number in :data:`MPP_RANGE`, else None."""
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        return None
    return mpp if MPP_RANGE[0] <= mpp <= MPP_RANGE[1] else None


def check_mpp(value) -> float:
    """An entered microns-per-pixel value, or a clear refusal."""
    mpp = plausible_mpp(value)
    if mpp is None:
        raise BadImage(f"{value!s:.20} microns per pixel is not plausible for a microscope image (expected "
                       f"{MPP_RANGE[0]}-{MPP_RANGE[1]}; Kather 2016 is 0.495). Enter the scanner's resolution.")
    return mpp


class ImageSource:
    """An RGB image of ``width`` x ``height`` pixels at ``mpp`` microns per pixel (None if unknown)."""

    name: str = "image"
    width: int = 0
    height: int = 0
    mpp: float | None = None
    format: str = ""

    def read_region(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """uint8 RGB pixels of the box; parts outside the image are white (empty glass)."""
        out = np.full((height, width, 3), WHITE, np.uint8)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + width), min(self.height, y + height)
        if x1 > x0 and y1 > y0:
            out[y0 - y:y1 - y, x0 - x:x1 - x] = self._read_inside(x0, y0, x1 - x0, y1 - y0)
        return out

    def _read_inside(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def notes(self) -> list[str]:
        """What a person should know about how the file is read (e.g. pyramid levels skipped)."""
        return []

    def thumbnail(self, max_side: int = THUMBNAIL_SIDE, *, deadline: float | None = None) -> tuple[np.ndarray, int]:
        """(thumbnail, factor): block means of ``factor`` x ``factor`` pixels, read block by block.

        Bounded work: refused (:class:`BadImage`) when the image has more than
        :data:`THUMBNAIL_MAX_PIXELS`, or once ``deadline`` (a :func:`time.monotonic` value) passes."""
        if self.width * self.height > THUMBNAIL_MAX_PIXELS:
            raise BadImage(f"{self.name}: {self.width:,} x {self.height:,} pixels with no smaller pyramid level to "
                           f"preview from: more than the {THUMBNAIL_MAX_PIXELS:,} pixels a thumbnail may read; "
                           f"refused. {PYRAMID_ADVICE}")
        factor = max(1, math.ceil(max(self.width, self.height) / max_side))
        band, step = (factor * max(1, math.ceil(side / factor)) for side in THUMBNAIL_BLOCK)
        rows = []
        for y in range(0, self.height, band):
            blocks = []
            for x in range(0, self.width, step):
                if deadline is not None and time.monotonic() > deadline:
                    raise BadImage(f"{self.name}: reading a preview of {self.width:,} x {self.height:,} pixels takes "
                                   f"longer than {PREVIEW_SECONDS:.0f} s; refused. {PYRAMID_ADVICE}")
                pixels = self.read_region(x, y, min(step, self.width - x), min(band, self.height - y))
                blocks.append(block_mean(pixels, factor))
            rows.append(np.concatenate(blocks, axis=1))
        return np.concatenate(rows, axis=0), factor

    def adopt_chunks(self, other: "ImageSource") -> None:
        """Take the decoded pixels ``other`` holds when it reads the same level of the same file
        (a thumbnail made before this source was opened), so they are not decoded again."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def block_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks (edges padded with white), as uint8 (OpenCV's area resize)."""
    import cv2

    if factor == 1:
        return pixels
    height, width = pixels.shape[:2]
    padded_h, padded_w = -(-height // factor) * factor, -(-width // factor) * factor
    if (padded_h, padded_w) != (height, width):
        pixels = np.pad(pixels, ((0, padded_h - height), (0, padded_w - width), (0, 0)), constant_values=WHITE)
    return cv2.resize(np.ascontiguousarray(pixels), (padded_w // factor, padded_h // factor),
                      interpolation=cv2.INTER_AREA)


def _to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:  # alpha flattened onto white
        alpha = array[..., 3:4].astype(np.uint16)
        return ((array[..., :3] * alpha + WHITE * (255 - alpha)) // 255).astype(np.uint8)
    return np.ascontiguousarray(array[..., :3])


# --- TIFF ----------------------------------------------------------------------------------------

def _tiff_mpp(page, description: str) -> float | None:
    match = re.search(r"MPP\s*=\s*([0-9.]+)", description or "")
    if match and plausible_mpp(match.group(1)):
        return plausible_mpp(match.group(1))
    try:
        x_resolution = page.tags["XResolution"].value
        unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 2
    except (KeyError, TypeError, ValueError):
        return None
    numerator, denominator = x_resolution if isinstance(x_resolution, tuple) else (x_resolution, 1)
    if not numerator or not denominator:
        return None
    per_unit = numerator / denominator
    microns = {2: 25_400.0, 3: 10_000.0}.get(unit)
    return plausible_mpp(microns / per_unit) if microns else None


class TiffSource(ImageSource):
    """One level of a TIFF/BigTIFF, decoded chunk (tile or strip) by chunk."""

    def __init__(self, path: Path, *, level: int = 0, max_pixels: int | None = None):
        import tifffile

        self.path, self.name, self.format = Path(path), Path(path).name, "TIFF"
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        try:
            self._tiff = tifffile.TiffFile(self.path)
            series = self._tiff.series[0]
            sizes = [(int(lv.keyframe.imagewidth), int(lv.keyframe.imagelength)) for lv in series.levels]
            usable = consistent_levels(sizes)
            self.levels = [sizes[i] for i in usable]
            self.skipped_levels = len(sizes) - len(usable)
            self._page = series.levels[usable[level]].keyframe if level else self._tiff.pages[0]
            description = self._tiff.pages[0].description or ""
            base_mpp = _tiff_mpp(self._tiff.pages[0], description)
        except BadImage:
            raise
        except Exception as error:  # tifffile raises many types for damaged files
            raise BadImage(f"{self.name}: not a readable TIFF ({type(error).__name__}).") from error
        self.format = "BigTIFF" if self._tiff.is_bigtiff else "TIFF"
        self.synthetic = "SYNTHETIC" in description.upper()
        self.description = description
        self.width, self.height = int(self._page.imagewidth), int(self._page.imagelength)
        self.level = level
        self.downsample = self.levels[0][0] / self.width if self.levels else 1.0
        self.mpp = base_mpp * self.downsample if base_mpp else None
        self._check(max_pixels or get_settings().max_image_pixels)

    def _check(self, max_pixels: int) -> None:
        page = self._page
        if page.dtype != np.uint8 or page.samplesperpixel not in (1, 3, 4):
            self.close()
            raise BadImage(f"{self.name}: {page.samplesperpixel} samples of {page.dtype} per pixel; only 8-bit "
                           "RGB, RGBA or grey images can be mapped.")
        if page.planarconfig != 1 and page.samplesperpixel > 1:
            self.close()
            raise BadImage(f"{self.name}: colour planes are stored separately (planar); save it as "
                           "interleaved RGB (chunky) to map it.")
        self._chunk_h, self._chunk_w = (int(page.chunks[0]), int(page.chunks[1]))
        if self._chunk_h * self._chunk_w > max_pixels:
            self.close()
            raise BadImage(f"{self.name}: {self.width}x{self.height} pixels stored in one piece of "
                           f"{self._chunk_w}x{self._chunk_h} pixels, more than the limit of {max_pixels:,} "
                           "pixels that may be decoded at once. Save it as a tiled TIFF (e.g. "
                           "`vips tiffsave in.tif out.tif --tile --pyramid`) to map it.")
        self._columns = -(-self.width // self._chunk_w)
        size = os.path.getsize(self.path)
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if len(page.dataoffsets) < self._columns * -(-self.height // self._chunk_h) or (ends and max(ends) > size):
            self.close()
            raise BadImage(f"{self.name}: the file is truncated (its pixel data ends past the end of the "
                           f"{size:,}-byte file). Copy or export it again.")

    def _chunk(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            page = self._page
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            if count == 0:  # sparse chunk: nothing was scanned there
                decoded = np.full((self._chunk_h, self._chunk_w, 3), WHITE, np.uint8)
            else:
                handle = self._tiff.filehandle
                handle.seek(offset)
                data = handle.read(count)
                try:
                    segment = page.decode(data, index, jpegtables=page.jpegtables)[0]
                except Exception as error:
                    raise BadImage(f"{self.name}: the image data is damaged (chunk {index} cannot be decoded: "
                                   f"{type(error).__name__}).") from error
                if segment is None:
                    raise BadImage(f"{self.name}: the image data is damaged (chunk {index} is empty).")
                decoded = _to_rgb(np.asarray(segment).reshape(segment.shape[-3:]))
            self._cache[index] = decoded
            self._cached_bytes += decoded.nbytes
            while self._cached_bytes > CHUNK_CACHE_BYTES and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= dropped.nbytes
            return decoded

    def _read_inside(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        out = np.empty((height, width, 3), np.uint8)
        ch, cw = self._chunk_h, self._chunk_w
        for row in range(y // ch, (y + height - 1) // ch + 1):
            for col in range(x // cw, (x + width - 1) // cw + 1):
                chunk = self._chunk(row * self._columns + col)
                top, left = row * ch, col * cw
                y0, y1 = max(y, top), min(y + height, top + ch, self.height)
                x0, x1 = max(x, left), min(x + width, left + cw, self.width)
                out[y0 - y:y1 - y, x0 - x:x1 - x] = chunk[y0 - top:y1 - top, x0 - left:x1 - left]
        return out

    def thumbnail(self, max_side: int = THUMBNAIL_SIDE, *, deadline: float | None = None) -> tuple[np.ndarray, int]:
        """From the smallest pyramid level still about ``max_side`` large, else block means of this level."""
        smaller = [i for i in range(self.level + 1, len(self.levels)) if max(self.levels[i]) >= max_side // 2]
        if not smaller:
            return super().thumbnail(max_side, deadline=deadline)
        with TiffSource(self.path, level=smaller[-1]) as small:
            pixels, extra = ImageSource.thumbnail(small, max_side, deadline=deadline)
            return pixels, max(1, round(self.width / small.width)) * extra

    def adopt_chunks(self, other: ImageSource) -> None:
        if not (isinstance(other, TiffSource) and other.path == self.path and other.level == self.level
                and other._tiff is not None and self._tiff is not None
                and (other.width, other.height) == (self.width, self.height)
                and other._page.dataoffsets == self._page.dataoffsets):
            return
        with self._lock, other._lock:
            if not self._cache:  # (a source that has read nothing yet: nothing to merge)
                self._cache, self._cached_bytes = other._cache, other._cached_bytes
                other._cache, other._cached_bytes = OrderedDict(), 0

    @property
    def notes(self) -> list[str]:
        if not self.skipped_levels:
            return []
        return [f"{self.skipped_levels} pyramid level(s) skipped: their aspect ratio differs from the full "
                "image's, so they do not show the same area."]

    def close(self) -> None:
        tiff = getattr(self, "_tiff", None)
        if tiff is not None:
            tiff.close()
            self._tiff = None
        self._cache.clear()


# --- Pillow (PNG, JPEG, ...) ----------------------------------------------------------------------

class PillowSource(ImageSource):
    """A PNG/JPEG/... decoded whole: refused above the pixel limit (they cannot be read by region)."""

    def __init__(self, path: Path, *, max_pixels: int | None = None):
        from PIL import Image

        from services.images import decode_image

        self.name = Path(path).name
        limit = max_pixels or get_settings().max_image_pixels
        try:
            with Image.open(path) as probe:
                self.format = probe.format or "image"
                dpi = probe.info.get("dpi")
                if probe.size[0] * probe.size[1] > limit:
                    raise BadImage(f"{self.name}: {probe.size[0]}x{probe.size[1]} pixels is more than the "
                                   f"limit of {limit:,} pixels (DASHBOARD_MAX_IMAGE_PIXELS), and {self.format} "
                                   "cannot be read region by region. Convert it to a tiled TIFF to map it.")
        except BadImage:
            raise
        except Exception as error:
            raise BadImage(f"{self.name}: not a readable image ({type(error).__name__}).") from error
        self._pixels = decode_image(path, max_pixels=limit).pixels
        self.height, self.width = self._pixels.shape[:2]
        self.mpp = plausible_mpp(25_400.0 / float(dpi[0])) if dpi and dpi[0] else None

    def _read_inside(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        return self._pixels[y:y + height, x:x + width]


# --- OpenSlide (optional) -------------------------------------------------------------------------

def openslide_available() -> bool:
    try:
        import openslide  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


class OpenSlideSource(ImageSource):
    """One pyramid level of a whole-slide image, through the optional OpenSlide library."""

    def __init__(self, path: Path, *, target_mpp: float | None = None):
        import openslide

        self.name, self.format = Path(path).name, "whole-slide image"
        try:
            self._slide = openslide.OpenSlide(str(path))
        except Exception as error:
            raise BadImage(f"{self.name}: OpenSlide cannot read it ({type(error).__name__}).") from error
        properties = self._slide.properties
        base = plausible_mpp(properties.get("openslide.mpp-x"))
        self.level = 0
        if base and target_mpp:
            self.level = self._slide.get_best_level_for_downsample(target_mpp / base)
        self._downsample = float(self._slide.level_downsamples[self.level])
        self.width, self.height = (int(v) for v in self._slide.level_dimensions[self.level])
        self.mpp = base * self._downsample if base else None

    def _read_inside(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        origin = (int(x * self._downsample), int(y * self._downsample))
        return _to_rgb(np.asarray(self._slide.read_region(origin, self.level, (width, height))))

    def close(self) -> None:
        self._slide.close()


# --- opening -------------------------------------------------------------------------------------

def consistent_levels(sizes: list[tuple[int, int]]) -> list[int]:
    """Indices of the pyramid levels (``(width, height)``, the base first) whose aspect ratio
    matches the base's, up to rounding: a level that does not would map tiles onto the wrong area."""
    base_width, base_height = sizes[0]
    usable = [0]
    for index, (width, height) in enumerate(sizes[1:], start=1):
        expected = width * base_height / base_width
        if width and abs(height - expected) <= max(2.0, LEVEL_ASPECT_TOLERANCE * expected):
            usable.append(index)
    return usable


def tiff_level_for(levels: list[tuple[int, int]], base_mpp: float | None, target_mpp: float | None) -> int:
    """The coarsest pyramid level still at least as fine as ``target_mpp`` (0 without metadata)."""
    if not base_mpp or not target_mpp or len(levels) < 2:
        return 0
    best = 0
    for index, (width, _) in enumerate(levels):
        if base_mpp * levels[0][0] / width <= target_mpp * 1.05:
            best = index
    return best


def is_tiff(path: str | os.PathLike) -> bool:
    """Whether the file starts like a TIFF (readable region by region)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in _TIFF_MAGIC
    except OSError:
        return False


def open_image(path: str | os.PathLike, *, target_mpp: float | None = None,
               max_pixels: int | None = None) -> ImageSource:
    """The right :class:`ImageSource` for the file at ``path`` (sniffed, not by suffix alone)."""
    path = Path(path)
    if not path.is_file():
        raise BadImage(f"{path.name}: file not found.")
    if path.stat().st_size == 0:
        raise BadImage(f"{path.name}: the file is empty.")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if path.suffix.lower() in OPENSLIDE_SUFFIXES:
        if not openslide_available():
            raise BadImage(f"{path.name}: {path.suffix} slides need OpenSlide, which is not installed here "
                           "(pip install openslide-python openslide-bin), or export the slide as a tiled TIFF.")
        return OpenSlideSource(path, target_mpp=target_mpp)
    if magic in _TIFF_MAGIC:
        source = TiffSource(path, max_pixels=max_pixels)
        level = tiff_level_for(source.levels, source.mpp, target_mpp)
        if level:
            source.close()
            source = TiffSource(path, level=level, max_pixels=max_pixels)
        return source
    return PillowSource(path, max_pixels=max_pixels)
