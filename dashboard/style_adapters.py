"""Cached helpers of the style-transfer page (no TensorFlow import here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from services.images import DecodedImage, decode_image
from services.jobs import JobState
from services.style import builtin_images, transfer

UPLOAD_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "webp"]
MAX_UPLOAD_SIDE = 2048
"""Uploads are downscaled (with a note) to this longest side; results are at most 1024."""


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
    """Decoded upload (EXIF orientation, alpha flattened, huge images downscaled with a note)."""
    return decode_image(data, max_side=MAX_UPLOAD_SIDE)


def style_jobs(manager) -> list[JobState]:
    return manager.list(kind=transfer.JOB_KIND)


def job_file(manager, state: JobState, key: str) -> Path | None:
    """A file named in the job's result (e.g. "preview"), if it exists."""
    name = (state.result or {}).get(key) if isinstance(state.result, dict) else None
    path = manager.job_dir(state.id) / name if name else None
    return path if path is not None and path.is_file() else None


def loss_frame(state: JobState) -> pd.DataFrame:
    history = (state.result or {}).get("history") or []
    frame = pd.DataFrame(history)
    if frame.empty:
        return frame
    return frame.set_index("step")[["total", "style", "content", "total_variation"]]


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
