"""The job store: every background job's lifecycle in one SQLite database (WAL).

``<data root>/jobs/jobs.sqlite`` holds one row per job (kind, status, progress, message,
heartbeat, pid, exit code or signal, timings, parameters, result) and one row for the job
runner (its pid and heartbeat). The server, the runner and every worker process read and write
it; WAL lets readers and the one writer at a time work side by side, and a row is written whole
or not at all even when a writer is SIGKILLed.

Rows are treated as untrusted on the way out: a row whose JSON does not parse comes back with
empty values and a ``damaged`` note instead of breaking the page that lists it.

One :class:`JobStore` per process and file (:func:`open_store`): opening a second connection to
the same file in one process and closing it would drop the process's SQLite locks.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services import untrusted_json
from services.errors import UserFacingError

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = (
    "queued", "running", "finished", "stopped", "failed", "interrupted")
ACTIVE = (QUEUED, RUNNING)
ENDED = (FINISHED, STOPPED, FAILED, INTERRUPTED)
APPLICATION_ID = 0x44534A42  # "DSJB"
STORE_FILE = "jobs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, resource TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}', files TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    error TEXT, result TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL, started REAL, ended REAL, heartbeat REAL,
    pid INTEGER, exit_code INTEGER, signal TEXT, log_tail TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    resumed INTEGER NOT NULL DEFAULT 0, dismissed INTEGER NOT NULL DEFAULT 0, owner TEXT,
    resume_at_start INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, resource, created);
CREATE TABLE IF NOT EXISTS runner (
    id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER, heartbeat REAL, started REAL
);
"""
_REQUEUE = ("status = ?, stop_requested = 0, ended = NULL, error = NULL, exit_code = NULL, signal = NULL, "
            "log_tail = NULL, resumed = ?, dismissed = 0, resume_at_start = 0, created = ?, message = ?")
_ADDED_COLUMNS = {"resume_at_start": "INTEGER NOT NULL DEFAULT 0"}


class JobStoreError(UserFacingError):
    """The job store file cannot be used."""


@dataclass
class JobState:
    """One job as the pages see it (a copy: changing it changes nothing)."""

    id: str
    kind: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = QUEUED
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    resource: str = ""
    heartbeat: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    log_tail: str | None = None
    stop_requested: bool = False
    attempts: int = 0
    resumed: bool = False
    dismissed: bool = False
    owner: str | None = None
    resume_at_start: bool = False
    """Interrupted because the app was stopped: queued again when the app next starts."""
    files: list[str] = field(default_factory=list)
    queue_ahead: int | None = None
    """For a queued job: how many jobs of its resource class run or wait before it."""
    damaged: str | None = None
    """Set when the stored row could not be read whole (its JSON did not parse)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def status_text(self) -> str:
        """``queued, 2 ahead`` / ``running 40 %`` / ``failed (SIGSEGV)``: for lists and labels."""
        if self.status == QUEUED:
            return "queued" if not self.queue_ahead else f"queued, {self.queue_ahead} ahead"
        if self.status == RUNNING:
            return f"running {self.progress:.0%}"
        if self.status == FAILED and self.signal:
            return f"failed ({self.signal})"
        return self.status


def _loads(text: str | None, default: Any) -> tuple[Any, bool]:
    if text is None:
        return default, True
    missing = object()
    value = untrusted_json.loads_or(text, missing, what="a job column", expect=type(default), allow_nan=True)
    return (default, False) if value is missing else (value, True)


def _state(row: sqlite3.Row) -> JobState:
    values = dict(row)
    damaged = []
    for name, default in (("params", {}), ("result", {}), ("files", [])):
        values[name], ok = _loads(values.get(name), default)
        if not ok:
            damaged.append(name)
    for flag in ("stop_requested", "resumed", "dismissed", "resume_at_start"):
        values[flag] = bool(values.get(flag))
    known = set(JobState.__dataclass_fields__)
    state = JobState(**{key: value for key, value in values.items() if key in known})
    state.damaged = ", ".join(damaged) or None
    return state


class JobStore:
    """All reads and writes of the job database (thread-safe within one process)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False,
                                       isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 30000")
            application_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables and application_id != APPLICATION_ID:
                raise JobStoreError(f"{self.path.name} is not the dashboard's job store; move it away.")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.DatabaseError as error:
            raise JobStoreError(f"The job store {self.path.name} cannot be read ({error}).") from None

    def _add_missing_columns(self) -> None:
        """Columns added since a store was created (``CREATE TABLE IF NOT EXISTS`` keeps an old table)."""
        for column, definition in _ADDED_COLUMNS.items():
            present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if column not in present:
                try:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError:  # another process added it a moment ago
                    pass

    # --- low level -------------------------------------------------------------------------

    def _execute(self, sql: str, parameters: tuple | dict = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, parameters)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an error): one writer at a time."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- jobs ------------------------------------------------------------------------------

    def create(self, kind: str, title: str, resource: str, params: dict[str, Any], files: list[str],
               owner: str | None = None, job_id: str | None = None) -> str:
        job_id = job_id or uuid.uuid4().hex[:12]
        self._execute(
            "INSERT INTO jobs (id, kind, title, resource, params, files, status, created, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, title, resource, json.dumps(params), json.dumps(files), QUEUED, time.time(), owner))
        return job_id

    def get(self, job_id: str) -> JobState | None:
        row = self._execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        state = _state(row)
        if state.status == QUEUED:
            state.queue_ahead = self._ahead(state)
        return state

    def list(self, kind: str | None = None, limit: int = 200) -> list[JobState]:
        if kind is None:
            rows = self._execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = self._execute("SELECT * FROM jobs WHERE kind = ? ORDER BY created DESC LIMIT ?",
                                 (kind, limit)).fetchall()
        states = [_state(row) for row in rows]
        for state in states:
            if state.status == QUEUED:
                state.queue_ahead = self._ahead(state)
        return states

    def _ahead(self, state: JobState) -> int:
        row = self._execute(
            "SELECT count(*) FROM jobs WHERE resource = ? AND "
            "(status = ? OR (status = ? AND (created < ? OR (created = ? AND id < ?))))",
            (state.resource, RUNNING, QUEUED, state.created, state.created, state.id)).fetchone()
        return int(row[0])

    def count(self, status: str, resource: str | None = None) -> int:
        if resource is None:
            return int(self._execute("SELECT count(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0])
        return int(self._execute("SELECT count(*) FROM jobs WHERE status = ? AND resource = ?",
                                 (status, resource)).fetchone()[0])

    def claim_next(self, resource: str, limit: int, pid: int) -> str | None:
        """Atomically move the oldest queued job of ``resource`` to running, if a slot is free."""
        with self._transaction() as db:
            running = db.execute("SELECT count(*) FROM jobs WHERE status = ? AND resource = ?",
                                 (RUNNING, resource)).fetchone()[0]
            if running >= limit:
                return None
            row = db.execute("SELECT id, stop_requested FROM jobs WHERE status = ? AND resource = ? "
                             "ORDER BY created, id LIMIT 1", (QUEUED, resource)).fetchone()
            if row is None:
                return None
            now = time.time()
            if row["stop_requested"]:
                db.execute("UPDATE jobs SET status = ?, ended = ?, message = ? WHERE id = ?",
                           (STOPPED, now, "stopped before it started", row["id"]))
                return None
            db.execute("UPDATE jobs SET status = ?, started = coalesce(started, ?), heartbeat = ?, pid = ?, "
                       "attempts = attempts + 1, exit_code = NULL, signal = NULL, log_tail = NULL, error = NULL "
                       "WHERE id = ?", (RUNNING, now, now, pid, row["id"]))
            return row["id"]

    def set_pid(self, job_id: str, pid: int) -> None:
        self._execute("UPDATE jobs SET pid = ?, heartbeat = ? WHERE id = ?", (pid, time.time(), job_id))

    def report(self, job_id: str, progress: float, message: str | None, result: dict[str, Any]) -> None:
        """A worker's progress report (also its heartbeat)."""
        if message is None:
            self._execute("UPDATE jobs SET progress = ?, result = ?, heartbeat = ? WHERE id = ? AND status = ?",
                          (progress, json.dumps(result, default=str), time.time(), job_id, RUNNING))
        else:
            self._execute("UPDATE jobs SET progress = ?, message = ?, result = ?, heartbeat = ? "
                          "WHERE id = ? AND status = ?",
                          (progress, message, json.dumps(result, default=str), time.time(), job_id, RUNNING))

    def beat(self, job_id: str) -> None:
        self._execute("UPDATE jobs SET heartbeat = ? WHERE id = ? AND status = ?", (time.time(), job_id, RUNNING))

    def finish(self, job_id: str, status: str, *, message: str | None = None, error: str | None = None,
               result: dict[str, Any] | None = None, exit_code: int | None = None, signal: str | None = None,
               log_tail: str | None = None, only_if_running: bool = False) -> bool:
        """Publish a job's end state in one statement; returns False when nothing changed."""
        assignments = ["status = ?", "ended = ?", "error = ?"]
        values: list[Any] = [status, time.time(), error]
        for column, value in (("message", message), ("exit_code", exit_code), ("signal", signal),
                              ("log_tail", log_tail)):
            if value is not None:
                assignments.append(f"{column} = ?")
                values.append(value)
        if result is not None:
            assignments.append("result = ?")
            values.append(json.dumps(result, default=str))
        if status == FINISHED:
            assignments.append("progress = 1")
        sql = f"UPDATE jobs SET {', '.join(assignments)} WHERE id = ?"
        values.append(job_id)
        if only_if_running:
            sql += " AND status = ?"
            values.append(RUNNING)
        return self._execute(sql, tuple(values)).rowcount > 0

    def request_stop(self, job_id: str) -> None:
        self._execute("UPDATE jobs SET stop_requested = 1 WHERE id = ?", (job_id,))
        # A queued job never starts: stop it now.
        self._execute("UPDATE jobs SET status = ?, ended = ?, message = ? WHERE id = ? AND status = ?",
                      (STOPPED, time.time(), "stopped before it started", job_id, QUEUED))

    def stop_requested(self, job_id: str) -> bool:
        row = self._execute("SELECT stop_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def requeue(self, job_id: str, resumed: bool) -> None:
        self._execute(f"UPDATE jobs SET {_REQUEUE} WHERE id = ?",
                      (QUEUED, int(resumed), time.time(), "resuming" if resumed else "", job_id))

    def report_message(self, job_id: str, message: str) -> None:
        self._execute("UPDATE jobs SET message = ? WHERE id = ?", (message, job_id))

    def dismiss(self, job_id: str) -> None:
        self._execute("UPDATE jobs SET dismissed = 1 WHERE id = ?", (job_id,))

    def delete(self, job_id: str) -> None:
        self._execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def interrupt(self, job_id: str, message: str, resume_at_start: bool) -> bool:
        """Mark a running job interrupted (the app is stopping); False when it was no longer running."""
        return self._execute("UPDATE jobs SET status = ?, ended = ?, message = ?, resume_at_start = ? "
                             "WHERE id = ? AND status = ?",
                             (INTERRUPTED, time.time(), message, int(resume_at_start), job_id, RUNNING)).rowcount > 0

    def requeue_interrupted_at_stop(self) -> int:
        """Queue again (resumed) every job the last app stop interrupted; returns how many."""
        return self._execute(f"UPDATE jobs SET {_REQUEUE} WHERE status = ? AND resume_at_start = 1",
                             (QUEUED, 1, time.time(), "resuming after the app restarted", INTERRUPTED)).rowcount

    def running(self) -> list[JobState]:
        return [_state(row) for row in self._execute("SELECT * FROM jobs WHERE status = ?", (RUNNING,))]

    # --- the runner ------------------------------------------------------------------------

    def runner_beat(self, pid: int, started: float | None = None) -> None:
        self._execute("INSERT INTO runner (id, pid, heartbeat, started) VALUES (1, ?, ?, ?) "
                      "ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, heartbeat = excluded.heartbeat, "
                      "started = coalesce(excluded.started, runner.started)",
                      (pid, time.time(), started))

    def runner(self) -> tuple[int | None, float | None]:
        row = self._execute("SELECT pid, heartbeat FROM runner WHERE id = 1").fetchone()
        return (row["pid"], row["heartbeat"]) if row else (None, None)

    def clear_runner(self, pid: int) -> None:
        self._execute("DELETE FROM runner WHERE id = 1 AND pid = ?", (pid,))


_stores: dict[str, JobStore] = {}
_stores_lock = threading.Lock()


def open_store(jobs_dir: str | Path) -> JobStore:
    """The one :class:`JobStore` of this process for ``<jobs_dir>/jobs.sqlite``."""
    path = str((Path(jobs_dir) / STORE_FILE).resolve())
    with _stores_lock:
        if path not in _stores:
            _stores[path] = JobStore(path)
        return _stores[path]
