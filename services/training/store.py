"""The run store: every training run, its metrics and its artifacts (checkpoints, exported
models, confusion matrices), in one SQLite database (:mod:`services.training.run_database`).

Each run's files live in ``<runs_dir>/<run_id>/``. What a run is (statuses, :class:`Run`, ids)
is :mod:`services.training.run_record`, re-exported here; the liveness of runs that no job
runs is :mod:`services.training.liveness`; remote de-duplication is the ingest's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services import untrusted_json
from services.config import get_settings
from services.errors import UserFacingError
from services.training.run_database import RunDatabase
from services.training.run_record import (  # noqa: F401  (re-exported: the names every caller imports)
    ACTIVE, DIVERGED, ENDED, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, STOPPED, Run, RunNotFound, StoreError,
    JSON_FIELDS, check_new_run_id, check_run_id, new_run_id, run_from_row, status_fields,
)

if TYPE_CHECKING:
    import pandas as pd


def default_store_path() -> Path:
    return get_settings().runs_dir / "runs.sqlite"


class RunStore(RunDatabase):
    """Runs, metrics and artifacts in SQLite (WAL). Safe to use from several processes."""

    def __init__(self, path: str | os.PathLike | None = None):
        super().__init__(Path(path) if path is not None else default_store_path())
        self.runs_dir = self.path.parent

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

    def get_run(self, run_id: str) -> Run:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        if row is None:
            raise RunNotFound(f"There is no run {run_id} (it may have been deleted).")
        return run_from_row(row)

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
        return [run_from_row(row) for row in rows]

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
        values = {k: json.dumps(v, default=str) if k in JSON_FIELDS else v for k, v in fields.items()}
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
        summary = untrusted_json.loads_or(row[0] or "{}", {}, what="the summary", allow_nan=True)
        merged = json.dumps({**summary, **values}, default=str)
        if max_bytes is not None and len(merged) > max_bytes:
            raise ValueError(f"the run's summary would exceed {max_bytes:,} bytes")
        connection.execute("UPDATE runs SET summary = ? WHERE id = ?", (merged, run_id))

    def set_status(self, run_id: str, status: str, error: str | None = None, **fields: Any) -> None:
        with self._transaction() as connection:
            self._update_run(connection, run_id, status_fields(status, error, fields))

    def end_if(self, run_id: str, status: str, error: str | None, ended: float, *, while_in: tuple[str, ...]) -> bool:
        """End a run with ``status`` only if its status is still one of ``while_in`` (no race with
        a process recording its own end); returns whether it changed."""
        with self._transaction() as connection:
            cursor = connection.execute(
                f"UPDATE runs SET status = ?, error = ?, ended = ? WHERE id = ? AND status IN "
                f"({','.join('?' * len(while_in))})", (status, error, ended, check_run_id(run_id), *while_in))
        return cursor.rowcount > 0

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


    def metrics(self, run_id: str, names: list[str] | None = None, since: float | None = None) -> pd.DataFrame:
        """Metric rows (epoch, step, name, value, time) of a run, oldest first."""
        import pandas as pd

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
        import pandas as pd

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
        import pandas as pd

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
def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None

