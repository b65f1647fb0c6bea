"""All settings of the dashboard in one place, read from environment variables.

Every setting is documented in the README. Settings are read on each call of
:func:`get_settings` (cheap), so tests and CLIs can change them with environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.errors import PathOutsideRoot


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


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
    max_zip_bytes: int
    """Cap on the total uncompressed size of an extracted zip (``DASHBOARD_MAX_ZIP_BYTES``)."""
    max_zip_members: int
    """Cap on the number of members of an extracted zip (``DASHBOARD_MAX_ZIP_MEMBERS``)."""
    max_concurrent_runs: int
    """Training runs executing at once (``DASHBOARD_MAX_CONCURRENT_RUNS``; default 1)."""
    max_background_jobs: int
    """In-process background jobs executing at once (``DASHBOARD_MAX_JOBS``; default 2)."""
    tensorboard: bool
    """Write TensorBoard event files beside each training run (``DASHBOARD_TENSORBOARD=0`` turns off)."""

    @property
    def datasets_dir(self) -> Path:
        return self.data_root / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_root / "jobs"

    @property
    def runs_dir(self) -> Path:
        return self.data_root / "runs"


def get_settings() -> Settings:
    data_root = Path(os.environ.get("DASHBOARD_DATA_DIR") or "data").expanduser().resolve()
    model_cache = os.environ.get("DASHBOARD_MODEL_CACHE")
    return Settings(
        data_root=data_root,
        model_cache_dir=Path(model_cache).expanduser().resolve() if model_cache else data_root / "models",
        offline=os.environ.get("DASHBOARD_OFFLINE", "") in ("1", "true", "yes"),
        max_image_pixels=_env_int("DASHBOARD_MAX_IMAGE_PIXELS", 40_000_000),
        max_zip_bytes=_env_int("DASHBOARD_MAX_ZIP_BYTES", 4 * 1024**3),
        max_zip_members=_env_int("DASHBOARD_MAX_ZIP_MEMBERS", 100_000),
        max_concurrent_runs=_env_int("DASHBOARD_MAX_CONCURRENT_RUNS", 1),
        max_background_jobs=_env_int("DASHBOARD_MAX_JOBS", 2),
        tensorboard=os.environ.get("DASHBOARD_TENSORBOARD", "1") not in ("0", "false", "no"),
    )


def confine(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Resolve ``path`` (relative paths are taken relative to ``root``) and refuse it unless it
    lies inside ``root`` (default: the data root). Symlinks are resolved before the check."""
    root_path = Path(root if root is not None else get_settings().data_root).resolve()
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root_path / candidate
    resolved = candidate.resolve()
    if resolved != root_path and root_path not in resolved.parents:
        raise PathOutsideRoot(
            f"{path} is outside the data root {root_path}. Put the data under the data root "
            "(or set DASHBOARD_DATA_DIR) and pick it from there."
        )
    return resolved
