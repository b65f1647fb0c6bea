"""Known Darknet models, where their files come from, and the random-weights demo model.

The cfgs and ``coco.names`` are shipped in ``services/detection/cfgs`` (public Darknet files,
YOLO license); only the weights are downloaded, into ``<model cache>/darknet/``. Their sizes
are the exact sizes the cfgs imply, so a download is verified twice: by the downloader against
the registry and by the weights reader against the cfg. No checksum is listed: the official
sites publish none and none could be verified from this machine; an optional ``sha256`` field
is honoured when filled in.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.config import get_settings
from services.detection.cfg import parse_cfg
from services.detection.models import DarknetModel, load_darknet, parse_names
from services.detection.weights import random_weights_bytes
from services.download import ProgressCallback, download
from services.errors import UserFacingError

CFG_DIR = Path(__file__).resolve().parent / "cfgs"
COCO_NAMES = CFG_DIR / "coco.names"


@dataclass(frozen=True)
class ModelSpec:
    key: str
    title: str
    cfg_file: str
    cfg_url: str
    weights_url: str
    weights_size: int
    default_size: int = 416
    weights_sha256: str | None = None

    @property
    def cfg_path(self) -> Path:
        return CFG_DIR / self.cfg_file

    @property
    def weights_path(self) -> Path:
        return darknet_dir() / f"{self.key}.weights"

    @property
    def weights_name(self) -> str:
        return self.weights_url.rsplit("/", 1)[-1]


REGISTRY: dict[str, ModelSpec] = {spec.key: spec for spec in (
    ModelSpec("yolov3", "YOLOv3 (COCO, the book's model)", "yolov3.cfg",
              "https://raw.githubusercontent.com/pjreddie/darknet/master/cfg/yolov3.cfg",
              "https://pjreddie.com/media/files/yolov3.weights", 248_007_048),
    ModelSpec("yolov3-tiny", "YOLOv3-tiny (COCO)", "yolov3-tiny.cfg",
              "https://raw.githubusercontent.com/pjreddie/darknet/master/cfg/yolov3-tiny.cfg",
              "https://pjreddie.com/media/files/yolov3-tiny.weights", 35_434_956),
    ModelSpec("yolov4-tiny", "YOLOv4-tiny (COCO)", "yolov4-tiny.cfg",
              "https://raw.githubusercontent.com/AlexeyAB/darknet/master/cfg/yolov4-tiny.cfg",
              "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.weights",
              24_251_276),
)}
DEMO_KEY = "demo-random"
DEMO_TITLE = "Random weights (demo, detections meaningless)"
DEMO_CFG = "yolov3-tiny.cfg"
DEMO_OBJECTNESS_BIAS, DEMO_HEAD_GAIN = -5.5, 20.0
"""Make the random demo draw a handful of (meaningless) boxes per photo that change with the
image and the thresholds, instead of thousands of identical scores."""


def darknet_dir() -> Path:
    return get_settings().model_cache_dir / "darknet"


def onnx_dir() -> Path:
    return get_settings().model_cache_dir / "onnx"


def safe_stem(file_name: str, default: str) -> str:
    """The stem of an uploaded file's name, reduced to characters safe in a file name; never
    hidden, never ``..`` (a file called ``...cfg`` has the stem ``..``)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(file_name).stem)
    return cleaned.lstrip(".")[:60] or default


def upload_weights_path(stem: str) -> Path:
    return darknet_dir() / "uploads" / stem / f"{stem}.weights"


def coco_names() -> list[str]:
    return parse_names(COCO_NAMES.read_text(), COCO_NAMES.name)


def missing_files_message(spec: ModelSpec) -> str | None:
    """What is missing for ``spec`` and how to get it, or None when everything is in place."""
    if spec.weights_path.exists():
        return None
    return (f"{spec.title} needs {spec.weights_name} ({spec.weights_size / 1e6:.0f} MB). Click "
            f"'Download weights' (internet needed), or download {spec.weights_url} on any machine and "
            f"put it at {spec.weights_path}. You can also upload cfg + weights + names, or try the page "
            f"with the '{DEMO_TITLE}' model.")


def fetch_weights(spec: ModelSpec, progress: ProgressCallback | None = None, stop=None) -> Path:
    """Download (resuming) and verify the weights of ``spec`` into the model cache."""
    return download(spec.weights_url, spec.weights_path, size=spec.weights_size, sha256=spec.weights_sha256,
                    progress=progress, stop=stop)


def load_registered(key: str) -> DarknetModel:
    spec = REGISTRY.get(key)
    if spec is None:
        raise UserFacingError(f"unknown model {key!r}; known: {', '.join(REGISTRY)}.")
    message = missing_files_message(spec)
    if message:
        raise UserFacingError(message)
    return load_darknet(spec.cfg_path, spec.weights_path, coco_names(), key=spec.key, title=spec.title)


def load_demo(seed: int = 0) -> DarknetModel:
    """YOLOv3-tiny with random weights of the exact Darknet layout (written once to the cache).
    It runs end to end on any machine; its boxes mean nothing and the page says so."""
    cfg_path = CFG_DIR / DEMO_CFG
    weights_path = darknet_dir() / f"{DEMO_KEY}-{seed}.weights"
    if not weights_path.exists():
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        config = parse_cfg(cfg_path.read_text(), cfg_path.name)
        temporary = weights_path.with_suffix(".tmp")
        temporary.write_bytes(random_weights_bytes(config, seed=seed, objectness_bias=DEMO_OBJECTNESS_BIAS,
                                                    head_gain=DEMO_HEAD_GAIN))
        temporary.replace(weights_path)
    return load_darknet(cfg_path, weights_path, coco_names(), key=DEMO_KEY, title=DEMO_TITLE,
                        random_weights=True)


def save_upload(cfg: tuple[str, bytes], weights: tuple[str, bytes], names: tuple[str, bytes]) -> DarknetModel:
    """Validate uploaded cfg + weights + names and keep them under ``<model cache>/darknet/uploads``.

    Files are validated in a staging folder first, so a bad upload never replaces a good model.
    """
    names_list = parse_names(names[1].decode("utf-8", errors="replace"), names[0])
    stem = safe_stem(cfg[0], "uploaded")
    staging = darknet_dir() / "uploads" / f".staging-{stem}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / f"{stem}.cfg").write_bytes(cfg[1])
    (staging / f"{stem}.weights").write_bytes(weights[1])
    (staging / f"{stem}.names").write_bytes(names[1])
    try:
        load_darknet(staging / f"{stem}.cfg", staging / f"{stem}.weights", names_list,
                     names_source=names[0])
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = darknet_dir() / "uploads" / stem
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return load_darknet(final / f"{stem}.cfg", final / f"{stem}.weights", names_list,
                        key=f"upload:{stem}", title=f"{stem} (uploaded)", names_source=names[0])


def uploaded_models() -> list[str]:
    folder = darknet_dir() / "uploads"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []


def load_uploaded(stem: str) -> DarknetModel:
    weights_path = upload_weights_path(stem)
    folder = weights_path.parent
    names = parse_names((folder / f"{stem}.names").read_text(errors="replace"), f"{stem}.names")
    return load_darknet(folder / f"{stem}.cfg", weights_path, names,
                        key=f"upload:{stem}", title=f"{stem} (uploaded)")


def save_onnx(name: str, data: bytes, names: list[str]) -> str:
    """Validate an uploaded ONNX detector (before it replaces anything), keep it with its names
    under ``<model cache>/onnx`` and return its stem."""
    from services.detection.backends import OnnxBackend

    stem = safe_stem(name, "model")
    folder = onnx_dir()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".staging-{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    staging.write_bytes(data)
    try:
        OnnxBackend(staging, names)
    except Exception:
        staging.unlink(missing_ok=True)
        raise
    staging.replace(folder / f"{stem}.onnx")
    (folder / f"{stem}.names").write_text("\n".join(names) + "\n")
    return stem


def onnx_models() -> list[str]:
    folder = onnx_dir()
    return sorted(p.stem for p in folder.glob("*.onnx")) if folder.is_dir() else []


def onnx_names(stem: str) -> list[str]:
    return parse_names((onnx_dir() / f"{stem}.names").read_text(), f"{stem}.names")
