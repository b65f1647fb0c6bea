"""Cached helpers and charts of the transfer-learning page.

No TensorFlow here: models are loaded and run by the model service
(``services.model_service.client.call``: ``keras.describe``, ``keras.inspect_tile``,
``keras.feature_maps``); answers are cached per model file (path and modification time) and tile.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from services.datasets import splits
from services.images import decode_image, encode_png
from services.jobs import JobState, kinds
from services.transfer.results import RunResult, curves_frame, recall_frame

UPLOAD_TYPES = ["tif", "tiff", "png", "jpg", "jpeg", "bmp", "webp"]
WEIGHTS_UPLOAD_TYPES = ["h5", "keras"]


def _call(op: str, args: dict, arrays: dict | None = None):
    from services.model_service import client

    return client.call(op, args, arrays)


def _modified(path: str) -> float:
    """The file's modification time (cache key); 0 for a file that is gone (the model service
    then says so in words)."""
    try:
        return os.path.getmtime(path)
    except (OSError, TypeError, ValueError):
        return 0.0


@st.cache_data(show_spinner="Reading the model…", max_entries=32)
def _describe(path: str, modified: float) -> dict:
    return _call("keras.describe", {"model_path": path}).result


def describe(path: str) -> dict:
    """Input shape, class names and the layers usable for feature maps / Grad-CAM of a model."""
    return _describe(path, _modified(path))


def classifier(path: str):
    """``classify(tiles)``: class probabilities (N x classes) of N x H x W x 3 uint8 tiles at the
    model's input size, computed by the model service."""
    return lambda tiles: _call("keras.classify", {"model_path": path}, {"tiles": tiles}).arrays["probabilities"]


def tile_pixels(tile_source: str | bytes) -> tuple[np.ndarray, list[str]]:
    """A tile (a path of the split, or uploaded bytes) decoded safely: RGB uint8 and notes."""
    decoded = decode_image(tile_source)
    return decoded.pixels, list(decoded.notes)


@st.cache_data(show_spinner="Explaining the tile…", max_entries=64)
def _tile_view(path: str, modified: float, tile_key: str, _pixels: np.ndarray, class_names: tuple[str, ...]) -> dict:
    reply = _call("keras.inspect_tile", {"model_path": path, "class_names": list(class_names)}, {"tile": _pixels})
    return {**reply.result, "overlay": reply.arrays["overlay"]}


def _digest(pixels: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(pixels).tobytes(), digest_size=16).hexdigest() + str(pixels.shape)


def tile_view(path: str, pixels: np.ndarray, class_names: list[str]) -> dict:
    """Class probabilities, Grad-CAM overlay and conversion notes of one tile for one model."""
    return _tile_view(path, _modified(path), _digest(pixels), pixels, tuple(class_names))


@st.cache_data(show_spinner=False, max_entries=32)
def _feature_mosaic(path: str, modified: float, tile_key: str, _pixels: np.ndarray, layer: str) -> dict:
    reply = _call("keras.feature_maps", {"model_path": path, "layer": layer}, {"tile": _pixels})
    return {**reply.result, "mosaic": reply.arrays["mosaic"]}


def feature_mosaic(path: str, pixels: np.ndarray, layer: str) -> dict:
    """The first 12 feature maps of ``layer`` for the tile, as one greyscale mosaic."""
    return _feature_mosaic(path, _modified(path), _digest(pixels), pixels, layer)


def gradcam_examples(results: list[RunResult], tile_paths: list[str]) -> list[tuple[str, bytes]]:
    """(caption, PNG) Grad-CAM overlays of a few tiles for every model, for the HTML report."""
    examples = []
    for tile_path in tile_paths:
        pixels, _ = tile_pixels(tile_path)
        for result in results:
            if not result.model_path:
                continue
            view = tile_view(result.model_path, pixels, result.class_names)
            examples.append((f"{os.path.basename(tile_path)} · {result.name}", encode_png(view["overlay"])))
    return examples


@st.cache_data(show_spinner=False, ttl=60, max_entries=8)
def test_tiles(dataset: str, split: str) -> dict[str, str]:
    """{path: label} of a saved split's test tiles; the split file is read and its files checked
    at most once a minute, not on every rerun."""
    rows = splits.load_split(dataset, split).query("split == 'test'")
    return dict(zip(rows.path, rows.label))


def experiment_jobs(manager) -> list[JobState]:
    return manager.list(kind=kinds.TRANSFER)


def experiment_label(state: JobState | None) -> str:
    if state is None:
        return "(deleted)"
    status = getattr(state, "status_text", None) or state.status
    return f"{state.title} · {status} · {state.id[:6]}"


def weights_jobs(manager, backbone: str) -> list[JobState]:
    """This page's weights jobs for ``backbone`` (newest first): another backbone's or another
    page's download never shows here."""
    return [job for job in manager.list(kind=kinds.WEIGHTS_DOWNLOAD) if (job.params or {}).get("backbone") == backbone]


def curves_chart(results: list[RunResult], metric: str):
    frame = curves_frame(results)
    frame = frame[frame.metric == metric]
    return px.line(frame, x="epoch", y="value", color="run", markers=True, title=metric,
                   labels={"value": metric})


def recall_chart(results: list[RunResult]):
    frame = recall_frame(results)
    frame["above"], frame["below"] = frame["high"] - frame["recall"], frame["recall"] - frame["low"]
    figure = px.bar(frame, x="class", y="recall", color="run", barmode="group", range_y=[0, 1],
                    error_y="above", error_y_minus="below", hover_data={"text": True, "above": False, "below": False},
                    title="Per-class recall (held-out test split, 95 % Wilson intervals)")
    figure.update_xaxes(type="category", tickmode="linear")  # every class named
    return figure


def confusion_chart(result: RunResult):
    names = result.class_names or [str(i) for i in range(len(result.confusion))]
    frame = pd.DataFrame(result.confusion, index=names, columns=names)
    figure = px.imshow(frame, text_auto=True, color_continuous_scale="Blues", title=result.name,
                       labels={"x": "predicted", "y": "true", "color": "tiles"})
    figure.update_layout(coloraxis_showscale=False, margin={"l": 0, "r": 0, "t": 40, "b": 0})
    figure.update_xaxes(type="category", tickmode="linear")
    figure.update_yaxes(type="category", tickmode="linear")
    return figure


def probability_chart(names: list[str], values, title: str):
    """Horizontal bars, one per class, every class labelled (the height grows with the classes)."""
    figure = px.bar(pd.DataFrame({"class": names, "probability": values}), x="probability", y="class",
                    orientation="h", range_x=[0, 1], title=title, height=90 + 26 * len(names))
    figure.update_yaxes(type="category", tickmode="linear", automargin=True, categoryorder="array",
                        categoryarray=list(reversed(names)))
    figure.update_layout(margin={"l": 0, "r": 8, "t": 40, "b": 0})
    return figure
