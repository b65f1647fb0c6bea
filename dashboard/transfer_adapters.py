"""Cached helpers and charts of the transfer-learning page (no TensorFlow import at module load)."""

from __future__ import annotations

import os

import pandas as pd
import plotly.express as px
import streamlit as st

from services.datasets import splits
from services.jobs import JobState
from services.transfer import experiments, inspection
from services.transfer.results import RunResult, curves_frame, recall_frame

UPLOAD_TYPES = ["tif", "tiff", "png", "jpg", "jpeg", "bmp", "webp"]


@st.cache_resource(show_spinner="Loading model…", max_entries=12)
def _loaded_model(path: str, modified: float):
    from services.models.catalog import load_saved_model

    return load_saved_model(path)


def loaded_model(path: str):
    """A compared model from its saved ``.keras`` file (reloaded when the file changes)."""
    return _loaded_model(path, os.path.getmtime(path))


@st.cache_data(show_spinner="Explaining the tile…", max_entries=64)
def _tile_view(path: str, modified: float, tile_source: str | bytes) -> dict:
    model = _loaded_model(path, modified)
    tile = inspection.prepare_tile(tile_source, inspection.input_size(model))
    return {"probabilities": inspection.probabilities(model, tile), "overlay": inspection.gradcam_overlay(model, tile),
            "notes": tile.notes}


def tile_view(path: str, tile_source: str | bytes) -> dict:
    """Class probabilities, Grad-CAM overlay and conversion notes of one tile for one model."""
    return _tile_view(path, os.path.getmtime(path), tile_source)


@st.cache_data(show_spinner=False, max_entries=32)
def _feature_mosaic(path: str, modified: float, tile_source: str | bytes, layer: str):
    model = _loaded_model(path, modified)
    return inspection.feature_map_mosaic(model, inspection.prepare_tile(tile_source, inspection.input_size(model)), layer)


def feature_mosaic(path: str, tile_source: str | bytes, layer: str):
    """The first 12 feature maps of ``layer`` for the tile, as one greyscale mosaic."""
    return _feature_mosaic(path, os.path.getmtime(path), tile_source, layer)


@st.cache_data(show_spinner=False, ttl=60, max_entries=8)
def test_tiles(dataset: str, split: str) -> dict[str, str]:
    """{path: label} of a saved split's test tiles; the split file is read and its files checked
    at most once a minute, not on every rerun."""
    rows = splits.load_split(dataset, split).query("split == 'test'")
    return dict(zip(rows.path, rows.label))


def experiment_jobs(manager) -> list[JobState]:
    return manager.list(kind=experiments.JOB_KIND)


def experiment_label(state: JobState) -> str:
    return f"{state.title} · {state.status} · {state.id[:6]}"


def curves_chart(results: list[RunResult], metric: str):
    frame = curves_frame(results)
    frame = frame[frame.metric == metric]
    return px.line(frame, x="epoch", y="value", color="run", markers=True, title=metric,
                   labels={"value": metric})


def recall_chart(results: list[RunResult]):
    frame = recall_frame(results)
    return px.bar(frame, x="class", y="recall", color="run", barmode="group", range_y=[0, 1],
                  title="Per-class recall (test split)")


def confusion_chart(result: RunResult):
    names = result.class_names or [str(i) for i in range(len(result.confusion))]
    frame = pd.DataFrame(result.confusion, index=names, columns=names)
    figure = px.imshow(frame, text_auto=True, color_continuous_scale="Blues", title=result.name,
                       labels={"x": "predicted", "y": "true", "color": "tiles"})
    figure.update_layout(coloraxis_showscale=False, margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return figure


def probability_chart(names: list[str], values, title: str):
    return px.bar(pd.DataFrame({"class": names, "probability": values}), x="probability", y="class",
                  orientation="h", range_x=[0, 1], title=title, height=260)
