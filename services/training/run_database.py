"""The run store's SQLite file: its schema and migrations, the connection of each thread, and
atomic transactions.

``<data_root>/runs/runs.sqlite`` in WAL mode: the training process writes while the dashboard
reads; readers never block the writer and only ever see committed transactions (a row is
written whole or not at all, even when the writer is SIGKILLed).

The file is marked with an SQLite ``application_id``; a file that is not SQLite, or is some
other program's database, is refused with a clear message and never modified.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from services.training.run_record import StoreError

APPLICATION_ID = 0x44534852  # "DSHR"
SCHEMA_VERSION = 3
"""2: run notes, tags and job id; the deliveries table of the remote-logging ingest."""

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


class RunDatabase:
    """One SQLite run-store file, safe to use from several threads and processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._check_existing_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            self._initialise(connection)

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
