"""All settings of the dashboard in one place, and the layout of the data root.

- Every environment variable the app reads is read here, and only here (a test guards it):
  :func:`get_settings` returns them as one :class:`Settings` object; other modules ask it, or
  are handed values from it. Their names are the constants of :class:`Env`, also used where the
  app sets a variable for a child process (the launcher's web server and ingest endpoint, job
  workers, the model service). Settings are read on each call of :func:`get_settings` (cheap),
  so tests and CLIs can change them with environment variables; a malformed whole number is
  refused by name when they are read (the two Darknet caps fall back to their defaults). Every setting is documented in the README's configuration table.
- The top-level folders of the data root are named once, in :class:`DataLayout` (a property
  each, e.g. ``settings.jobs_dir``); :data:`DATA_ROOT_FOLDERS` lists them for the guard that
  keeps datasets out of them (``services.datasets.sources.MANAGED_FOLDERS``).

One exception reads its own variables: :mod:`services.training.remote`, the client library a
Keras script imports on another machine (``Env.SPOOL_DIR``, ``Env.INGEST_TOKEN`` for its
``deliver`` command); it still takes the names from :class:`Env`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.errors import PathOutsideRoot, UserFacingError


class Env:
    """The names of the environment variables the app reads (and sets for its children)."""

    DATA_DIR = "DASHBOARD_DATA_DIR"
    MODEL_CACHE = "DASHBOARD_MODEL_CACHE"
    OFFLINE = "DASHBOARD_OFFLINE"
    PROFILE = "DASHBOARD_PROFILE"
    MAX_IMAGE_PIXELS = "DASHBOARD_MAX_IMAGE_PIXELS"
    MAX_IMAGE_FILE_BYTES = "DASHBOARD_MAX_IMAGE_FILE_BYTES"
    MAX_DECODE_BYTES = "DASHBOARD_MAX_DECODE_BYTES"
    MAX_ZIP_BYTES = "DASHBOARD_MAX_ZIP_BYTES"
    MAX_ZIP_MEMBERS = "DASHBOARD_MAX_ZIP_MEMBERS"
    MAX_UPLOAD_FILES = "DASHBOARD_MAX_UPLOAD_FILES"
    MAX_UPLOAD_BYTES = "DASHBOARD_MAX_UPLOAD_BYTES"
    MAX_CONCURRENT_RUNS = "DASHBOARD_MAX_CONCURRENT_RUNS"
    MAX_JOBS = "DASHBOARD_MAX_JOBS"
    MAX_DOWNLOADS = "DASHBOARD_MAX_DOWNLOADS"
    WARM_WORKER = "DASHBOARD_WARM_WORKER"
    PREWARM = "DASHBOARD_PREWARM"
    RUNNER_IDLE_S = "DASHBOARD_RUNNER_IDLE_S"
    JOB_STALE_S = "DASHBOARD_JOB_STALE_S"
    SERVICE_IDLE_S = "DASHBOARD_SERVICE_IDLE_S"
    SERVICE_MODELS = "DASHBOARD_SERVICE_MODELS"
    ONE_TENSORFLOW_PROCESS = "DASHBOARD_ONE_TENSORFLOW_PROCESS"
    OPENCV_WINOGRAD = "DASHBOARD_OPENCV_WINOGRAD"
    DOWNLOAD_MIRROR = "DASHBOARD_DOWNLOAD_MIRROR"
    MAP_MODELS_KEPT = "DASHBOARD_MAP_MODELS_KEPT"
    REUSED_WORKER_MAX_MB = "DASHBOARD_REUSED_WORKER_MAX_MB"
    DARKNET_MAX_LAYERS = "DASHBOARD_DARKNET_MAX_LAYERS"
    DARKNET_MAX_ACTIVATION_MB = "DASHBOARD_DARKNET_MAX_ACTIVATION_MB"
    INGEST_HOST = "DASHBOARD_INGEST_HOST"
    INGEST_PORT = "DASHBOARD_INGEST_PORT"
    INGEST_TOKEN = "DASHBOARD_INGEST_TOKEN"
    SPOOL_DIR = "DASHBOARD_SPOOL_DIR"
    """Read by the remote client (:mod:`services.training.remote`) on the script's machine."""
    ADMINS = "DASHBOARD_ADMINS"
    OWNER = "DASHBOARD_OWNER"
    TENSORBOARD = "DASHBOARD_TENSORBOARD"
    DEMO_SOURCES = "DASHBOARD_DEMO_SOURCES"
    # Other programs' variables the app reads.
    STREAMLIT_ADDRESS = "STREAMLIT_SERVER_ADDRESS"
    HOSTNAME = "HOSTNAME"
    KERAS_HOME = "KERAS_HOME"
    TF_CONFIG = "TF_CONFIG"
    PYTHONPATH = "PYTHONPATH"
    # Set by the app for itself (and so for anything it starts).
    TMPDIR = "TMPDIR"
    TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


DEFAULT_DATA_DIR = "data"
"""The data root when ``DASHBOARD_DATA_DIR`` is unset (relative to the working folder)."""
DEFAULT_INGEST_PORT = 8502
"""The remote-logging endpoint's port when ``DASHBOARD_INGEST_PORT`` is unset."""

# --- the data root's top-level folders (see DataLayout) -----------------------------------------
DATASETS, SPLITS, CACHE, DOWNLOADS = "datasets", "splits", "cache", "downloads"
RUNS, JOBS, SERVICE, FEATURES, TISSUEMAP, MODELS = "runs", "jobs", "run", "features", "tissuemap", "models"
DATA_ROOT_FOLDERS = frozenset({DATASETS, SPLITS, CACHE, DOWNLOADS, RUNS, JOBS, SERVICE, FEATURES, TISSUEMAP, MODELS})
"""Every top-level folder the dashboard itself creates in the data root (never a dataset)."""
# --- the model cache's folders --------------------------------------------------------------------
DARKNET, ONNX, MAGENTA = "darknet", "onnx", "magenta"

LAB, CLOUD = "lab", "cloud"
PROFILES = (LAB, CLOUD)
COMMUNITY_CLOUD_CHECKOUTS = Path("/mount/src")
"""Where Streamlit Community Cloud clones the app's repository (``/mount/src/<repo>``)."""
_REPO_ROOT = Path(__file__).resolve().parent.parent


def on_community_cloud(environ: dict[str, str] | None = None, cwd: str | None = None,
                       checkout: Path | None = None) -> bool:
    """Whether the app runs on Streamlit Community Cloud. Community Cloud sets no documented
    marker, so the rule uses what every Community Cloud container shows: the app's checkout (or
    the working folder) lies under ``/mount/src/``, or the host is named ``streamlit`` and
    ``/mount/src`` exists. ``environ``, ``cwd`` and ``checkout`` default to this process's own."""
    environ = os.environ if environ is None else environ
    places = (Path(cwd if cwd is not None else os.getcwd()), checkout if checkout is not None else _REPO_ROOT)
    if any(place == COMMUNITY_CLOUD_CHECKOUTS or COMMUNITY_CLOUD_CHECKOUTS in place.parents for place in places):
        return True
    return environ.get(Env.HOSTNAME) == "streamlit" and COMMUNITY_CLOUD_CHECKOUTS.is_dir()


def profile(environ: dict[str, str] | None = None, cwd: str | None = None, checkout: Path | None = None) -> str:
    """``lab`` (a lab server: prewarmed workers, long idle exits) or ``cloud`` (a small box: no
    prewarm, nothing TensorFlow before a click, short idle exits). ``DASHBOARD_PROFILE`` wins;
    unset, ``cloud`` on Streamlit Community Cloud (:func:`on_community_cloud`), else ``lab``."""
    environ = os.environ if environ is None else environ
    chosen = (environ.get(Env.PROFILE) or "").strip().lower()
    if chosen:
        if chosen not in PROFILES:
            raise UserFacingError(f"the setting {Env.PROFILE}={chosen[:20]!r} is not one of "
                                  f"{', '.join(PROFILES)}; fix or unset it.")
        return chosen
    return CLOUD if on_community_cloud(environ, cwd, checkout) else LAB


def env_flag(name: str, default: bool) -> bool:
    """A yes/no setting: ``0``, ``false`` or ``no`` turn it off, any other value on."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() not in ("0", "false", "no")


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment (``1_000`` allowed); a bad value is refused by name."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise UserFacingError(f"the setting {name}={raw!r} is not a whole number; fix or unset it.") from None


def env_positive_int(name: str, default: int) -> int:
    """A lenient integer setting: anything but a positive whole number means ``default``."""
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def env_path(name: str) -> Path | None:
    """A path setting, ``~`` expanded and resolved; None when unset."""
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else None


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a child process of the app: this one's, unbuffered output, the
    repository first on ``PYTHONPATH`` (so ``python -m services...`` works from any folder),
    and ``extra`` (e.g. ``{Env.DATA_DIR: ...}``)."""
    python_path = os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get(Env.PYTHONPATH)]))
    return {**os.environ, "PYTHONUNBUFFERED": "1", Env.PYTHONPATH: python_path, **extra}


class DataLayout:
    """The top-level folders of a data root, one property each: the only place their names are
    joined to the root. :class:`Settings` has them for the configured data root;
    :class:`DataRoot` for another one (e.g. the data root of a process being stopped)."""

    data_root: Path

    @property
    def datasets_dir(self) -> Path:
        """Datasets, one folder each (``services.datasets``)."""
        return self.data_root / DATASETS

    @property
    def splits_dir(self) -> Path:
        """Saved splits, ``<dataset>/<name>.csv`` (``services.datasets.splits``)."""
        return self.data_root / SPLITS

    @property
    def cache_dir(self) -> Path:
        """Derived data that can be rebuilt (the dataset index, ``services.datasets.index``)."""
        return self.data_root / CACHE

    @property
    def downloads_dir(self) -> Path:
        """Downloaded archives before extraction (Kather 2016, NCT-CRC-HE, the large Kather image)."""
        return self.data_root / DOWNLOADS

    @property
    def runs_dir(self) -> Path:
        """Training runs and their SQLite store (``services.training.store``, ``run_layout``)."""
        return self.data_root / RUNS

    @property
    def jobs_dir(self) -> Path:
        """Background jobs and their SQLite store (``services.jobs``, ``run_layout``)."""
        return self.data_root / JOBS

    @property
    def service_dir(self) -> Path:
        """The model service's socket, token, lock and log (``services.model_service.address``)."""
        return self.data_root / SERVICE

    @property
    def features_dir(self) -> Path:
        """Cached backbone features, one folder per backbone (``services.transfer.features``)."""
        return self.data_root / FEATURES

    @property
    def tissuemap_dir(self) -> Path:
        """The tissue-map demo slide and uploaded slides (``services.tissuemap``)."""
        return self.data_root / TISSUEMAP

    @property
    def default_model_cache_dir(self) -> Path:
        """The model cache unless ``DASHBOARD_MODEL_CACHE`` puts it elsewhere."""
        return self.data_root / MODELS


@dataclass(frozen=True)
class DataRoot(DataLayout):
    """The folders of a data root other than the configured one."""

    data_root: Path


@dataclass(frozen=True)
class Settings(DataLayout):
    """Every setting, read from the environment by :func:`get_settings`; the folders of the
    data root come from :class:`DataLayout`."""

    data_root: Path
    """Everything the dashboard reads or writes lives under here (``DASHBOARD_DATA_DIR``)."""
    model_cache_dir: Path
    """Pretrained weights, Darknet and ONNX detectors, the Magenta style networks
    (``DASHBOARD_MODEL_CACHE``, default ``<data root>/models``)."""
    offline: bool
    """``DASHBOARD_OFFLINE=1`` never touches the network (downloads fail with instructions)."""
    max_image_pixels: int
    """Decompression-bomb guard: images with more pixels are refused (``DASHBOARD_MAX_IMAGE_PIXELS``)."""
    max_image_file_bytes: int
    """Image files larger than this are refused before any byte is read (``DASHBOARD_MAX_IMAGE_FILE_BYTES``)."""
    max_decode_bytes: int
    """Memory a decode may need, estimated from the image header (``DASHBOARD_MAX_DECODE_BYTES``)."""
    max_zip_bytes: int
    """Cap on the total uncompressed size of an extracted zip (``DASHBOARD_MAX_ZIP_BYTES``)."""
    max_zip_members: int
    """Cap on the number of members of an extracted zip (``DASHBOARD_MAX_ZIP_MEMBERS``)."""
    max_upload_files: int
    """Files one upload (one job) may carry (``DASHBOARD_MAX_UPLOAD_FILES``)."""
    max_upload_bytes: int
    """Total bytes of the files one upload (one job) may carry (``DASHBOARD_MAX_UPLOAD_BYTES``)."""
    max_concurrent_runs: int
    """TensorFlow jobs executing at once: training runs, comparisons, style transfer, batch
    detection and tissue maps share it (``DASHBOARD_MAX_CONCURRENT_RUNS``; default 1)."""
    max_background_jobs: int
    """CPU jobs (indexing, imports) executing at once, each in a worker process of the job
    runner (``DASHBOARD_MAX_JOBS``; default 2)."""
    tensorboard: bool
    """Write TensorBoard event files beside each training run (``DASHBOARD_TENSORBOARD=0`` turns off)."""
    demo_sources: Path | None = None
    """A JSON file replacing the real-tissue demo's download addresses and checksums
    (``DASHBOARD_DEMO_SOURCES``): a lab mirror, or the tests' local server. See docs/demo.md."""
    profile: str = LAB
    """``lab`` or ``cloud`` (``DASHBOARD_PROFILE``; see :func:`profile`)."""
    max_downloads: int = 3
    """Download jobs executing at once (``DASHBOARD_MAX_DOWNLOADS``)."""
    warm_worker: bool = True
    """A TensorFlow worker kept warm beside the job runner (``DASHBOARD_WARM_WORKER``; cloud: off)."""
    prewarm: bool = True
    """Start the job runner (and its warm worker) when a page opens, not with the first job
    (``DASHBOARD_PREWARM``; cloud: off; always off without a warm worker)."""
    runner_idle_s: float = 600.0
    """The job runner exits after this long with nothing to do (``DASHBOARD_RUNNER_IDLE_S``; cloud: 60)."""
    job_stale_s: float = 30.0
    """A running job silent this long is ended as interrupted (``DASHBOARD_JOB_STALE_S``)."""
    service_idle_s: float = 1800.0
    """The model service exits after this long without a request (``DASHBOARD_SERVICE_IDLE_S``; cloud: 60)."""
    service_models: int = 6
    """Models the model service keeps loaded (``DASHBOARD_SERVICE_MODELS``)."""
    one_tensorflow_process: bool = False
    """At most one TensorFlow process alive at a time (``DASHBOARD_ONE_TENSORFLOW_PROCESS``; on
    under the cloud profile): the job runner stops the model service before a TensorFlow job
    starts, and the model service is not started while a TensorFlow job runs (pages say so)."""
    opencv_winograd: bool = False
    """OpenCV's Winograd convolutions for Darknet models in the web server
    (``DASHBOARD_OPENCV_WINOGRAD``, default off): on, a 3x3 convolution runs about 1.5x faster but
    the first inference repacks the weights into buffers the net keeps (yolov3-tiny at 416 px:
    about +260 MiB instead of +80 MiB, per cached model), which breaks the web server's memory
    budget."""
    darknet_max_layers: int = 1000
    """Darknet cfgs with more layers are refused (``DASHBOARD_DARKNET_MAX_LAYERS``; a value that is
    not a positive whole number means the default). YOLOv4 has 162 layers, the largest scaled
    YOLOv4 about 400."""
    darknet_max_activation_mb: int = 2048
    """A Darknet cfg needing more activation memory for one image is refused
    (``DASHBOARD_DARKNET_MAX_ACTIVATION_MB``, lenient like the layer cap). YOLOv3 needs about
    470 MiB of activations at 608 x 608 (sum over all layers), 1.9 GiB at 1216."""
    ingest_host: str = "127.0.0.1"
    """The remote-logging endpoint's address: ``DASHBOARD_INGEST_HOST``, else Streamlit's
    ``STREAMLIT_SERVER_ADDRESS``, else 127.0.0.1."""
    ingest_port: int = DEFAULT_INGEST_PORT
    """The remote-logging endpoint's port (``DASHBOARD_INGEST_PORT``)."""
    ingest_token: str | None = field(default=None, repr=False)
    """The endpoint's token when set (``DASHBOARD_INGEST_TOKEN``); else one generated under runs/."""
    owner: str | None = None
    """The owner scripts and CLIs record, as written (``DASHBOARD_OWNER``; see services.access)."""
    admins: str | None = None
    """Administrators, as written (``DASHBOARD_ADMINS``; see services.access)."""
    keras_home: Path | None = None
    """Keras's own cache root (``KERAS_HOME``), where pretrained weights may already be."""
    tf_config: str | None = None
    """TensorFlow's multi-worker cluster description (``TF_CONFIG``), as written."""
    map_models_kept: int = 2
    """Tissue-map models a worker keeps loaded for the next map (``DASHBOARD_MAP_MODELS_KEPT``;
    2, 0 under the cloud profile, which has no warm worker to keep them in)."""
    reused_worker_max_mb: int = 3072
    """A warm worker that ran a job of a kind that reuses its worker (tissue maps) takes the next
    such job only while its resident memory is below this (``DASHBOARD_REUSED_WORKER_MAX_MB``);
    above it, it exits like any other worker."""
    download_mirror: str | None = None
    """A base URL every download is fetched from instead of its public address
    (``DASHBOARD_DOWNLOAD_MIRROR``): ``<mirror>/<file name>``, with the same size and checksum
    checks, so a lab mirror (or the tests' local server) must hold the genuine files."""

    @property
    def models_on_click(self) -> bool:
        """Pages ask the model service (TensorFlow) only after a click, never on opening (cloud)."""
        return self.profile == CLOUD

    @property
    def darknet_dir(self) -> Path:
        """Darknet cfgs and weights, built-in and uploaded (``services.detection.registry``)."""
        return self.model_cache_dir / DARKNET

    @property
    def onnx_dir(self) -> Path:
        """Uploaded ONNX detectors (``services.detection.onnx_store``)."""
        return self.model_cache_dir / ONNX

    @property
    def fast_style_dir(self) -> Path:
        """The Magenta fast style-transfer networks (``services.style.fast_models``)."""
        return self.model_cache_dir / MAGENTA


def layout(root: str | os.PathLike | None = None) -> DataLayout:
    """The folders of the data root ``root``; of the configured one when None."""
    return DataRoot(Path(root)) if root else get_settings()


@functools.lru_cache(maxsize=16)
def _resolved(text: str, cwd: str) -> Path:
    """``text`` made absolute and resolved; remembered per (text, working folder), because a
    page asks for the settings a dozen times a rerun and resolving costs a system call per
    path component."""
    return Path(cwd, Path(text).expanduser()).resolve()


def get_settings() -> Settings:
    cwd = os.getcwd()
    data_root = _resolved(os.environ.get(Env.DATA_DIR) or DEFAULT_DATA_DIR, cwd)
    model_cache = os.environ.get(Env.MODEL_CACHE)
    chosen_profile = profile()
    cloud = chosen_profile == CLOUD
    warm_worker = env_flag(Env.WARM_WORKER, not cloud)
    return Settings(
        data_root=data_root,
        model_cache_dir=_resolved(model_cache, cwd) if model_cache else DataRoot(data_root).default_model_cache_dir,
        offline=os.environ.get(Env.OFFLINE, "") in ("1", "true", "yes"),
        max_image_pixels=env_int(Env.MAX_IMAGE_PIXELS, 40_000_000),
        max_image_file_bytes=env_int(Env.MAX_IMAGE_FILE_BYTES, 512 * 1024**2),
        max_decode_bytes=env_int(Env.MAX_DECODE_BYTES, 2 * 1024**3),
        max_zip_bytes=env_int(Env.MAX_ZIP_BYTES, 2 * 1024**3),
        max_zip_members=env_int(Env.MAX_ZIP_MEMBERS, 100_000),
        max_upload_files=env_int(Env.MAX_UPLOAD_FILES, 1000),
        max_upload_bytes=env_int(Env.MAX_UPLOAD_BYTES, 2 * 1024**3),
        max_concurrent_runs=env_int(Env.MAX_CONCURRENT_RUNS, 1),
        max_background_jobs=env_int(Env.MAX_JOBS, 2),
        tensorboard=os.environ.get(Env.TENSORBOARD, "1") not in ("0", "false", "no"),
        demo_sources=env_path(Env.DEMO_SOURCES),
        profile=chosen_profile,
        max_downloads=env_int(Env.MAX_DOWNLOADS, 3),
        warm_worker=warm_worker,
        prewarm=env_flag(Env.PREWARM, not cloud) and warm_worker,
        runner_idle_s=float(env_int(Env.RUNNER_IDLE_S, 60 if cloud else 600)),
        job_stale_s=float(env_int(Env.JOB_STALE_S, 30)),
        service_idle_s=float(env_int(Env.SERVICE_IDLE_S, 60 if cloud else 1800)),
        service_models=env_int(Env.SERVICE_MODELS, 6),
        one_tensorflow_process=env_flag(Env.ONE_TENSORFLOW_PROCESS, cloud),
        opencv_winograd=env_flag(Env.OPENCV_WINOGRAD, False),
        map_models_kept=max(0, env_int(Env.MAP_MODELS_KEPT, 0 if cloud else 2)),
        reused_worker_max_mb=env_int(Env.REUSED_WORKER_MAX_MB, 3072),
        darknet_max_layers=env_positive_int(Env.DARKNET_MAX_LAYERS, 1000),
        darknet_max_activation_mb=env_positive_int(Env.DARKNET_MAX_ACTIVATION_MB, 2048),
        ingest_host=os.environ.get(Env.INGEST_HOST) or os.environ.get(Env.STREAMLIT_ADDRESS) or "127.0.0.1",
        ingest_port=env_int(Env.INGEST_PORT, DEFAULT_INGEST_PORT),
        ingest_token=os.environ.get(Env.INGEST_TOKEN) or None,
        owner=os.environ.get(Env.OWNER),
        admins=os.environ.get(Env.ADMINS),
        keras_home=Path(os.environ[Env.KERAS_HOME]).expanduser() if os.environ.get(Env.KERAS_HOME) else None,
        tf_config=os.environ.get(Env.TF_CONFIG) or None,
        download_mirror=os.environ.get(Env.DOWNLOAD_MIRROR, "").strip() or None,
    )


def confine(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Resolve ``path`` (relative paths are taken relative to ``root``) and refuse it unless it
    lies inside ``root`` (default: the data root). Symlinks are resolved before the check. The
    refusal names only the last component of ``path``, never the server's folders."""
    root_path = Path(root if root is not None else get_settings().data_root).resolve()
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root_path / candidate
    resolved = candidate.resolve()
    if resolved != root_path and root_path not in resolved.parents:
        shown = Path(path).name or str(path)[:60]
        raise PathOutsideRoot(
            f"{shown!r} is outside the data root ({Env.DATA_DIR}). Put the data under the data root "
            "and pick it from there."
        )
    return resolved


def check_upload(sizes: Iterable[int]) -> None:
    """Refuse an upload (the files one job receives) with too many files or too many bytes in
    total (``DASHBOARD_MAX_UPLOAD_FILES``, ``DASHBOARD_MAX_UPLOAD_BYTES``). ``sizes`` are the
    byte sizes of the files (e.g. ``[f.size for f in st.file_uploader(...)]``)."""
    settings = get_settings()
    sizes = [int(size) for size in sizes]
    if len(sizes) > settings.max_upload_files:
        raise UserFacingError(
            f"{len(sizes):,} files in one upload; the limit is {settings.max_upload_files:,} "
            "(DASHBOARD_MAX_UPLOAD_FILES). Upload fewer files, or a zip."
        )
    total = sum(sizes)
    if total > settings.max_upload_bytes:
        raise UserFacingError(
            f"the upload holds {total / 1e6:,.1f} MB; the limit per job is "
            f"{settings.max_upload_bytes / 1e6:,.1f} MB (DASHBOARD_MAX_UPLOAD_BYTES)."
        )


def display_path(path: str | os.PathLike) -> str:
    """``path`` as a user may see it: relative to the data root (``<data root>/datasets/x``) or
    the model cache, never the server's absolute path; only the file name for paths elsewhere."""
    settings = get_settings()
    candidate = Path(path)
    for root, label in ((settings.data_root, "<data root>"), (settings.model_cache_dir, "<model cache>")):
        try:
            relative = candidate.resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        return label if relative == Path(".") else f"{label}/{relative.as_posix()}"
    return candidate.name or "<data root>"
