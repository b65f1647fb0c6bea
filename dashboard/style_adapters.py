"""Cached helpers of the style-transfer page (no TensorFlow import here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from services.images import DecodedImage, decode_image, display_copy, encode_png
from services.jobs import JobState
from services.style import builtin_images, display, submit
from services.style.settings import check_picture_shape

UPLOAD_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "webp"]
MAX_UPLOAD_SIDE = 2048
"""Uploads are downscaled (with a note) to this longest side; results are at most 2048."""
LOSS_TERMS = ["total", "style", "content", "total_variation"]


@st.cache_data(show_spinner=False, max_entries=16)
def builtin_content(name: str) -> np.ndarray:
    return builtin_images.CONTENT_IMAGES[name].load()


@st.cache_data(show_spinner=False, max_entries=16)
def builtin_style(name: str) -> np.ndarray:
    return builtin_images.STYLE_IMAGES[name].load()


@st.cache_data(show_spinner=False, max_entries=4)
def builtin_silhouette(name: str) -> np.ndarray:
    return builtin_images.SILHOUETTES[name]()


@st.cache_data(show_spinner=False, max_entries=8)
def decode_upload(data: bytes) -> DecodedImage:
    """Decoded upload (EXIF orientation, alpha flattened, huge images downscaled with a note);
    pictures too elongated to stylise (a 2 x 1,000,000 strip) are refused before any resize."""
    decoded = decode_image(data, max_side=MAX_UPLOAD_SIDE)
    check_picture_shape(decoded.original_size[::-1], "uploaded")
    return decoded


def show(pixels: np.ndarray) -> np.ndarray:
    """A picture as sent to the browser: never more than the display size."""
    return display_copy(pixels, display.DISPLAY_SIDE)


def style_jobs(manager) -> list[JobState]:
    """Both engines' jobs, newest first."""
    jobs = [job for kind in submit.KIND_OF_ENGINE.values() for job in manager.list(kind=kind)]
    return sorted(jobs, key=lambda job: job.created, reverse=True)


def is_random(state: JobState) -> bool:
    return bool(isinstance(state.params, dict) and state.params.get("random_weights"))


@st.cache_data(show_spinner=False, max_entries=64)
def _shown_picture(path: str, modified: int, random_weights: bool, max_side: int) -> np.ndarray:
    return display.shown(decode_image(path).pixels, random_weights, max_side)


def job_picture(manager, state: JobState, key: str, *, max_side: int = display.DISPLAY_SIDE) -> np.ndarray | None:
    """The job's picture under ``key`` (e.g. "preview") as the page shows it (random runs marked)."""
    path = manager.file(state, key)
    if path is None:
        return None
    return _shown_picture(str(path), path.stat().st_mtime_ns, is_random(state), max_side)


@st.cache_data(show_spinner=False, max_entries=16)
def _download_png(path: str, modified: int, random_weights: bool) -> bytes:
    return encode_png(_shown_picture(path, modified, random_weights, 4096))


def download_png(manager, state: JobState, key: str) -> bytes | None:
    """PNG bytes of what a download offers: the full picture, marked when the weights were random
    (cached: st.download_button needs the bytes on every rerun that shows a finished job)."""
    path = manager.file(state, key)
    return None if path is None else _download_png(str(path), path.stat().st_mtime_ns, is_random(state))


def loss_frame(state: JobState) -> pd.DataFrame:
    history = (state.result or {}).get("history") if isinstance(state.result, dict) else None
    frame = pd.DataFrame(history or [])
    if frame.empty or not set(LOSS_TERMS) <= set(frame.columns):
        return pd.DataFrame()
    return frame.set_index("step")[LOSS_TERMS]


def loss_figure(frame: pd.DataFrame):
    """The loss terms against the step on a log scale (the components differ by decades)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for term in LOSS_TERMS:
        values = frame[term].where(frame[term] > 0)  # a log axis cannot show 0
        figure.add_trace(go.Scatter(x=frame.index, y=values, mode="lines", name=term.replace("_", " ")))
    figure.update_layout(xaxis_title="step", yaxis_title="weighted loss (log scale)", yaxis_type="log",
                         height=300, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h"))
    return figure


IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@st.cache_data(show_spinner="Preparing the dataset…", ttl=60)
def dataset_classes(name: str) -> list[str]:
    """Class folders of a dataset (the demo set is generated on first use)."""
    from services.datasets.index import class_folders
    from services.datasets.sources import dataset_folder

    return class_folders(dataset_folder(name))


@st.cache_data(show_spinner=False, ttl=60)
def class_tiles(name: str, class_folder: str, limit: int = 40) -> list[str]:
    """Up to ``limit`` tile paths of one class, sorted by name."""
    from services.datasets.sources import dataset_folder

    folder = dataset_folder(name) / class_folder
    return [str(path) for path in sorted(folder.iterdir())[: limit * 2] if path.suffix.lower() in IMAGE_SUFFIXES][:limit]


def tile_pixels(path: str) -> np.ndarray:
    return decode_upload(Path(path).read_bytes()).pixels
