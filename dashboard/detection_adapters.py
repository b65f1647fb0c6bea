"""Detection models and backends held with ``st.cache_resource``: loaded once per server and
shared by every session. Inference on a shared backend is serialised by the backend's lock."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from services.config import get_settings
from services.detection import registry
from services.detection.models import DarknetModel


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
        stem = key.split(":", 1)[1]
        path = registry.darknet_dir() / "uploads" / stem / f"{stem}.weights"
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


def onnx_dir() -> Path:
    return get_settings().model_cache_dir / "onnx"


def save_onnx(name: str, data: bytes, names: list[str]):
    """Validate an uploaded ONNX detector (before it replaces anything) and keep it."""
    from services.detection.backends import OnnxBackend

    digest = hashlib.sha256(data).hexdigest()[:16]
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)[:60] or "model"
    folder = onnx_dir()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".staging-{digest}.onnx"
    staging.write_bytes(data)
    try:
        OnnxBackend(staging, names)
    except Exception:
        staging.unlink(missing_ok=True)
        raise
    final = folder / f"{stem}.onnx"
    staging.replace(final)
    (folder / f"{stem}.names").write_text("\n".join(names) + "\n")
    return stem


def onnx_models() -> list[str]:
    folder = onnx_dir()
    return sorted(p.stem for p in folder.glob("*.onnx")) if folder.is_dir() else []


def onnx_backend(stem: str):
    from services.detection.models import parse_names

    path = onnx_dir() / f"{stem}.onnx"
    names = parse_names((onnx_dir() / f"{stem}.names").read_text(), f"{stem}.names")
    return _onnx_backend(str(path), tuple(names), _fingerprint(path))
