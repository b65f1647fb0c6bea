"""Cached access to dataset indices, thumbnails and analyses for the explorer page.

Indices are held once per server process (``st.cache_resource``) keyed by folder and folder
signature, so a changed folder is never served stale. Callers must not modify the frames.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from services.datasets import colour, index, quality
from services.errors import BadImage
from services.images import decode_image, display_copy

DISPLAY_TILE_SIDE = 1024
"""Longest side of the selected tile as the explorer shows and augments it."""


@st.cache_resource(max_entries=4, show_spinner=False)
def _index(folder: str, signature: str) -> pd.DataFrame:
    return index.load_index(Path(folder))


@st.cache_data(ttl=5, max_entries=16, show_spinner=False)
def _current_signature(folder: str) -> str:
    """The folder's signature, listed at most every 5 s (keeps page changes quick on big sets)."""
    return index.current_signature(Path(folder))


def cached_index(folder: Path) -> pd.DataFrame | None:
    """The index of ``folder`` when its parquet cache is valid, else None (index it in a job)."""
    if not folder.is_dir():
        return None
    signature = _current_signature(str(folder))
    if index.cached_signature(folder) != signature:
        return None
    return _index(str(folder), signature)


def signature_of(frame: pd.DataFrame) -> str:
    """A cheap key for caches derived from ``frame`` (its files and their contents)."""
    return str(pd.util.hash_pandas_object(frame[["path", "content_hash"]], index=False).sum())


@st.cache_data(max_entries=4000, show_spinner=False)
def thumbnail(path: str, size: int, mtime_ns: int) -> bytes | None:
    """JPEG bytes of the tile at ``size`` pixels (longest side); None if it cannot be read."""
    try:
        pixels = decode_image(path).pixels
    except BadImage:
        return None
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


@st.cache_data(max_entries=8, show_spinner=False)
def tile_and_stains(path: str, mtime_ns: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The selected tile's pixels (a display copy: longest side at most DISPLAY_TILE_SIDE) and
    its single-stain images, decoded once per file version (not again on every rerun)."""
    pixels = decode_image(path, max_side=DISPLAY_TILE_SIDE).pixels
    return pixels, colour.single_stain_images(pixels)


@st.cache_data(max_entries=4, show_spinner=False)
def augmentation_variants(path: str, mtime_ns: int, count: int, seed: int, options: dict) -> list[np.ndarray]:
    """Augmented variants of a tile, computed in the model service (TensorFlow never runs here),
    once per tile version and settings (not again on every rerun while the preview is shown)."""
    from services.model_service import client

    pixels = tile_and_stains(path, mtime_ns)[0]  # already a display copy of at most DISPLAY_TILE_SIDE
    reply = client.call("datasets.augment_preview", {"count": count, "seed": seed, **options},
                        arrays={"tile": pixels})
    return [display_copy(reply.arrays[f"variant_{i}"]) for i in range(int(reply.result["count"]))]


@st.cache_data(max_entries=16, show_spinner="Analysing colours…")
def colour_profile(_frame: pd.DataFrame, key: str, per_class: int, seed: int) -> colour.ColourProfile:
    return colour.class_colour_profile(_frame, per_class=per_class, seed=seed)


@st.cache_data(max_entries=16, show_spinner="Comparing perceptual hashes…")
def near_duplicates(_frame: pd.DataFrame, key: str, max_distance: int) -> pd.DataFrame:
    return quality.near_duplicates(_frame, max_distance=max_distance)


@st.cache_data(max_entries=8, show_spinner=False)
def exact_duplicates(_frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return quality.exact_duplicates(_frame)
