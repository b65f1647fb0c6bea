"""Pretrained-weights registry: where each backbone's ImageNet weights come from.

Every backbone the dashboard uses (VGG16/19, ResNet50, MobileNetV2, EfficientNetB0,
InceptionV3, all without their classifier top) is listed in :data:`BACKBONES` with the weights
file Keras itself downloads: the same file name, official URL and md5 hash that
``keras.applications`` uses. Weights are looked for in this order:

1. the project's model cache (``Settings.model_cache_dir``, default ``<data_root>/models``);
2. Keras's standard cache (``$KERAS_HOME/models``, else ``~/.keras/models`` or ``/tmp/.keras/models``);
3. a download into the model cache, only when asked (progress, md5 check, resumable);
4. a file the user uploads or points to (:func:`install_weights_file`), validated by loading it
   into the architecture; a mismatch names the first mismatching layer and caches nothing.

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
import importlib
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

from services.config import confine, get_settings
from services.download import ProgressCallback, download
from services.errors import UserFacingError

PRESENT, DOWNLOADABLE, MISSING = "present", "downloadable", "missing"
IMAGENET, RANDOM = "imagenet", "random"
MAX_SIDE = 2048
"""Largest input side accepted by :func:`check_input_size` (memory, not architecture)."""

_GCS = "https://storage.googleapis.com/"


class WeightsMissing(UserFacingError):
    """No usable weights file for a backbone; the message names the fix."""


class WeightsMismatch(UserFacingError):
    """A weights file that does not fit the architecture (names the first mismatching layer)."""


class BadInputSize(UserFacingError):
    """An input size a backbone does not accept (names the allowed range)."""


@dataclass(frozen=True)
class BackboneSpec:
    """One Keras application without its top, and the ImageNet weights file Keras uses for it."""

    name: str
    title: str
    module: str
    """Submodule of ``keras.applications`` holding the constructor and ``preprocess_input``."""
    constructor: str
    file_name: str
    """The weights file name exactly as Keras caches it."""
    url: str
    md5: str | None
    """The ``file_hash`` Keras checks (md5); None where Keras checks none (MobileNetV2)."""
    approx_mb: float
    min_side: int
    default_side: int
    size: int | None = None
    """Exact byte size where known (checked on download); None: only the md5 is checked."""
    preprocessing: str = ""
    """What ``preprocess_input`` does, in words."""

    def keras_module(self):
        return importlib.import_module(f"keras.applications.{self.module}")

    def build(self, input_shape: Sequence[int] | None = None):
        """The architecture with ``weights=None`` (random initialisation, no top)."""
        shape = tuple(input_shape) if input_shape else (self.default_side, self.default_side, 3)
        constructor = getattr(self.keras_module(), self.constructor)
        return constructor(include_top=False, weights=None, input_shape=shape)


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "vgg16", "VGG16", "vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _GCS + "tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "6d6bbae143d832006294945121d1f1fc", 58.9, 32, 224,
            preprocessing="RGB to BGR, ImageNet channel means subtracted (caffe style, 0..255 input)"),
        BackboneSpec(
            "vgg19", "VGG19", "vgg19", "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _GCS + "tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "253f8cb515780f3b799900260a226db6", 80.1, 32, 224,
            preprocessing="RGB to BGR, ImageNet channel means subtracted (caffe style, 0..255 input)"),
        BackboneSpec(
            "resnet50", "ResNet50", "resnet50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _GCS + "tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "4d473c1dd8becc155b73f8504c6f6626", 94.8, 32, 224,
            preprocessing="RGB to BGR, ImageNet channel means subtracted (caffe style, 0..255 input)"),
        BackboneSpec(
            "mobilenet_v2", "MobileNetV2 (alpha 1.0)", "mobilenet_v2", "MobileNetV2",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            _GCS + "tensorflow/keras-applications/mobilenet_v2/"
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            None, 9.4, 32, 224,
            preprocessing="scaled from 0..255 to -1..1 (tf style)"),
        BackboneSpec(
            "efficientnet_b0", "EfficientNetB0", "efficientnet", "EfficientNetB0", "efficientnetb0_notop.h5",
            _GCS + "keras-applications/efficientnetb0_notop.h5",
            "50bc09e76180e00e4465e1a485ddc09d", 16.7, 32, 224,
            preprocessing="none (the model rescales and normalises 0..255 input itself)"),
        BackboneSpec(
            "inception_v3", "InceptionV3", "inception_v3", "InceptionV3",
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _GCS + "tensorflow/keras-applications/inception_v3/"
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "bcbd6486424b2319ff4ef7d526e38f63", 87.9, 75, 299,
            preprocessing="scaled from 0..255 to -1..1 (tf style)"),
    )
}


@dataclass(frozen=True)
class WeightsStatus:
    name: str
    state: str
    """"present", "downloadable" or "missing"."""
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


def spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UserFacingError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}.") from None


def model_cache_dir() -> Path:
    return get_settings().model_cache_dir


def keras_cache_dirs() -> list[Path]:
    """Keras's standard cache folders, in the order Keras itself uses them."""
    if os.environ.get("KERAS_HOME"):
        return [Path(os.environ["KERAS_HOME"]).expanduser() / "models"]
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


def _how_to_get(backbone: BackboneSpec, target: Path) -> str:
    return (
        f"Download {backbone.url} (about {backbone.approx_mb:g} MB) on a machine with internet and "
        f"upload it on the weights panel, or copy it to {target}."
    )


def _describe(path: Path, source: str, official: bool) -> str:
    if official:
        return "official ImageNet weights (Keras's md5 verified)"
    manifest = read_manifest(path) if source == "model cache" else {}
    if manifest.get("source") == "upload":
        return (f"user-installed weights file ({manifest.get('original_name') or 'upload'}; not the official "
                "Keras file, or not verifiable)")
    return "ImageNet weights from the official URL (Keras publishes no hash for this file)"


def weights_status(name: str) -> WeightsStatus:
    """Whether the ImageNet weights of ``name`` are present, downloadable or missing, and why."""
    backbone = spec(name)
    path, source, official, problems = _locate(backbone)
    if path is not None:
        return WeightsStatus(name, PRESENT, path, source, official,
                             f"{_describe(path, source, official)} in the {source}: {path}", "")
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
        + _how_to_get(backbone, target))


def all_statuses() -> list[WeightsStatus]:
    return [weights_status(name) for name in BACKBONES]


def resolve_weights(
    name: str,
    *,
    download: bool = False,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """The weights file to load for ``name``; downloads it into the model cache if asked.

    Raises :class:`WeightsMissing` naming the fix when there is no usable file.
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
        return _download(backbone, target, progress, stop)


def download_job(name: str) -> Callable[[Any], dict[str, str]]:
    """A :class:`services.jobs.JobManager` job function downloading ``name``'s weights
    (progress in MB, stop honoured; a stopped download resumes next time)."""
    backbone = spec(name)

    def run(context) -> dict[str, str]:
        def report(done: int, total: int | None) -> None:
            total = total or int(backbone.approx_mb * 1e6)
            context.progress(done / total, f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")

        path = resolve_weights(name, download=True, progress=report, stop=context.stop_event)
        return {"path": str(path)}

    return run


def _download(backbone, target: Path, progress, stop) -> Path:
    path = download(backbone.url, target, size=backbone.size, md5=backbone.md5, progress=progress, stop=stop)
    _write_manifest(path, backbone, "download", url=backbone.url)
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


def _load_checked(model, path: Path, backbone: BackboneSpec, shown_name: str | None = None) -> None:
    shown_name = shown_name or path.name
    mismatch = first_mismatch(model, path, shown_name)
    if mismatch:
        raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: {mismatch}.")
    model.load_weights(str(path))


def install_weights_file(name: str, source: str | os.PathLike | bytes | io.IOBase, *, original_name: str | None = None) -> Path:
    """Validate an uploaded (bytes / file object) or pointed-to (path under the data root) weights
    file by loading it into the architecture, then put it into the model cache.

    A file that does not fit raises :class:`WeightsMismatch` naming the first mismatching layer;
    nothing is cached then.
    """
    backbone = spec(name)
    cache = model_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=f".upload-{name}-", suffix=".h5", dir=cache)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as out:
            copied_name = _copy_source(source, out)
        original_name = original_name or copied_name or "the uploaded file"
        try:
            _load_checked(backbone.build(), temporary, backbone, shown_name=original_name)
        except WeightsMismatch:
            raise
        except Exception as error:  # h5py/keras raise many types for foreign files
            raise WeightsMismatch(
                f"{original_name} could not be loaded into {backbone.title} "
                f"({type(error).__name__}: {error})."
            ) from error
        target = cache / backbone.file_name
        with _lock:
            os.replace(temporary, target)
            _write_manifest(target, backbone, "upload", original_name=original_name)
        return target
    finally:
        temporary.unlink(missing_ok=True)


def _copy_source(source, out) -> str | None:
    """Copy bytes, a file object (e.g. a Streamlit upload) or a confined path into ``out``."""
    if isinstance(source, (bytes, bytearray)):
        out.write(source)
        return None
    if hasattr(source, "read"):
        out.write(source.getvalue() if hasattr(source, "getvalue") else source.read())
        return getattr(source, "name", None)
    path = confine(source)
    if not path.is_file():
        raise UserFacingError(f"{path} is not a file.")
    with open(path, "rb") as handle:
        shutil.copyfileobj(handle, out)
    return path.name


# --- the HDF5 layout Keras distributes ImageNet weights in --------------------------------


def _layer_variables(layer) -> list:
    """A layer's variables in the order Keras's legacy HDF5 loader assigns them."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _read_attribute(group, name: str) -> list[str]:
    """A string-list attribute, joining the chunks Keras writes for long lists."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]


def file_layers(path: Path, shown_name: str | None = None) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(layer name, weight shapes) of every layer with weights in a Keras HDF5 weights file."""
    import h5py

    shown_name = shown_name or path.name
    try:
        with h5py.File(path, "r") as root:
            group = root["model_weights"] if "layer_names" not in root.attrs and "model_weights" in root else root
            if "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
                raise WeightsMismatch(
                    f"{shown_name} is an HDF5 file but not in the layout Keras uses for ImageNet "
                    "weights (no layer_names); upload the original Keras .h5 weights file."
                )
            layers = []
            for layer_name in _read_attribute(group, "layer_names"):
                layer_group = group[layer_name]
                shapes = [tuple(layer_group[w].shape) for w in _read_attribute(layer_group, "weight_names")]
                if shapes:
                    layers.append((layer_name, shapes))
            return layers
    except OSError as error:
        raise WeightsMismatch(f"{shown_name} is not an HDF5 weights file ({error}).") from error


def first_mismatch(model, path: Path, shown_name: str | None = None) -> str | None:
    """None if ``path`` fits ``model`` layer by layer; else the first mismatch, in words."""
    expected = [(layer.name, [tuple(v.shape) for v in _layer_variables(layer)])
                for layer in model.layers if _layer_variables(layer)]
    found = file_layers(path, shown_name)
    for index, (layer_name, shapes) in enumerate(expected):
        if index >= len(found):
            return (f"the file ends after {len(found)} layers with weights; layer #{index} "
                    f"'{layer_name}' (shapes {shapes}) has no weights in it")
        saved_name, saved_shapes = found[index]
        if saved_shapes != shapes:
            return (f"first mismatching layer is #{index} '{layer_name}': the model expects weight "
                    f"shapes {shapes}, the file's layer '{saved_name}' has {saved_shapes}")
    if len(found) > len(expected):
        return (f"the file has {len(found)} layers with weights, the model {len(expected)}; first extra "
                f"layer in the file is '{found[len(expected)][0]}'")
    return None


def write_weights_file(model, path: str | os.PathLike) -> Path:
    """Save ``model``'s weights in the HDF5 layout of Keras's ImageNet files (layer_names,
    weight_names, one dataset per variable), which ``model.load_weights(<name>.h5)`` reads.

    Used to generate stand-in weights for tests and offline demos; such files are never official.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as root:
        root.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        root.attrs["backend"] = b"tensorflow"
        for layer in sorted(model.layers, key=lambda item: item.name):
            group = root.create_group(layer.name)
            variables = _layer_variables(layer)
            names = [f"{layer.name}_{i}_{v.name}:0".encode("utf8") for i, v in enumerate(variables)]
            group.attrs["weight_names"] = names
            for weight_name, variable in zip(names, variables):
                group.create_dataset(weight_name.decode("utf8"), data=variable.numpy())
    return path


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
