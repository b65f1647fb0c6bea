"""What a run is: its statuses, its record (:class:`Run`), its id, and how a status change is written.

Plain data, no SQLite: used by the run store (:mod:`services.training.store`), the remote-logging
ingest and the pages. A run's *lifecycle* (queued, running, stopped...) is its job's when a job
runs it (:mod:`services.training.reconcile` keeps the row in step); the row keeps the status of
runs logged by scripts and remote machines, which have no job.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from services import untrusted_json
from services.errors import UserFacingError

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED, DIVERGED = (
    "queued", "running", "finished", "stopped", "failed", "interrupted", "diverged")
ACTIVE = (QUEUED, RUNNING)
ENDED = (FINISHED, STOPPED, FAILED, INTERRUPTED, DIVERGED)
JSON_DEFAULTS = {"config": dict, "hyperparameters": dict, "summary": dict, "tags": list}
JSON_FIELDS = tuple(JSON_DEFAULTS)


class StoreError(UserFacingError):
    """The run store file cannot be used (corrupt, foreign, unreadable)."""


class RunNotFound(UserFacingError):
    """No run with that id."""


@dataclass
class Run:
    id: str
    name: str
    status: str
    created: float
    model: str | None = None
    dataset: str | None = None
    split: str | None = None
    source: str = "script"
    config: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    epochs: int | None = None
    epochs_done: int = 0
    steps_per_epoch: int | None = None
    device: str | None = None
    host: str | None = None
    pid: int | None = None
    heartbeat: float | None = None
    error: str | None = None
    stop_requested: bool = False
    synthetic: bool = False
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    job_id: str | None = None
    owner: str | None = None
    """Who created the run (the signed-in user, or ``DASHBOARD_OWNER`` for scripts); None: nobody known."""
    damaged: list[str] = field(default_factory=list)
    """Columns whose stored value could not be read (shown as damaged; the run stays listed)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def check_run_id(run_id: str) -> str:
    """A run id usable as a folder name (letters, digits and dashes; short enough for any file
    system); anything else is :class:`RunNotFound`."""
    if not isinstance(run_id, str) or not run_id.replace("-", "").isalnum() or len(run_id.encode()) > 200:
        raise RunNotFound(f"not a run id: {str(run_id)[:40]!r}")
    return run_id


def check_new_run_id(run_id: str) -> str:
    """A run id a script may choose for a new run: :data:`wire.RUN_ID` (ASCII, at most 64 characters)."""
    from services.training.wire import RUN_ID

    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise RunNotFound(f"not a usable run id: {str(run_id)[:40]!r} (1 to 64 ASCII letters, digits and "
                          "dashes, starting with a letter or digit)")
    return run_id

def run_from_row(row) -> Run:
    """A run from its row; a JSON column that does not parse (or has the wrong shape) is
    replaced by its empty value and named in ``damaged`` instead of failing the caller."""
    values = dict(row)
    damaged = []
    for key in JSON_FIELDS:
        empty = JSON_DEFAULTS[key]
        value = untrusted_json.loads_or(values.get(key) or json.dumps(empty()), None, what=key, expect=empty,
                                        allow_nan=True)
        if value is None:
            damaged.append(key)
            value = empty()
        values[key] = value
    values["stop_requested"] = bool(values["stop_requested"])
    values["synthetic"] = bool(values["synthetic"])
    values["notes"] = values.get("notes") or ""
    if not isinstance(values.get("name"), str):
        values["name"] = str(values.get("name"))
    return Run(**values, damaged=damaged)


def status_fields(status: str, error: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The columns a change to ``status`` sets (start time and heartbeat, or end time)."""
    if status not in ACTIVE + ENDED:
        raise ValueError(f"unknown status {status!r}")
    now = time.time()
    fields = dict(fields)
    if status == RUNNING:
        fields.setdefault("started", now)
        fields.setdefault("heartbeat", now)
        fields.setdefault("ended", None)
    elif status in ENDED:
        fields.setdefault("ended", now)
    return {"status": status, "error": error, **fields}

