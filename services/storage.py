"""Disk use under the data root, and clean-up of old job folders."""

from __future__ import annotations

import time
from pathlib import Path

from services import run_layout
from services.config import get_settings
from services.errors import UserFacingError
from services.jobs import ENDED, JobManager


def data_root_usage(root: Path | None = None) -> list[dict]:
    """Bytes used by each top-level folder of the data root, largest first."""
    root = Path(root or get_settings().data_root)
    rows = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            rows.append({"folder": folder.name, "bytes": run_layout.folder_bytes(folder)})
    rows.sort(key=lambda row: row["bytes"], reverse=True)
    return rows


def delete_old_jobs(manager: JobManager, older_than_days: float,
                    kinds: tuple[str, ...] | None = None) -> tuple[int, int]:
    """Delete ended jobs (folders and rows) created more than ``older_than_days`` ago.

    Returns (deleted, refused): with sign-in on, a manager that checks ownership refuses other
    people's jobs, which are skipped. Running and queued jobs are never touched."""
    cutoff = time.time() - older_than_days * 86400
    deleted = refused = 0
    for state in manager.list():
        if state.status in ENDED and state.created < cutoff and (kinds is None or state.kind in kinds):
            try:
                manager.delete(state.id)
            except UserFacingError:
                refused += 1
                continue
            deleted += 1
    return deleted, refused
