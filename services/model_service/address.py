"""Where the model service of a data root listens, and its files (lock, token, log)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from services.config import get_settings, layout


def service_dir(data_root: Path | None = None) -> Path:
    return layout(data_root).service_dir


def socket_address(data_root: Path | None = None) -> str:
    """A Linux abstract socket name (no file, no 108-byte path limit), one per data root. Any
    local user could connect to it, so every request carries the token from ``token_file``."""
    root = str(Path(data_root or get_settings().data_root).resolve())
    return "\0pathology-dashboard-model-service-" + hashlib.sha256(root.encode()).hexdigest()[:24]


def token_file(data_root: Path | None = None) -> Path:
    return service_dir(data_root) / "model-service.token"


def lock_file(data_root: Path | None = None) -> Path:
    return service_dir(data_root) / "model-service.lock"


def log_file(data_root: Path | None = None) -> Path:
    return service_dir(data_root) / "model-service.log"
