"""Background jobs: long work that must never run in the Streamlit script thread.

A :class:`JobManager` runs job functions in worker threads of the server process. Each job has
a directory ``<jobs_dir>/<job_id>/`` holding ``job.json`` (status, progress, message, result)
and any files the job writes (previews, results). Because state lives on disk and in the
manager, a page that is reloaded (a new browser session) finds its jobs again with
:meth:`JobManager.list`. Jobs left ``running`` by a server that died are reported as
``interrupted`` when the manager starts.

A job function receives a :class:`JobContext`; it reports progress, checks
:meth:`JobContext.should_stop` regularly and returns a JSON-serialisable result.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.errors import UserFacingError

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = (
    "queued", "running", "finished", "stopped", "failed", "interrupted",
)
ACTIVE = (QUEUED, RUNNING)


@dataclass
class JobState:
    id: str
    kind: str
    title: str
    params: dict[str, Any]
    status: str = QUEUED
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    result: Any = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class JobStopped(Exception):
    """Raised by :meth:`JobContext.check_stop` to end a job that was asked to stop."""


class JobContext:
    """What a running job sees: its directory, progress reporting and the stop flag."""

    def __init__(self, manager: "JobManager", state: JobState, stop_event: threading.Event):
        self._manager = manager
        self._state = state
        self.stop_event = stop_event
        self.dir = manager.job_dir(state.id)
        self.params = state.params

    def progress(self, fraction: float, message: str | None = None) -> None:
        self._state.progress = max(0.0, min(1.0, float(fraction)))
        if message is not None:
            self._state.message = message
        self._manager._save(self._state, throttle=True)

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def check_stop(self) -> None:
        if self.stop_event.is_set():
            raise JobStopped()

    def update_result(self, **values: Any) -> None:
        """Publish partial results (e.g. the latest preview's file name) while running."""
        current = self._state.result if isinstance(self._state.result, dict) else {}
        self._state.result = {**current, **values}
        self._manager._save(self._state, throttle=True)


JobFunction = Callable[[JobContext], Any]


class JobManager:
    """Runs and tracks background jobs; one per server process (held by st.cache_resource)."""

    def __init__(self, root: str | os.PathLike, max_workers: int = 2):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._slots = threading.BoundedSemaphore(max_workers)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._states: dict[str, JobState] = {}
        self._stops: dict[str, threading.Event] = {}
        self._last_save: dict[str, float] = {}
        self._load_existing()

    def job_dir(self, job_id: str) -> Path:
        if not job_id.replace("-", "").isalnum():
            raise UserFacingError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def _load_existing(self) -> None:
        for path in sorted(self.root.glob("*/job.json")):
            try:
                state = JobState(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue  # a foreign or half-written file: ignore it, never overwrite it
            if state.active:
                state.status, state.ended = INTERRUPTED, state.ended or time.time()
                state.message = "the server stopped while this job was running"
                self._write(state)
            self._states[state.id] = state

    def _write(self, state: JobState) -> None:
        directory = self.job_dir(state.id)
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / "job.json.tmp"
        temporary.write_text(json.dumps(asdict(state), default=str))
        os.replace(temporary, directory / "job.json")

    def _save(self, state: JobState, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._last_save.get(state.id, 0.0) < 0.25:
            return
        self._last_save[state.id] = now
        with self._lock:
            self._write(state)

    def submit(self, kind: str, title: str, function: JobFunction, params: dict[str, Any] | None = None) -> str:
        """Queue ``function`` as a job and return its id at once."""
        state = JobState(id=uuid.uuid4().hex[:12], kind=kind, title=title, params=dict(params or {}))
        stop_event = threading.Event()
        with self._lock:
            self._states[state.id] = state
            self._stops[state.id] = stop_event
        self._save(state)
        # Daemon threads: a server that exits never hangs on a job (its state on disk then says
        # "interrupted" at the next start), unlike ThreadPoolExecutor, whose threads are joined.
        thread = threading.Thread(target=self._run_in_slot, args=(state, function, stop_event),
                                  name=f"dashboard-job-{state.id}", daemon=True)
        self._threads = [running for running in self._threads if running.is_alive()] + [thread]
        thread.start()
        return state.id

    def _run_in_slot(self, state: JobState, function: JobFunction, stop_event: threading.Event) -> None:
        with self._slots:  # at most max_workers jobs run at once; the others wait as queued
            self._run(state, function, stop_event)

    def _run(self, state: JobState, function: JobFunction, stop_event: threading.Event) -> None:
        if stop_event.is_set():
            state.status, state.ended, state.message = STOPPED, time.time(), "stopped before it started"
            self._save(state)
            return
        state.status, state.started = RUNNING, time.time()
        self._save(state)
        context = JobContext(self, state, stop_event)
        error, message = None, state.message
        try:
            result = function(context)
        except JobStopped:
            status, message = STOPPED, "stopped on request"
        except UserFacingError as failure:
            status, error = FAILED, str(failure)
        except Exception as failure:  # a job must never take the server down
            (self.job_dir(state.id) / "traceback.txt").write_text(traceback.format_exc())
            status, error = FAILED, f"{type(failure).__name__}: {failure}"
        else:
            if isinstance(result, dict) and isinstance(state.result, dict):
                state.result = {**state.result, **result}
            elif result is not None:
                state.result = result
            status = STOPPED if stop_event.is_set() else FINISHED
            message = message or ("stopped on request" if status == STOPPED else "")
        # Publish the end state last, in one step, so readers never see a half-finished job.
        with self._lock:
            state.error, state.message, state.ended = error, message, time.time()
            if status == FINISHED:
                state.progress = 1.0
            state.status = status
            self._write(state)

    def get(self, job_id: str) -> JobState | None:
        with self._lock:
            state = self._states.get(job_id)
            return JobState(**asdict(state)) if state else None

    def list(self, kind: str | None = None) -> list[JobState]:
        """Jobs newest first, optionally only those of ``kind``."""
        with self._lock:
            states = [JobState(**asdict(s)) for s in self._states.values() if kind in (None, s.kind)]
        return sorted(states, key=lambda s: s.created, reverse=True)

    def stop(self, job_id: str) -> None:
        event = self._stops.get(job_id)
        if event is not None:
            event.set()

    def wait(self, job_id: str, timeout: float = 60.0) -> JobState:
        """Block until the job is no longer active (for CLIs and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(job_id)
            if state is None or not state.active:
                return state
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still {self.get(job_id).status} after {timeout} s")

    def shutdown(self, timeout: float = 30.0) -> None:
        """Ask every job to stop and wait (up to ``timeout`` seconds each) for them to end."""
        for event in self._stops.values():
            event.set()
        for thread in self._threads:
            thread.join(timeout)
