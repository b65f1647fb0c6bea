"""Detection models and backends held with ``st.cache_resource``: loaded once per server and
shared by every session. Inference on a shared backend is serialised by the backend's lock."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from services.config import get_settings
from services.detection import registry
from services.detection.models import DarknetModel
from services.detection.samples import load_sample
from services.images import DecodedImage, decode_image


def _cache_key() -> str:
    return str(get_settings().model_cache_dir)


def _fingerprint(path: Path) -> tuple[str, int, float]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime


@st.cache_resource(show_spinner=False, max_entries=4)
def _darknet_model(key: str, cache_dir: str, fingerprint: tuple | None) -> DarknetModel:
    if key == registry.DEMO_KEY:
        return registry.load_demo()
    if key.startswith("upload:"):
        return registry.load_uploaded(key.split(":", 1)[1])
    return registry.load_registered(key)


def _model_fingerprint(key: str) -> tuple | None:
    """Identifies the weights file on disk, so a replaced file is loaded again."""
    if key in registry.REGISTRY:
        path = registry.REGISTRY[key].weights_path
    elif key.startswith("upload:"):
        path = registry.upload_weights_path(key.split(":", 1)[1])
    else:
        return None
    return _fingerprint(path) if path.exists() else None


def darknet_model(key: str) -> DarknetModel:
    """The model ``key`` (a registry key, ``demo-random`` or ``upload:<name>``), loaded once."""
    return _darknet_model(key, _cache_key(), _model_fingerprint(key))


@st.cache_resource(show_spinner=False, max_entries=6)
def _darknet_backend(key: str, backend: str, cache_dir: str, fingerprint: tuple | None):
    from services.detection.backends import make_darknet_backend

    return make_darknet_backend(_darknet_model(key, cache_dir, fingerprint), backend)


def darknet_backend(key: str, backend: str):
    """The backend ``backend`` ("TensorFlow" or "OpenCV") of the model ``key``, built once."""
    return _darknet_backend(key, backend, _cache_key(), _model_fingerprint(key))


@st.cache_resource(show_spinner=False, max_entries=4)
def _onnx_backend(path: str, names: tuple[str, ...], fingerprint: tuple):
    from services.detection.backends import OnnxBackend

    return OnnxBackend(path, list(names))


def onnx_backend(stem: str):
    """The uploaded ONNX detector ``stem``, built once (again when its file is replaced)."""
    path = registry.onnx_dir() / f"{stem}.onnx"
    return _onnx_backend(str(path), tuple(registry.onnx_names(stem)), _fingerprint(path))


@st.cache_data(show_spinner=False, max_entries=64)
def decoded_upload(digest: str, _data: bytes, max_side: int) -> DecodedImage:
    """An uploaded photo decoded once per content ``digest``, not on every rerun that a slider
    starts (``_data`` is left out of Streamlit's hash: the digest already identifies it)."""
    return decode_image(_data, max_side=max_side)


@st.cache_data(show_spinner=False)
def sample_pixels(name: str):
    """A built-in sample photo, read from scikit-image once."""
    return load_sample(name)
