"""Pretrained-weights registry: where each backbone's ImageNet weights come from.

Every backbone the dashboard uses is listed in :data:`services.models.backbones.BACKBONES` with
the weights file Keras itself downloads: the same file name, official URL and md5 hash that
``keras.applications`` uses. Weights are looked for in this order:

1. the project's model cache (``Settings.model_cache_dir``, default ``<data_root>/models``);
2. Keras's standard cache (``$KERAS_HOME/models``, else ``~/.keras/models`` or ``/tmp/.keras/models``);
3. a download into the model cache, only when asked (progress, md5 check, resumable);
4. a file the user uploads or points to (:func:`install_weights_file`): Keras's weights file, or
   a full model (``.h5`` or ``.keras``) whose backbone layers are taken by name; validated
   against the architecture, a mismatch names the first mismatching layer and caches nothing.

A file found in a cache must carry Keras's official md5, or have been installed through
:func:`install_weights_file` (recorded in a ``<file>.json`` manifest next to it); anything else
is refused. Random weights are never a fallback: ``load_backbone(..., weights="random")`` must be
asked for explicitly and callers label such models as untrained.

Models are always built with ``weights=None`` and then loaded from the resolved file, which is
exactly the path real ImageNet files take, so tests can use generated files
(:func:`write_weights_file`) and exercise the same code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.access import Actor, normalize_owner
from services.config import confine, display_path, get_settings
from services.download import ProgressCallback, download
from services.errors import UserFacingError
from services.models.backbones import BACKBONES, BackboneSpec, spec
from services.models.weights_h5 import (
    WeightsMismatch, file_layers, first_mismatch, first_mismatch_by_name, is_full_model, load_by_name,
    write_full_model_file, write_weights_file,
)

PRESENT, DOWNLOADABLE, MISSING = "present", "downloadable", "needs internet"
IMAGENET, RANDOM = "imagenet", "random"
MAX_SIDE = 2048
"""Largest input side accepted by :func:`check_input_size` (memory, not architecture)."""


class WeightsMissing(UserFacingError):
    """No usable weights file for a backbone; the message names the fix."""


class BadInputSize(UserFacingError):
    """An input size a backbone does not accept (names the allowed range)."""


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


# --- hashes and manifests -----------------------------------------------------------------

_digest_cache: dict[tuple[str, int, int], dict[str, str]] = {}
_lock = threading.RLock()
_download_lock = threading.Lock()


def file_digests(path: Path) -> dict[str, str]:
    """md5 and sha256 of ``path`` in one read; remembered while size and mtime are unchanged."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _digest_cache:
            return _digest_cache[key]
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    digests = {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}
    with _lock:
        _digest_cache[key] = digests
    return digests


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_manifest(path: Path) -> dict[str, Any]:
    """What is recorded about a cached weights file (source, hashes); {} if nothing."""
    try:
        return json.loads(_manifest_path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write_manifest(path: Path, backbone: BackboneSpec, source: str, **extra: Any) -> None:
    digests = file_digests(path)
    record = {
        "backbone": backbone.name, "file": path.name, "source": source, "bytes": path.stat().st_size,
        **digests, "official": backbone.md5 is not None and digests["md5"] == backbone.md5,
        "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra,
    }
    _manifest_path(path).write_text(json.dumps(record, indent=1))


def _check_cached(backbone: BackboneSpec, path: Path, trust_manifest: bool) -> tuple[bool, bool, str]:
    """(usable, official, problem) for a file found in a cache."""
    digests = file_digests(path)
    if backbone.md5 is None or digests["md5"] == backbone.md5:
        return True, backbone.md5 is not None, ""
    if trust_manifest and read_manifest(path).get("md5") == digests["md5"]:
        return True, False, ""
    return False, False, (
        f"{path} has md5 {digests['md5']}, not the official {backbone.md5}: refused (incomplete or "
        "altered download, or a foreign file)."
    )


# --- status and resolution ----------------------------------------------------------------


def _locate(backbone: BackboneSpec) -> tuple[Path | None, str | None, bool, list[str]]:
    """(path, source, official, problems) following the resolution order."""
    problems: list[str] = []
    candidates = [(model_cache_dir() / backbone.file_name, "model cache", True)]
    candidates += [(folder / backbone.file_name, "Keras cache", False) for folder in keras_cache_dirs()]
    for path, source, trust_manifest in candidates:
        if not path.is_file():
            continue
        usable, official, problem = _check_cached(backbone, path, trust_manifest)
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


UPLOAD_FILE = "weights-upload.bin"
"""Name of an uploaded weights file in a ``weights-download`` job's folder (``files=``)."""


def download_weights_job(params: dict[str, Any], context) -> dict[str, str]:
    """Job body (kind ``weights-download``): get the ImageNet weights of ``params["backbone"]``
    into the model cache. Downloads them (progress in MB, stop honoured; a stopped download
    resumes next time), or, when the job was submitted with the file :data:`UPLOAD_FILE`
    (``params["original_name"]``: its name as uploaded), checks and installs that file
    (:func:`install_weights_file`; the upload is deleted afterwards). The result names the
    backbone and the cached file, never a server path."""
    name = str(params.get("backbone", ""))
    backbone = spec(name)
    upload = Path(context.dir) / UPLOAD_FILE
    if upload.is_file():
        shown = str(params.get("original_name") or "the uploaded file")[:200]
        context.progress(0.1, f"checking {shown} against {backbone.title}")
        try:
            path = install_weights_file(name, upload, original_name=shown, confined=False)
        finally:
            upload.unlink(missing_ok=True)
        return {"backbone": name, "file": path.name, "installed_from": shown}

    def report(done: int, total: int | None) -> None:
        total = total or int(backbone.approx_mb * 1e6)
        context.progress(done / total, f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")

    path = resolve_weights(name, download=True, progress=report, stop=context.stop_event)
    if context.should_stop():
        return {"backbone": name}
    return {"backbone": name, "file": path.name}


def _download(backbone, target: Path, progress, stop, mirror: dict[str, Any]) -> Path:
    url = mirror.get("url") or backbone.url
    checks = {"size": mirror.get("size"), "md5": mirror.get("md5")} if mirror else \
        {"size": backbone.size, "md5": backbone.md5}
    path = download(url, target, **checks, progress=progress, stop=stop)
    _write_manifest(path, backbone, "download", url=url.split("?")[0])
    return path


# --- input constraints and preprocessing --------------------------------------------------


def check_input_size(name: str, size: int | Sequence[int]) -> tuple[int, int, int]:
    """The (height, width, 3) input shape for ``size`` (a side or a shape), or :class:`BadInputSize`.

    ``None`` sides (a fully convolutional backbone taking any size) pass unchecked.
    """
    backbone = spec(name)
    if isinstance(size, int):
        size = (size, size)
    dims = tuple(None if d is None else int(d) for d in size)
    if len(dims) == 3 and dims[2] != 3:
        raise BadInputSize(f"{backbone.title} with ImageNet weights needs 3 colour channels, not {dims[2]}.")
    if len(dims) not in (2, 3):
        raise BadInputSize(f"input size {size!r} is not (height, width) or (height, width, 3).")
    height, width = dims[:2]
    if height is None or width is None:  # any size, checked per image by the caller
        return height, width, 3
    if min(height, width) < backbone.min_side or max(height, width) > MAX_SIDE:
        raise BadInputSize(
            f"{backbone.title} accepts inputs from {backbone.min_side} to {MAX_SIDE} pixels per side "
            f"(default {backbone.default_side}); {height}x{width} is outside that range."
        )
    return height, width, 3


def preprocess_function(name: str) -> Callable:
    """The backbone's own ``preprocess_input`` (expects 0..255 RGB)."""
    return spec(name).keras_module().preprocess_input


# --- loading and installing ---------------------------------------------------------------


def load_backbone(name: str, *, input_shape: Sequence[int] | int | None = None, weights: str = IMAGENET):
    """Build ``name`` without its top and load its weights.

    ``weights="imagenet"`` loads the resolved file (never downloads; see :func:`resolve_weights`)
    and raises :class:`WeightsMissing` if there is none. ``weights="random"`` is the explicitly
    requested random initialisation (an untrained baseline that callers must label as such).
    """
    backbone = spec(name)
    if weights not in (IMAGENET, RANDOM):
        raise UserFacingError(f"weights must be {IMAGENET!r} or {RANDOM!r}, not {weights!r}.")
    shape = check_input_size(name, input_shape or backbone.default_side)
    path = resolve_weights(name) if weights == IMAGENET else None
    model = backbone.build(shape)
    if path is not None:
        _load_checked(model, path, backbone)
    return model


def imagenet_classifier(name: str, path: str | os.PathLike, *, shown_name: str | None = None):
    """The backbone *with* its ImageNet top (1000 classes, default input size), its weights taken
    by name from a full-model ``.h5`` (Keras 2 or 3; the saved config is never read). Used to
    check that an uploaded full model really holds ImageNet weights (it should recognise a dog)."""
    backbone = spec(name)
    model = backbone.build(include_top=True)
    load_by_name(model, Path(path), shown_name)
    return model


def _load_checked(model, path: Path, backbone: BackboneSpec, shown_name: str | None = None) -> None:
    shown_name = shown_name or path.name
    mismatch = first_mismatch(model, path, shown_name)
    if mismatch:
        raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: {mismatch}.")
    try:
        model.load_weights(str(path))
    except (KeyError, ValueError, OSError) as error:  # changed since it was checked, or read differently by Keras
        raise WeightsMismatch(f"{shown_name} could not be loaded into {backbone.title}: the file does not match "
                              "the architecture. Delete it from the model cache and install the weights again.") from error


def install_weights_file(name: str, source: str | os.PathLike | bytes | io.IOBase, *, original_name: str | None = None,
                         confined: bool = True, owner: str | None = None) -> Path:
    """Validate an uploaded (bytes / file object) or pointed-to (path under the data root) file and
    put the backbone's weights into the model cache under Keras's file name.

    Accepted: Keras's no-top weights file (checked layer by layer, cached as is), or a full model
    holding the backbone (a Keras ``.h5`` full model or weights file with the ImageNet top, or a
    ``.keras`` file): the backbone's layers are taken from it by name, checked like any other file
    and cached as a no-top weights file. A file that does not fit raises :class:`WeightsMismatch`
    naming the first mismatching layer; nothing is cached then. A path must lie under the data
    root (``confined=False``: a file the job system wrote into a job folder). The manifest
    records ``owner``, who installed it (see :mod:`services.access`).
    """
    backbone = spec(name)
    cache = model_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=f".upload-{name}-", suffix=".part", dir=cache)
    temporary = Path(temporary_name)
    target = cache / backbone.file_name
    try:
        with os.fdopen(handle, "wb") as out:
            copied_name = _copy_source(source, out, confined)
        original_name = original_name or copied_name or "the uploaded file"
        model = backbone.build()
        try:
            extracted = _fit_upload(model, temporary, backbone, original_name)
        except UserFacingError:
            raise
        except Exception as error:  # h5py/keras raise many types for foreign files
            raise WeightsMismatch(f"{original_name} could not be read as Keras weights for {backbone.title}.") from error
        with _lock:
            if extracted:
                write_weights_file(model, temporary)
            os.replace(temporary, target)
            _write_manifest(target, backbone, "upload", original_name=original_name, owner=normalize_owner(owner),
                            **({"extracted_from": extracted} if extracted else {}))
        return target
    finally:
        temporary.unlink(missing_ok=True)


def _installed_upload(name: str) -> Path:
    """The user-installed weights file of backbone ``name`` in the model cache (refused when the
    file there is a download, or there is none)."""
    backbone = spec(name)
    path = model_cache_dir() / backbone.file_name
    if not path.is_file() or read_manifest(path).get("source") != "upload":
        raise UserFacingError(f"there are no user-installed {backbone.title} weights in the model cache.")
    return path


def installed_weights_owner(name: str) -> str | None:
    """Who installed the user-installed weights of ``name`` (None: sign-in was off)."""
    return normalize_owner(read_manifest(_installed_upload(name)).get("owner"))


def delete_installed_weights(name: str, actor: Actor) -> None:
    """Remove the user-installed weights of ``name`` from the model cache when ``actor`` may (who
    installed them or an administrator); official downloads are not removed here."""
    path = _installed_upload(name)
    actor.check_can_delete(installed_weights_owner(name), what=f"the installed {spec(name).title} weights")
    with _lock:
        path.unlink(missing_ok=True)
        _manifest_path(path).unlink(missing_ok=True)


_HDF5_MAGIC, _ZIP_MAGIC = b"\x89HDF\r\n\x1a\n", b"PK\x03\x04"


def _fit_upload(model, path: Path, backbone: BackboneSpec, shown_name: str) -> str | None:
    """Check ``path`` against ``model``; returns None for a no-top weights file that fits as is,
    or what the weights were taken from (they are then in ``model``)."""
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(_ZIP_MAGIC):
        _copy_from_keras_file(model, path, backbone, shown_name)
        return "a .keras model (layers taken by name)"
    if magic != _HDF5_MAGIC:
        raise WeightsMismatch(f"{shown_name} is not an HDF5 weights file nor a .keras model.")
    in_order = first_mismatch(model, path, shown_name)
    if in_order is None and not is_full_model(path):
        return None
    by_name = first_mismatch_by_name(model, path, shown_name)
    if by_name is not None:
        problem = by_name if is_full_model(path) else in_order
        raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: {problem}.")
    load_by_name(model, path, shown_name)
    return "a full model .h5 (layers taken by name)" if is_full_model(path) else "a weights file (layers taken by name)"


def _copy_from_keras_file(model, path: Path, backbone: BackboneSpec, shown_name: str) -> None:
    """The backbone's layers, by name, from a ``.keras`` model (loaded with ``safe_mode=True``;
    nested models are searched too)."""
    from services.models.saved import ModelRefused, leaf_layers, load_saved_model

    named = path.with_name(path.name + ".keras")  # Keras reads only files named *.keras
    os.link(path, named)
    try:
        loaded = load_saved_model(named, shown_name=shown_name)
    except ModelRefused as error:
        raise WeightsMismatch(str(error)) from None
    finally:
        named.unlink(missing_ok=True)
    source = {layer.name: layer for layer in leaf_layers(loaded)}
    pairs = []
    for layer in model.layers:
        if not layer.weights:
            continue
        found = source.get(layer.name)
        expected = [tuple(v.shape) for v in layer.weights]
        if found is None or [tuple(v.shape) for v in found.weights] != expected:
            what = "is not in it" if found is None else f"has shapes {[tuple(v.shape) for v in found.weights]}"
            raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: the layer '{layer.name}' "
                                  f"(shapes {expected}) {what}.")
        pairs.append((layer, found))
    for layer, found in pairs:
        layer.set_weights(found.get_weights())


def _copy_source(source, out, confined: bool = True) -> str | None:
    """Copy bytes, a file object (e.g. a Streamlit upload) or a confined path into ``out``."""
    if isinstance(source, (bytes, bytearray)):
        out.write(source)
        return None
    if hasattr(source, "read"):
        out.write(source.getvalue() if hasattr(source, "getvalue") else source.read())
        return getattr(source, "name", None)
    path = confine(source) if confined else Path(source)
    if not path.is_file():
        raise UserFacingError(f"{path.name} is not a file.")
    with open(path, "rb") as handle:
        shutil.copyfileobj(handle, out)
    return path.name


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.models.weights [status | download NAME...]``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    command, names = (args[0] if args else "status"), args[1:] or list(BACKBONES)
    try:
        for name in names:
            if command == "download":
                def report(done: int, total: int | None, name=name) -> None:
                    print(f"\r{name}: {done / 1e6:.1f} / {(total or 0) / 1e6:.1f} MB", end="", flush=True)
                print(f"\n{name}: {resolve_weights(name, download=True, progress=report)}")
            else:
                status = weights_status(name)
                print(f"{name:16} {status.state:12} {status.reason} {status.fix}".rstrip())
    except UserFacingError as error:
        print(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
