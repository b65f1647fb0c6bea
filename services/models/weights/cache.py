"""Where a backbone's ImageNet weights are found, in the resolution order of the package
docstring: the model cache, Keras's cache, a download into the model cache when asked.
:func:`weights_status` says which (and the fix when there is none); :func:`resolve_weights`
returns the file to load."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.config import display_path, get_settings
from services.download import ProgressCallback, download
from services.errors import UserFacingError
from services.models.backbones import BACKBONES, BackboneSpec, spec
from services.models.weights.manifest import check_cached, read_manifest, write_manifest
from services.models.weights_h5 import WeightsMismatch

PRESENT, DOWNLOADABLE, MISSING = "present", "downloadable", "needs internet"


class WeightsMissing(UserFacingError):
    """No usable weights file for a backbone; the message names the fix."""


@dataclass(frozen=True)
class WeightsStatus:
    name: str
    state: str
    """"present", "downloadable" or "needs internet" (absent, and downloads are off)."""
    path: Path | None
    """The file that will be loaded (present) or where a download/upload will go."""
    source: str | None
    """Where a present file was found: "model cache", "Keras cache" (None otherwise)."""
    official: bool
    """True when the file carries Keras's official hash (False for user-installed files)."""
    reason: str
    fix: str

    @property
    def usable(self) -> bool:
        return self.state == PRESENT


def model_cache_dir() -> Path:
    return get_settings().model_cache_dir


def keras_cache_dirs() -> list[Path]:
    """Keras's standard cache folders, in the order Keras itself uses them."""
    keras_home = get_settings().keras_home
    if keras_home:
        return [keras_home / "models"]
    return [Path.home() / ".keras" / "models", Path(tempfile.gettempdir()) / ".keras" / "models"]


_download_lock = threading.Lock()


def _locate(backbone: BackboneSpec) -> tuple[Path | None, str | None, bool, list[str]]:
    """(path, source, official, problems) following the resolution order."""
    problems: list[str] = []
    candidates = [(model_cache_dir() / backbone.file_name, "model cache", True)]
    candidates += [(folder / backbone.file_name, "Keras cache", False) for folder in keras_cache_dirs()]
    for path, source, trust_manifest in candidates:
        if not path.is_file():
            continue
        usable, official, problem = check_cached(backbone, path, trust_manifest)
        if usable:
            return path, source, official, problems
        problems.append(problem)
    return None, None, False, problems


UPLOAD_PLACE = "the Transfer learning page (Backbones and their ImageNet weights)"
"""Where a weights file is uploaded, as the messages name it."""


def _how_to_get(backbone: BackboneSpec, target: Path) -> str:
    return (
        f"Needs internet: download {backbone.url} (about {backbone.approx_mb:g} MB) on a machine with internet, "
        f"then put the file at {display_path(target)} or upload it on {UPLOAD_PLACE}."
    )


def _describe(path: Path, source: str, official: bool, backbone: BackboneSpec) -> str:
    if official:
        return "official ImageNet weights (Keras's md5 verified)"
    manifest = read_manifest(path) if source == "model cache" else {}
    if manifest.get("source") == "upload":
        return (f"user-installed weights file ({manifest.get('original_name') or 'upload'}; not the official "
                "Keras file, or not verifiable)")
    if manifest.get("url") not in (None, backbone.url.split("?")[0]):
        return "weights downloaded from a mirror, not Keras's address (not verifiable against Keras)"
    return "ImageNet weights from the official URL (Keras publishes no hash for this file)"


def weights_status(name: str) -> WeightsStatus:
    """Whether the ImageNet weights of ``name`` are present, downloadable or missing, and why."""
    backbone = spec(name)
    path, source, official, problems = _locate(backbone)
    if path is not None:
        return WeightsStatus(name, PRESENT, path, source, official,
                             f"{_describe(path, source, official, backbone)} in the {source}: {display_path(path)}", "")
    target = model_cache_dir() / backbone.file_name
    problem = (" " + " ".join(problems)) if problems else ""
    if get_settings().offline:
        return WeightsStatus(
            name, MISSING, target, None, False,
            f"No {backbone.title} weights in the model cache or Keras cache, and downloads are off "
            f"(DASHBOARD_OFFLINE).{problem}",
            _how_to_get(backbone, target))
    return WeightsStatus(
        name, DOWNLOADABLE, target, None, False,
        f"No {backbone.title} weights cached yet; they can be downloaded (about {backbone.approx_mb:g} MB)."
        f"{problem}",
        f"Press download (or run `python -m services.models.weights download {name}`), or upload the file. "
        f"Without internet: put {backbone.file_name} at {display_path(target)}.")


def all_statuses() -> list[WeightsStatus]:
    return [weights_status(name) for name in BACKBONES]


def resolve_weights(
    name: str,
    *,
    download: bool = False,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    mirror: dict[str, Any] | None = None,
) -> Path:
    """The weights file to load for ``name``; downloads it into the model cache if asked.

    ``mirror`` (``{"url", "md5"?, "size"?}``) downloads from another address than Keras's, with
    those checks (a lab mirror, or tests' local server). Raises :class:`WeightsMissing` naming
    the fix when there is no usable file.
    """
    backbone = spec(name)
    path, _, _, problems = _locate(backbone)
    if path is not None:
        return path
    if not download:
        status = weights_status(name)
        raise WeightsMissing(f"{status.reason} {status.fix}")
    target = model_cache_dir() / backbone.file_name
    if target.exists():  # present but refused above: never download over it silently
        raise WeightsMismatch(" ".join(problems) + f" Delete {target} or upload a correct file.")
    with _download_lock:
        return _download(backbone, target, progress, stop, mirror or {})


def _download(backbone, target: Path, progress, stop, mirror: dict[str, Any]) -> Path:
    url = mirror.get("url") or backbone.url
    checks = {"size": mirror.get("size"), "md5": mirror.get("md5")} if mirror else \
        {"size": backbone.size, "md5": backbone.md5}
    path = download(url, target, **checks, progress=progress, stop=stop)
    write_manifest(path, backbone, "download", url=url.split("?")[0])
    return path
