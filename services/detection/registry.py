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
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.access import Actor, normalize_owner
from services.config import get_settings
from services.detection.cfg import parse_cfg
from services.detection.model_key import UPLOAD, ModelKey
from services.jobs import kinds
from services.detection.models import CFG_DIR, DarknetModel, coco_names, load_darknet, parse_names, safe_stem
from services.detection.weights import random_weights_bytes
from services.download import ProgressCallback, download
from services.errors import UserFacingError
from services.model_service.cache import file_key



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


_YOLO_FASTEST = ("https://raw.githubusercontent.com/dog-qiuqiu/Yolo-Fastest/96a2900d163196c396e73f3fdab04ca4dd9a2f70/"
                 "ModelZoo/yolo-fastest-1.1_coco")
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
    ModelSpec("yolo-fastest-1.1", "Yolo-Fastest 1.1 (COCO, 1.4 MB)", "yolo-fastest-1.1.cfg",
              f"{_YOLO_FASTEST}/yolo-fastest-1.1.cfg", f"{_YOLO_FASTEST}/yolo-fastest-1.1.weights", 1_384_268,
              default_size=320, weights_sha256="1c445c42bbd6df63edea2cc69f99667b5650d663ca11e34b116240740cd42890"),
)}
OWNER_FILE = "owner"
"""Beside an uploaded model's files: who uploaded it (empty when nobody was signed in)."""
DEMO_KEY = "demo-random"
DEMO_TITLE = "Random weights (demo, detections meaningless)"
DEMO_CFG = "yolov3-tiny.cfg"
DEMO_OBJECTNESS_BIAS, DEMO_HEAD_GAIN = -5.5, 20.0
"""Make the random demo draw a handful of (meaningless) boxes per photo that change with the
image and the thresholds, instead of thousands of identical scores."""


def darknet_dir() -> Path:
    return get_settings().darknet_dir


def upload_weights_path(stem: str) -> Path:
    return darknet_dir() / "uploads" / stem / f"{stem}.weights"


def cache_path_text(path: Path) -> str:
    """``path`` as users may see it: relative to the model cache, never the server's full path."""
    try:
        return f"<model cache>/{path.relative_to(get_settings().model_cache_dir).as_posix()}"
    except ValueError:
        return path.name


def missing_files_message(spec: ModelSpec) -> str | None:
    """What is missing for ``spec`` and how to get it, or None when everything is in place."""
    if spec.weights_path.exists():
        return None
    return (f"{spec.title} needs {spec.weights_name} ({spec.weights_size / 1e6:.0f} MB). Click "
            f"'Download weights' (internet needed), or download {spec.weights_url} on any machine and "
            f"put it at {cache_path_text(spec.weights_path)} (model cache: DASHBOARD_MODEL_CACHE, default "
            f"<data root>/models). You can also upload cfg + weights + names, or try the page "
            f"with the '{DEMO_TITLE}' model.")


def fetch_weights(spec: ModelSpec, progress: ProgressCallback | None = None, stop=None) -> Path:
    """Download (resuming) and verify the weights of ``spec`` into the model cache."""
    return download(spec.weights_url, spec.weights_path, size=spec.weights_size, sha256=spec.weights_sha256,
                    progress=progress, stop=stop)


def submit_download(manager, spec: ModelSpec) -> str:
    """Queue the download of ``spec``'s weights (:func:`download_job`); the job id."""
    return manager.submit(kinds.DETECTION_DOWNLOAD, f"download {spec.weights_name}", {"model": spec.key})


def download_job(params: dict, context) -> dict:
    """Job body (kind ``detection-download``): fetch the weights of ``params["model"]``."""
    spec = REGISTRY.get(str(params.get("model")))
    if spec is None:
        raise UserFacingError(f"unknown model {params.get('model')!r}; known: {', '.join(REGISTRY)}.")
    context.progress(0.0, f"downloading {spec.weights_name}")
    fetch_weights(spec, lambda done, total: context.progress(done / (total or spec.weights_size),
                                                             f"{done / 1e6:.0f} of {spec.weights_size / 1e6:.0f} MB"),
                  context.stop_event)
    return {"model": spec.key, "file": spec.weights_name}


def installed_keys() -> list[str]:
    """Registered models whose weights are in the model cache, in registry order."""
    return [key for key, spec in REGISTRY.items() if spec.weights_path.exists()]


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


@dataclass
class SavedUpload:
    model: DarknetModel
    message: str
    """What happened, in words (kept under which name, or already present)."""


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def save_upload(cfg: tuple[str, bytes], weights: tuple[str, bytes], names: tuple[str, bytes],
                owner: str | None = None) -> SavedUpload:
    """Validate uploaded cfg + weights + names and keep them under ``<model cache>/darknet/uploads``,
    with ``owner`` (who uploaded them; see :mod:`services.access`) in an ``owner`` file beside.

    Files are validated in a staging folder of their own first, so a bad upload never touches a
    good model. An existing model of the same name is never replaced: identical files are
    recognised, different ones are kept beside it as ``<name>-2``, ``<name>-3``... The staged
    folder is renamed into place, which fails rather than merges when another session took the
    name at the same moment (then the next free name is tried).
    """
    names_list = parse_names(names[1].decode("utf-8", errors="replace"), names[0])
    stem = safe_stem(cfg[0], "uploaded")
    uploads = darknet_dir() / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    staging = uploads / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        files = {"cfg": cfg[1], "weights": weights[1], "names": names[1]}
        for suffix, data in files.items():
            (staging / f"{stem}.{suffix}").write_bytes(data)
        digest = _digest(*files.values())
        (staging / "sha256").write_text(digest)
        (staging / OWNER_FILE).write_text(normalize_owner(owner) or "")
        load_darknet(staging / f"{stem}.cfg", staging / f"{stem}.weights", names_list, names_source=names[0])
        final_stem, existed = _place_upload(staging, uploads, stem, digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if existed:
        message = f"{final_stem} is already installed with identical files; nothing was added."
    elif final_stem != stem:
        message = (f"A different model called {stem} is already installed and is kept; "
                   f"this one was added as {final_stem}.")
    else:
        message = f"Added {stem}."
    return SavedUpload(load_uploaded(final_stem), message)


def _place_upload(staging: Path, uploads: Path, stem: str, digest: str) -> tuple[str, bool]:
    """Move ``staging`` to the first free ``uploads/<stem>[-n]``; (name, True) when identical
    files were already installed under that name."""
    for number in range(1, 1000):
        candidate = stem if number == 1 else f"{stem}-{number}"
        final = uploads / candidate
        if (final / "sha256").is_file() and (final / "sha256").read_text() == digest:
            return candidate, True
        if final.exists():
            continue
        # the stored files keep the stem they were validated under; rename them to the candidate
        for path in staging.glob(f"{stem}.*"):
            path.rename(staging / f"{candidate}{path.suffix}")
        try:
            os.rename(staging, final)  # atomic; refuses (never merges) when ``final`` appeared meanwhile
            return candidate, False
        except OSError:
            for path in staging.glob(f"{candidate}.*"):
                path.rename(staging / f"{stem}{path.suffix}")
            continue
    raise UserFacingError(f"too many uploaded models called {stem}; remove some first.")


def upload_owner(stem: str) -> str | None:
    """Who uploaded the Darknet model ``stem`` (None: sign-in was off, or uploaded before owners
    were recorded)."""
    try:
        return normalize_owner((_upload_folder(stem) / OWNER_FILE).read_text())
    except OSError:
        return None


def delete_upload(stem: str, actor: Actor) -> None:
    """Delete the uploaded Darknet model ``stem`` when ``actor`` may (its uploader or an
    administrator). The folder is renamed away first, so the model list never shows half of it."""
    folder = _upload_folder(stem)
    actor.check_can_delete(upload_owner(stem), what=f"the model {stem!r}")
    doomed = folder.with_name(f".deleting-{uuid.uuid4().hex}")
    os.rename(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _upload_folder(stem: str) -> Path:
    folder = upload_weights_path(stem).parent
    if safe_stem(f"{stem}.cfg", "") != stem or not folder.is_dir():
        raise UserFacingError(f"there is no uploaded Darknet model called {stem!r}.")
    return folder


def uploaded_models() -> list[str]:
    folder = darknet_dir() / "uploads"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []


def load_uploaded(stem: str) -> DarknetModel:
    folder = _upload_folder(stem)
    weights_path = upload_weights_path(stem)
    names = parse_names((folder / f"{stem}.names").read_text(errors="replace"), f"{stem}.names")
    return load_darknet(folder / f"{stem}.cfg", weights_path, names,
                        key=str(ModelKey.uploaded(stem)), title=f"{stem} (uploaded)")


def load_model(key: str) -> DarknetModel:
    """The Darknet model ``key``: a registry key, ``demo-random`` or ``upload:<name>``."""
    if key == DEMO_KEY:
        return load_demo()
    parsed = ModelKey.parse(key)
    if parsed.source == UPLOAD:
        return load_uploaded(parsed.name)
    return load_registered(key)


def model_fingerprint(key: str) -> tuple | None:
    """Identifies the weights file of ``key`` on disk (path, size, mtime), so that caches load a
    replaced file again; None when there is no such file yet."""
    parsed = ModelKey.parse(key)
    if key in REGISTRY:
        path = REGISTRY[key].weights_path
    elif parsed.source == UPLOAD:
        path = upload_weights_path(parsed.name)
    else:
        return None
    return file_key(path) if path.is_file() else None


@dataclass
class OpenedBackend:
    backend: object
    """Anything with ``rows(batch)`` and ``name`` (see :mod:`services.detection.backends`)."""
    names: list[str]
    title: str
    random_weights: bool


def open_backend(key: str, backend_name: str) -> OpenedBackend:
    """Build the backend ``backend_name`` of the model ``key`` in this process (a job worker or
    the model service; ``onnx:<name>`` keys take ``onnxruntime`` or ``OpenCV``)."""
    parsed = ModelKey.parse(key)
    if parsed.is_onnx:
        from services.detection.onnx_store import load_onnx

        detector = load_onnx(parsed.name, backend_name)
        return OpenedBackend(detector, detector.names, parsed.name, False)
    from services.detection.backends import make_darknet_backend

    model = load_model(key)
    return OpenedBackend(make_darknet_backend(model, backend_name), model.names, model.title, model.random_weights)
