"""All settings of the dashboard in one place, read from environment variables.

Every setting is documented in the README. Settings are read on each call of
:func:`get_settings` (cheap), so tests and CLIs can change them with environment variables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.errors import PathOutsideRoot, UserFacingError


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
    return environ.get("HOSTNAME") == "streamlit" and COMMUNITY_CLOUD_CHECKOUTS.is_dir()


def profile(environ: dict[str, str] | None = None, cwd: str | None = None, checkout: Path | None = None) -> str:
    """``lab`` (a lab server: prewarmed workers, long idle exits) or ``cloud`` (a small box: no
    prewarm, nothing TensorFlow before a click, short idle exits). ``DASHBOARD_PROFILE`` wins;
    unset, ``cloud`` on Streamlit Community Cloud (:func:`on_community_cloud`), else ``lab``."""
    environ = os.environ if environ is None else environ
    chosen = (environ.get("DASHBOARD_PROFILE") or "").strip().lower()
    if chosen:
        if chosen not in PROFILES:
            raise UserFacingError(f"the setting DASHBOARD_PROFILE={chosen[:20]!r} is not one of "
                                  f"{', '.join(PROFILES)}; fix or unset it.")
        return chosen
    return CLOUD if on_community_cloud(environ, cwd, checkout) else LAB


def profile_default(lab, cloud):
    """The default of a setting under the current profile (its environment variable still wins)."""
    return cloud if profile() == CLOUD else lab


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


@dataclass(frozen=True)
class Settings:
    data_root: Path
    """Everything the dashboard reads or writes lives under here (``DASHBOARD_DATA_DIR``)."""
    model_cache_dir: Path
    """Pretrained weights and Darknet files (``DASHBOARD_MODEL_CACHE``, default data_root/models)."""
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
    """Training runs executing at once (``DASHBOARD_MAX_CONCURRENT_RUNS``; default 1)."""
    max_background_jobs: int
    """In-process background jobs executing at once (``DASHBOARD_MAX_JOBS``; default 2)."""
    tensorboard: bool
    """Write TensorBoard event files beside each training run (``DASHBOARD_TENSORBOARD=0`` turns off)."""
    demo_sources: Path | None = None
    """A JSON file replacing the real-tissue demo's download addresses and checksums
    (``DASHBOARD_DEMO_SOURCES``): a lab mirror, or the tests' local server. See docs/demo.md."""
    profile: str = LAB
    """``lab`` or ``cloud`` (``DASHBOARD_PROFILE``; see :func:`profile`)."""
    download_mirror: str | None = None
    """A base URL every download is fetched from instead of its public address
    (``DASHBOARD_DOWNLOAD_MIRROR``): ``<mirror>/<file name>``, with the same size and checksum
    checks, so a lab mirror (or the tests' local server) must hold the genuine files."""

    @property
    def models_on_click(self) -> bool:
        """Pages ask the model service (TensorFlow) only after a click, never on opening (cloud)."""
        return self.profile == CLOUD

    @property
    def datasets_dir(self) -> Path:
        return self.data_root / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_root / "jobs"

    @property
    def runs_dir(self) -> Path:
        return self.data_root / "runs"


@functools.lru_cache(maxsize=16)
def _resolved(text: str, cwd: str) -> Path:
    """``text`` made absolute and resolved; remembered per (text, working folder), because a
    page asks for the settings a dozen times a rerun and resolving costs a system call per
    path component."""
    return Path(cwd, Path(text).expanduser()).resolve()


def get_settings() -> Settings:
    cwd = os.getcwd()
    data_root = _resolved(os.environ.get("DASHBOARD_DATA_DIR") or "data", cwd)
    model_cache = os.environ.get("DASHBOARD_MODEL_CACHE")
    return Settings(
        data_root=data_root,
        model_cache_dir=_resolved(model_cache, cwd) if model_cache else data_root / "models",
        offline=os.environ.get("DASHBOARD_OFFLINE", "") in ("1", "true", "yes"),
        max_image_pixels=env_int("DASHBOARD_MAX_IMAGE_PIXELS", 40_000_000),
        max_image_file_bytes=env_int("DASHBOARD_MAX_IMAGE_FILE_BYTES", 512 * 1024**2),
        max_decode_bytes=env_int("DASHBOARD_MAX_DECODE_BYTES", 2 * 1024**3),
        max_zip_bytes=env_int("DASHBOARD_MAX_ZIP_BYTES", 2 * 1024**3),
        max_zip_members=env_int("DASHBOARD_MAX_ZIP_MEMBERS", 100_000),
        max_upload_files=env_int("DASHBOARD_MAX_UPLOAD_FILES", 1000),
        max_upload_bytes=env_int("DASHBOARD_MAX_UPLOAD_BYTES", 2 * 1024**3),
        max_concurrent_runs=env_int("DASHBOARD_MAX_CONCURRENT_RUNS", 1),
        max_background_jobs=env_int("DASHBOARD_MAX_JOBS", 2),
        tensorboard=os.environ.get("DASHBOARD_TENSORBOARD", "1") not in ("0", "false", "no"),
        demo_sources=Path(os.environ["DASHBOARD_DEMO_SOURCES"]).expanduser().resolve()
        if os.environ.get("DASHBOARD_DEMO_SOURCES") else None,
        profile=profile(),
        download_mirror=os.environ.get("DASHBOARD_DOWNLOAD_MIRROR", "").strip() or None,
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
            f"{shown!r} is outside the data root (DASHBOARD_DATA_DIR). Put the data under the data root "
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
