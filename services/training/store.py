"""The run store: every training run, its metrics and its files, in one SQLite database.

``<data_root>/runs/runs.sqlite`` in WAL mode: the training process writes while the dashboard
reads; readers never block the writer and only ever see committed transactions (a row is
written whole or not at all, even when the writer is SIGKILLed). Each run's files (checkpoints,
TensorBoard events, exported models) live in ``<runs_dir>/<run_id>/``.

The file is marked with an SQLite ``application_id``; a file that is not SQLite, or is some
other program's database, is refused with a clear message and never modified.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from services.config import get_settings
from services.errors import UserFacingError

APPLICATION_ID = 0x44534852  # "DSHR"
SCHEMA_VERSION = 3
"""2: run notes, tags and job id; the deliveries table of the remote-logging ingest."""
QUEUED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED, DIVERGED = (
    "queued", "running", "finished", "stopped", "failed", "interrupted", "diverged")
ACTIVE = (QUEUED, RUNNING)
ENDED = (FINISHED, STOPPED, FAILED, INTERRUPTED, DIVERGED)
HEARTBEAT_TIMEOUT_S = 180.0
"""A running run whose heartbeat is older than this (and whose pid is unknown here) is interrupted."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, model TEXT, dataset TEXT, split TEXT,
    source TEXT NOT NULL DEFAULT 'script', config TEXT NOT NULL DEFAULT '{}',
    hyperparameters TEXT NOT NULL DEFAULT '{}', summary TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL, created REAL NOT NULL, started REAL, ended REAL,
    epochs INTEGER, epochs_done INTEGER NOT NULL DEFAULT 0, steps_per_epoch INTEGER,
    device TEXT, host TEXT, pid INTEGER, heartbeat REAL, error TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0, synthetic INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]', job_id TEXT, owner TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL, step INTEGER, name TEXT NOT NULL, value REAL, time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, name, epoch);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL, path TEXT NOT NULL, epoch INTEGER, created REAL NOT NULL,
    PRIMARY KEY (run_id, kind, path)
);
"""
_DELIVERIES = """CREATE TABLE IF NOT EXISTS deliveries (
    client TEXT NOT NULL, seq INTEGER NOT NULL, received REAL NOT NULL, PRIMARY KEY (client, seq)
)"""
_SCHEMA += _DELIVERIES + ";\n"
_ADDED_COLUMNS = {"notes": "TEXT NOT NULL DEFAULT ''", "tags": "TEXT NOT NULL DEFAULT '[]'", "job_id": "TEXT",
                  "owner": "TEXT"}
"""Run columns added after version 1 (2: notes, tags, job_id; 3: owner), added by ``_migrate``."""
_JSON_DEFAULTS = {"config": dict, "hyperparameters": dict, "summary": dict, "tags": list}
_JSON_FIELDS = tuple(_JSON_DEFAULTS)


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


def default_store_path() -> Path:
    return get_settings().runs_dir / "runs.sqlite"


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


class RunStore:
    """Runs, metrics and artifacts in SQLite (WAL). Safe to use from several processes."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.runs_dir = self.path.parent
        self._local = threading.local()
        self._check_existing_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            self._initialise(connection)

    # --- connection and schema -------------------------------------------------------------
    def _check_existing_file(self) -> None:
        """Refuse a file that is not our run store, reading it through SQLite read-only.

        Never with a plain ``open()``: closing any descriptor of a database file drops all of
        this process's POSIX locks on it, SQLite's included, after which another process may
        delete the write-ahead log under our feet.
        """
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        try:
            probe = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            try:
                application_id = probe.execute("PRAGMA application_id").fetchone()[0]
                probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                probe.close()
        except sqlite3.OperationalError as error:
            raise StoreError(f"Cannot read the run store {self.path}: {error}") from error
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path} is not a run store (not an SQLite database). It was left "
                             "untouched: move it away or point DASHBOARD_DATA_DIR elsewhere.") from error
        if application_id not in (0, APPLICATION_ID):
            raise StoreError(f"{self.path} belongs to another program (application id "
                             f"{application_id:#x}). It was left untouched: move it away.")

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, kept open: closing the last connection of a WAL database
        checkpoints and deletes the WAL, which would make every small write expensive."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                             check_same_thread=False)
                connection.row_factory = sqlite3.Row
                connection.execute("PRAGMA busy_timeout = 30000")
                connection.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as error:
                raise StoreError(f"Cannot open the run store {self.path}: {error}") from error
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        try:
            yield connection
        except sqlite3.DatabaseError as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
                raise StoreError(f"The run store is busy: {error}. Try again.") from error
            self.close()
            raise StoreError(f"The run store {self.path} is damaged or not a run store: {error}. "
                             "It was left untouched: move it away to start a new one.") from error

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: all of it is visible to readers, or none of it."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _initialise(self, connection: sqlite3.Connection) -> None:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if application_id == 0 and tables:
            raise StoreError(f"{self.path} is another program's SQLite database (tables: "
                             f"{', '.join(sorted(tables))}). It was left untouched: move it away.")
        if application_id == APPLICATION_ID and connection.execute("PRAGMA user_version").fetchone()[0] > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer dashboard version; update the dashboard.")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        if application_id == 0:
            connection.executescript("BEGIN;" + _SCHEMA + f"PRAGMA application_id = {APPLICATION_ID};"
                                     f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            self._migrate(connection)

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        """Older versions -> current: the run columns added since and the deliveries table
        (nothing is rewritten)."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
            for name, declaration in _ADDED_COLUMNS.items():
                if name not in columns:
                    connection.execute(f"ALTER TABLE runs ADD COLUMN {name} {declaration}")
            connection.execute(_DELIVERIES)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_run_id(run_id)

    # --- runs ------------------------------------------------------------------------------
    def create_run(self, name: str | None = None, *, model: str | None = None, dataset: str | None = None,
                   split: str | None = None, source: str = "script", config: dict | None = None,
                   hyperparameters: dict | None = None, epochs: int | None = None,
                   status: str = QUEUED, synthetic: bool = False, run_id: str | None = None,
                   owner: str | None = None) -> str:
        run_id = check_new_run_id(run_id) if run_id else new_run_id()
        with self._transaction() as connection:
            self._insert_run(connection, run_id, name, model=model, dataset=dataset, split=split, source=source,
                             config=config, hyperparameters=hyperparameters, epochs=epochs, status=status,
                             synthetic=synthetic, owner=owner)
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    @staticmethod
    def _insert_run(connection: sqlite3.Connection, run_id: str, name: str | None, *, model, dataset, split,
                    source, config, hyperparameters, epochs, status, synthetic, owner=None) -> None:
        connection.execute(
            "INSERT INTO runs (id, name, model, dataset, split, source, config, hyperparameters,"
            " status, created, epochs, synthetic, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, name or f"{model or 'run'} {time.strftime('%Y-%m-%d %H:%M')}", model, dataset,
             split, source, json.dumps(config or {}, default=str),
             json.dumps(hyperparameters or {}, default=str), status, time.time(), epochs, int(synthetic),
             owner))

    @staticmethod
    def _row_to_run(row: sqlite3.Row) -> Run:
        """A run from its row; a JSON column that does not parse (or has the wrong shape) is
        replaced by its empty value and named in ``damaged`` instead of failing the caller."""
        values = dict(row)
        damaged = []
        for key in _JSON_FIELDS:
            empty = _JSON_DEFAULTS[key]
            try:
                value = json.loads(values.get(key) or json.dumps(empty()))
            except (TypeError, ValueError):
                value = None
            if not isinstance(value, empty):
                damaged.append(key)
                value = empty()
            values[key] = value
        values["stop_requested"] = bool(values["stop_requested"])
        values["synthetic"] = bool(values["synthetic"])
        values["notes"] = values.get("notes") or ""
        if not isinstance(values.get("name"), str):
            values["name"] = str(values.get("name"))
        return Run(**values, damaged=damaged)

    def get_run(self, run_id: str) -> Run:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        if row is None:
            raise RunNotFound(f"There is no run {run_id} (it may have been deleted).")
        return self._row_to_run(row)

    def find_run(self, run_id: str) -> Run | None:
        try:
            return self.get_run(run_id)
        except RunNotFound:
            return None

    def list_runs(self, status: str | None = None) -> list[Run]:
        """Runs, newest first."""
        query, args = "SELECT * FROM runs", ()
        if status:
            query, args = query + " WHERE status = ?", (status,)
        with self._connect() as connection:
            rows = connection.execute(query + " ORDER BY created DESC", args).fetchall()
        return [self._row_to_run(row) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (dict values of JSON columns replace the whole value)."""
        with self._transaction() as connection:
            self._update_run(connection, run_id, fields)

    @staticmethod
    def _update_run(connection: sqlite3.Connection, run_id: str, fields: dict[str, Any]) -> None:
        allowed = set(Run.__dataclass_fields__) - {"id", "created", "damaged"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        values = {k: json.dumps(v, default=str) if k in _JSON_FIELDS else v for k, v in fields.items()}
        assignments = ", ".join(f"{key} = ?" for key in values)
        cursor = connection.execute(f"UPDATE runs SET {assignments} WHERE id = ?",
                                    (*values.values(), check_run_id(run_id)))
        if cursor.rowcount == 0:
            raise RunNotFound(f"There is no run {run_id}.")

    def update_summary(self, run_id: str, **values: Any) -> None:
        """Merge ``values`` into the run's summary (final accuracies, F1, parameter counts...)."""
        with self._transaction() as connection:
            self._update_summary(connection, run_id, values)

    @staticmethod
    def _update_summary(connection: sqlite3.Connection, run_id: str, values: dict[str, Any],
                        max_bytes: int | None = None) -> None:
        """Merge ``values`` into the summary; with ``max_bytes``, a merged summary larger than that
        is a ValueError and nothing changes."""
        row = connection.execute("SELECT summary FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        if row is None:
            raise RunNotFound(f"There is no run {run_id}.")
        try:
            summary = json.loads(row[0] or "{}")
        except ValueError:
            summary = {}
        merged = json.dumps({**(summary if isinstance(summary, dict) else {}), **values}, default=str)
        if max_bytes is not None and len(merged) > max_bytes:
            raise ValueError(f"the run's summary would exceed {max_bytes:,} bytes")
        connection.execute("UPDATE runs SET summary = ? WHERE id = ?", (merged, run_id))

    def set_status(self, run_id: str, status: str, error: str | None = None, **fields: Any) -> None:
        with self._transaction() as connection:
            self._update_run(connection, run_id, status_fields(status, error, fields))

    def set_notes(self, run_id: str, notes: str, tags: list[str]) -> None:
        """The run's free-text notes and its tags (trimmed, de-duplicated, in the order given)."""
        clean = list(dict.fromkeys(str(tag).strip()[:40] for tag in tags if str(tag).strip()))
        self.update_run(run_id, notes=str(notes)[:10_000], tags=clean[:50])

    def heartbeat(self, run_id: str, **fields: Any) -> None:
        self.update_run(run_id, heartbeat=time.time(), **fields)

    def request_stop(self, run_id: str) -> None:
        """Ask a run to stop: a queued run stops now, a running one at its next batch."""
        with self._transaction() as connection:
            connection.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (check_run_id(run_id),))
            connection.execute("UPDATE runs SET status = ?, ended = ? WHERE id = ? AND status = ?",
                               (STOPPED, time.time(), run_id, QUEUED))

    def stop_requested(self, run_id: str) -> bool:
        with self._connect() as connection:
            row = connection.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def claim_next_queued(self, limit: int) -> str | None:
        """Atomically turn the oldest queued run into a running one if fewer than ``limit`` run."""
        with self._connect() as connection:  # cheap read first: no write lock when nothing waits
            if connection.execute("SELECT 1 FROM runs WHERE status = ? LIMIT 1", (QUEUED,)).fetchone() is None:
                return None
        with self._transaction() as connection:
            running = connection.execute(
                "SELECT COUNT(*) FROM runs WHERE status = ? AND source IN ('dashboard', 'cli')",
                (RUNNING,)).fetchone()[0]
            if running >= limit:
                return None
            row = connection.execute("SELECT id FROM runs WHERE status = ? ORDER BY created LIMIT 1",
                                     (QUEUED,)).fetchone()
            if row is None:
                return None
            now = time.time()
            connection.execute("UPDATE runs SET status = ?, started = COALESCE(started, ?), heartbeat = ?,"
                               " ended = NULL, error = NULL, pid = NULL, host = ? WHERE id = ?",
                               (RUNNING, now, now, socket.gethostname(), row[0]))
            return row[0]

    def delete_run(self, run_id: str) -> None:
        """Delete a run that is not active, with its metrics, artifacts and folder."""
        import shutil

        run = self.get_run(run_id)
        if run.status == RUNNING:
            raise UserFacingError("Stop the run before deleting it.")
        with self._transaction() as connection:
            connection.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            connection.execute("DELETE FROM artifacts WHERE run_id = ?", (run_id,))
            connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # --- liveness --------------------------------------------------------------------------
    def refresh_liveness(self, now: float | None = None) -> list[str]:
        """Mark running runs whose process vanished as interrupted; return their ids.

        On this host the pid decides (a dead or zombie process, or a pid now used by another
        program); elsewhere a heartbeat older than :data:`HEARTBEAT_TIMEOUT_S` does.
        """
        now = now or time.time()
        host = socket.gethostname()
        lost = []
        for run in self.list_runs(status=RUNNING):
            if run.host == host and run.pid:
                alive = process_alive(run.pid)
            else:
                alive = now - (run.heartbeat or run.started or run.created) < HEARTBEAT_TIMEOUT_S
            if not alive:
                lost.append(run.id)
        for run_id in lost:
            with self._transaction() as connection:  # only if still running (no race with the worker)
                connection.execute(
                    "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ? AND status = ?",
                    (INTERRUPTED, now, "The training process vanished (killed, crashed or the machine "
                     "restarted). Resume continues from the last completed epoch.", run_id, RUNNING))
        return lost

    # --- metrics ---------------------------------------------------------------------------
    def log_metrics(self, run_id: str, values: dict[str, float], *, epoch: int, step: int | None = None,
                    when: float | None = None, heartbeat: bool = True, **run_fields: Any) -> None:
        """Write a set of metric values (one transaction); optionally update run columns too."""
        with self._transaction() as connection:
            self._log_metrics(connection, run_id, values, epoch, step, when, heartbeat, run_fields)

    def _log_metrics(self, connection: sqlite3.Connection, run_id: str, values: dict[str, float], epoch: int,
                     step: int | None, when: float | None, heartbeat: bool, run_fields: dict[str, Any]) -> None:
        when = when or time.time()
        rows = [(run_id, int(epoch), step, str(name), _as_float(value), when) for name, value in values.items()]
        connection.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)", rows)
        if heartbeat or run_fields:
            fields = {**run_fields, **({"heartbeat": when} if heartbeat else {})}
            self._update_run(connection, run_id, fields)

    def delete_metrics_from(self, run_id: str, epoch: int) -> None:
        """Forget metrics of ``epoch`` and later (a resumed run redoes them)."""
        with self._transaction() as connection:
            self._delete_metrics_from(connection, run_id, epoch)

    @staticmethod
    def _delete_metrics_from(connection: sqlite3.Connection, run_id: str, epoch: int) -> None:
        connection.execute("DELETE FROM metrics WHERE run_id = ? AND epoch >= ?", (run_id, int(epoch)))

    # --- remote logging (services.training.ingest) -----------------------------------------
    def deliver(self, client: str, seq: int, apply) -> bool:
        """Apply one remote event exactly once: ``apply(connection, store)`` runs in the same
        transaction that records ``(client, seq)``, so a repeated delivery (the sender retrying
        after a lost answer) changes nothing. Returns False for a repeat."""
        with self._transaction() as connection:
            cursor = connection.execute("INSERT OR IGNORE INTO deliveries VALUES (?,?,?)",
                                        (str(client), int(seq), time.time()))
            if cursor.rowcount == 0:
                return False
            apply(connection, self)
        return True

    def metrics(self, run_id: str, names: list[str] | None = None, since: float | None = None) -> pd.DataFrame:
        """Metric rows (epoch, step, name, value, time) of a run, oldest first."""
        query = "SELECT epoch, step, name, value, time FROM metrics WHERE run_id = ?"
        args: list[Any] = [check_run_id(run_id)]
        if names:
            query += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        if since is not None:
            query += " AND time > ?"
            args.append(since)
        with self._connect() as connection:
            frame = pd.read_sql_query(query + " ORDER BY rowid", connection, params=args)
        return frame

    def epoch_table(self, run_id: str) -> pd.DataFrame:
        """Per-epoch metrics as one row per epoch (columns: epoch, loss, accuracy, val_loss, ...)."""
        frame = self.metrics(run_id)
        frame = frame[frame.step.isna()]
        if frame.empty:
            return pd.DataFrame(columns=["epoch"])
        return frame.pivot_table(index="epoch", columns="name", values="value", aggfunc="last").reset_index()

    # --- artifacts -------------------------------------------------------------------------
    def add_artifact(self, run_id: str, kind: str, path: str | os.PathLike, epoch: int | None = None) -> None:
        with self._transaction() as connection:
            connection.execute("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?)",
                               (check_run_id(run_id), kind, str(path), epoch, time.time()))

    def artifacts(self, run_id: str, kind: str | None = None) -> pd.DataFrame:
        query, args = "SELECT kind, path, epoch, created FROM artifacts WHERE run_id = ?", [check_run_id(run_id)]
        if kind:
            query, args = query + " AND kind = ?", args + [kind]
        with self._connect() as connection:
            return pd.read_sql_query(query + " ORDER BY created", connection, params=args)

    def artifact_paths(self, run_id: str, kind: str) -> list[Path]:
        """Existing files of ``kind``, oldest first, confined to the run's folder: store rows are
        untrusted (any script can write one), so a row naming ``/etc/passwd`` or a link out of
        the folder gives nothing."""
        folder = self.run_dir(run_id).resolve()
        found = []
        for raw in self.artifacts(run_id, kind).path.tolist():
            try:
                path = Path(raw).resolve()
            except (OSError, RuntimeError, ValueError):
                continue
            if folder in path.parents and path.is_file():
                found.append(path)
        return found

    def artifact_path(self, run_id: str, kind: str) -> Path | None:
        """The newest existing artifact of ``kind`` inside the run's folder (see :meth:`artifact_paths`)."""
        paths = self.artifact_paths(run_id, kind)
        return paths[-1] if paths else None

    # --- disk use --------------------------------------------------------------------------
    def disk_bytes(self, run_id: str) -> int:
        from services.run_layout import folder_bytes

        folder = self.run_dir(run_id)
        return folder_bytes(folder) if folder.is_dir() else 0


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


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) training process on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        return b"python" in cmdline or b"services.training" in cmdline
    except (OSError, IndexError):
        if not Path("/proc").is_dir():  # no procfs (macOS): fall back to signal 0
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False
