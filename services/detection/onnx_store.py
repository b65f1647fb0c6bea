"""Uploaded ONNX detectors, kept under ``<model cache>/onnx``: ``<name>.onnx`` with ``<name>.json``
beside it (the family, class names and runtimes found when it was checked).

A file is checked completely before it is kept (see :class:`OnnxDetector`), then tried on a
built-in sample photo: a model that scores no box above the candidate floor there is kept with
a warning saying so, never silently; OpenCV is offered beside onnxruntime only when its
importer reads the file and its output on the sample matches onnxruntime's. Nothing is ever replaced: identical files are recognised,
a different model with a taken name is kept as ``<name>-2``, ... Both files are written under
temporary names and linked into place (``os.link`` fails rather than overwrites), so two
sessions adding the same name at once each get a name of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services import untrusted_json
from services.access import Actor, normalize_owner
from services.config import get_settings
from services.detection.decode import CANDIDATE_FLOOR, preprocess, rows_to_candidates
from services.detection.onnx_layouts import FAMILIES
from services.detection.models import safe_stem
from services.detection.onnx_model import RUNTIMES, OnnxDetector
from services.detection.samples import load_sample
from services.errors import UserFacingError
from services.model_service.cache import file_key

SAMPLE = "astronaut"


def onnx_dir() -> Path:
    return get_settings().onnx_dir


@dataclass(frozen=True)
class OnnxInfo:
    stem: str
    family: str
    names: list[str]
    runtimes: tuple[str, ...]
    """``onnxruntime`` always; ``OpenCV`` when OpenCV's importer reads the file."""
    sha256: str


@dataclass(frozen=True)
class SavedOnnx:
    info: OnnxInfo
    message: str
    warning: str | None = None
    """Set when the model found nothing on the built-in sample."""


def sample_warning(detector: OnnxDetector, rows: np.ndarray, transform) -> str | None:
    """A warning when ``rows`` (the detector's output on the built-in sample) hold no box above
    the candidate floor."""
    if len(rows_to_candidates(rows, transform)):
        return None
    return (f"It scored no box above {CANDIDATE_FLOOR} on the built-in '{SAMPLE}' photo with the "
            f"{detector.family} layout. If it should find something there, its outputs are probably not "
            "what this layout expects: choose the family by hand and add it again.")


def opencv_agrees(data: bytes, detector: OnnxDetector, batch: np.ndarray, rows: np.ndarray) -> bool:
    """Whether OpenCV's importer reads the file and gives onnxruntime's rows on the sample."""
    try:
        opencv = OnnxDetector(data, detector.label, names=detector.names, family=detector.family, runtime="OpenCV")
        other = opencv.rows(batch)
    except UserFacingError:
        return False
    return other.shape == rows.shape and bool(np.allclose(other, rows, rtol=1e-3, atol=1e-3))


def save_onnx(file_name: str, data: bytes, names: list[str] | None = None, family: str = "auto",
              owner: str | None = None) -> SavedOnnx:
    """Check an uploaded ONNX detector and keep it; ``names`` are used when its metadata has none;
    the record names ``owner``, who uploaded it (see :mod:`services.access`). OpenCV is offered
    as a second runtime only when it reads the file and agrees with onnxruntime."""
    stem = safe_stem(file_name, "model")
    detector = OnnxDetector(data, f"{stem}.onnx", names=names, family=family)
    batch, transform = preprocess(load_sample(SAMPLE), detector.input_size)
    rows = detector.rows(batch)
    warning = sample_warning(detector, rows, transform)
    runtimes = ["onnxruntime"] + (["OpenCV"] if opencv_agrees(data, detector, batch, rows) else [])
    digest = hashlib.sha256(data).hexdigest()
    record = {"family": detector.family, "names": detector.names, "runtimes": runtimes, "sha256": digest,
              "owner": normalize_owner(owner)}
    final, existed = _place(stem, data, record)
    info = OnnxInfo(final, detector.family, detector.names, tuple(runtimes), digest)
    if existed:
        message = f"{final} is already installed with identical contents; nothing was added."
    elif final != stem:
        message = f"A different model called {stem} is already installed and is kept; this one was added as {final}."
    else:
        message = f"Added {final}."
    return SavedOnnx(info, f"{message} ({detector.describe()})", warning)


def _place(stem: str, data: bytes, record: dict) -> tuple[str, bool]:
    folder = onnx_dir()
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    temporary_model, temporary_record = folder / f".{token}.onnx.tmp", folder / f".{token}.json.tmp"
    temporary_model.write_bytes(data)
    temporary_record.write_text(json.dumps(record))
    try:
        for number in range(1, 1000):
            candidate = stem if number == 1 else f"{stem}-{number}"
            existing = _read_record(candidate)
            if existing is not None and existing.get("sha256") == record["sha256"]:
                return candidate, True
            try:
                os.link(temporary_record, folder / f"{candidate}.json")  # claims the name, or fails
            except FileExistsError:
                continue
            os.link(temporary_model, folder / f"{candidate}.onnx")
            return candidate, False
        raise UserFacingError(f"too many ONNX models called {stem}; remove some first.")
    finally:
        temporary_model.unlink(missing_ok=True)
        temporary_record.unlink(missing_ok=True)


def _read_record(stem: str) -> dict | None:
    path = onnx_dir() / f"{stem}.json"
    return untrusted_json.read_or(path, None)


def onnx_models() -> list[str]:
    folder = onnx_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.onnx") if (folder / f"{p.stem}.json").is_file())


def onnx_info(stem: str) -> OnnxInfo:
    """What was found when ``stem`` was added (the record is treated as untrusted)."""
    record = _read_record(stem) if safe_stem(f"{stem}.onnx", "") == stem else None
    if record is None or not (onnx_dir() / f"{stem}.onnx").is_file():
        raise UserFacingError(f"there is no uploaded ONNX model called {stem!r}.")
    names, family = record.get("names"), record.get("family")
    runtimes = tuple(r for r in record.get("runtimes", ()) if r in RUNTIMES) or ("onnxruntime",)
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)) or family not in FAMILIES:
        raise UserFacingError(f"the record of the ONNX model {stem} is damaged; add the model again.")
    return OnnxInfo(stem, family, names, runtimes, str(record.get("sha256", "")))


def onnx_owner(stem: str) -> str | None:
    """Who uploaded ``stem`` (None: sign-in was off, or added before owners were recorded)."""
    if safe_stem(f"{stem}.onnx", "") != stem or not (onnx_dir() / f"{stem}.onnx").is_file():
        raise UserFacingError(f"there is no uploaded ONNX model called {stem!r}.")
    return normalize_owner((_read_record(stem) or {}).get("owner"))


def delete_onnx(stem: str, actor: Actor) -> None:
    """Delete the uploaded ONNX model ``stem`` when ``actor`` may (its uploader or an
    administrator): the model file first, so it leaves the list at once, then its record."""
    actor.check_can_delete(onnx_owner(stem), what=f"the model {stem!r}")
    (onnx_dir() / f"{stem}.onnx").unlink(missing_ok=True)
    (onnx_dir() / f"{stem}.json").unlink(missing_ok=True)


def load_onnx(stem: str, runtime: str = "onnxruntime") -> OnnxDetector:
    info = onnx_info(stem)
    if runtime not in info.runtimes:
        raise UserFacingError(f"{stem} cannot run on {runtime}; use {' or '.join(info.runtimes)}.")
    data = (onnx_dir() / f"{stem}.onnx").read_bytes()
    return OnnxDetector(data, f"{stem}.onnx", names=info.names, family=info.family, runtime=runtime)


def onnx_fingerprint(stem: str) -> tuple | None:
    path = onnx_dir() / f"{stem}.onnx"
    return file_key(path) if path.is_file() else None
