"""What the detector page keeps across reruns and sessions.

OpenCV and onnxruntime run in the server, held with ``st.cache_resource`` (one instance per
model file, shared by every session; inference is serialised by each backend's lock). This
module is the ``backends`` of :mod:`services.detection.inference`, which dispatches to them
(and to the model service, for TensorFlow).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from services.config import get_settings
from services.detection import onnx_store, registry
from services.detection.models import DarknetModel
from services.detection.samples import load_sample
from services.errors import BadImage
from services.images import DecodedImage, decode_image, resize_longest_side

MAX_ASPECT = 50
"""Images more elongated than this (e.g. 2 x 1,000,000 px) are refused: nothing to detect on."""
DISPLAY_SIDE = 1280
"""What the page shows is at most this long; downloads keep the full size."""


def _cache_key() -> str:
    return str(get_settings().model_cache_dir)


@st.cache_resource(show_spinner=False, max_entries=4)
def _darknet_model(key: str, cache_dir: str, fingerprint: tuple | None) -> DarknetModel:
    # The weights file is checked in full on loading; the server keeps none of its values
    # (``weights=None``): OpenCV reads the file itself and TensorFlow runs in the model service.
    # Holding them cost the file's size again (yolov3: 248 MB) beside OpenCV's own copy.
    return dataclasses.replace(registry.load_model(key), weights=None)


def darknet_model(key: str) -> DarknetModel:
    """The Darknet model ``key`` (cfg, names, paths; no weight values, no TensorFlow), loaded and
    checked once per file."""
    return _darknet_model(key, _cache_key(), registry.model_fingerprint(key))


@st.cache_resource(show_spinner=False, max_entries=4)
def _opencv_backend(key: str, cache_dir: str, fingerprint: tuple | None):
    from services.detection.backends import OpenCVDarknetBackend

    return OpenCVDarknetBackend(_darknet_model(key, cache_dir, fingerprint))


def opencv_backend(key: str):
    """The OpenCV backend of the Darknet model ``key``, built once per weights file."""
    return _opencv_backend(key, _cache_key(), registry.model_fingerprint(key))


@st.cache_resource(show_spinner=False, max_entries=4)
def _onnx_detector(stem: str, runtime: str, cache_dir: str, fingerprint: tuple | None):
    return onnx_store.load_onnx(stem, runtime)


def onnx_detector(stem: str, runtime: str):
    """The uploaded ONNX detector ``stem`` on ``runtime``, built once (again when replaced)."""
    return _onnx_detector(stem, runtime, _cache_key(), onnx_store.onnx_fingerprint(stem))


def check_shape(pixels: np.ndarray, label: str) -> None:
    height, width = pixels.shape[:2]
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise BadImage(f"{label}: {width}x{height} pixels is more elongated than {MAX_ASPECT}:1; "
                       "there is nothing a detector could find in it.")


@st.cache_data(show_spinner=False, max_entries=64)
def decoded_upload(digest: str, _data: bytes, max_side: int, label: str = "upload") -> DecodedImage:
    """An uploaded photo decoded once per content ``digest``, not on every rerun that a slider
    starts (``_data`` is left out of Streamlit's hash: the digest already identifies it)."""
    decoded = decode_image(_data, max_side=max_side)
    check_shape(decoded.pixels, label)
    return decoded


@st.cache_data(show_spinner=False)
def sample_pixels(name: str):
    """A built-in sample photo, read from scikit-image once."""
    return load_sample(name)


@st.cache_data(show_spinner=False, max_entries=64)
def display_copy(image_id: str, _pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy of image ``image_id`` at most :data:`DISPLAY_SIDE` long and its scale (1.0 when
    nothing changed); made once per image, not on every rerun."""
    pixels = _pixels
    longest = max(pixels.shape[:2])
    if longest <= DISPLAY_SIDE:
        return pixels, 1.0
    return resize_longest_side(pixels, DISPLAY_SIDE, min_side=2), DISPLAY_SIDE / longest
