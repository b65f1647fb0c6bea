"""The pages' (and CLIs') view of background jobs: submit, list, stop, retry, resume.

A :class:`JobManager` writes jobs into the job store and makes sure the job runner of its data
root is alive; it never runs a job in its own process. See docs/architecture.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from services.config import check_upload, get_settings
from services.errors import UserFacingError
from services.jobs import store as job_store
from services.jobs.kinds import KINDS, kind_of
from services.jobs.runner import LOG_FILE, REPO_ROOT, pid_alive, worker_environment
from services.jobs.store import JobState

RUNNER_FRESH_S = 5.0
_JOB_ID = re.compile(r"[0-9a-f]{12}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")


class JobManager:
    def __init__(self, jobs_dir: str | os.PathLike | None = None, *, autostart: bool = True):
        self.root = Path(jobs_dir) if jobs_dir is not None else get_settings().jobs_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = job_store.open_store(self.root)
        self.autostart = autostart
        self._spawned: subprocess.Popen | None = None
        self._spawn_lock = threading.Lock()

    # --- the runner ------------------------------------------------------------------------

    def runner_alive(self) -> bool:
        pid, beat = self.store.runner()
        return bool(beat and time.time() - beat < RUNNER_FRESH_S and pid_alive(pid))

    def ensure_runner(self) -> None:
        """Start the job runner of this data root unless one is alive (or starting)."""
        if not self.autostart or self.runner_alive():
            return
        with self._spawn_lock:
            if self._spawned is not None and self._spawned.poll() is None:
                return  # started by us a moment ago; it beats within a second
            with open(self.root / LOG_FILE, "ab") as log:
                self._spawned = subprocess.Popen(
                    [sys.executable, "-m", "services.jobs.runner", "--jobs-dir", str(self.root)],
                    cwd=REPO_ROOT, env=worker_environment(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)

    # --- jobs ------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise UserFacingError("That is not a job id.")
        return self.root / job_id

    def submit(self, kind: str, title: str, params: dict[str, Any] | None = None,
               files: dict[str, bytes] | None = None, *, owner: str | None = None) -> str:
        """Queue a job of ``kind``; ``files`` are written into its folder first. Returns its id."""
        spec = kind_of(kind)
        check_upload(len(data) for data in (files or {}).values())
        for name in files or {}:
            if not _FILE_NAME.fullmatch(name):
                raise UserFacingError(f"Not a usable input file name for a job: {name[:40]!r}.")
        job_id = uuid.uuid4().hex[:12]
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True)
        for name, data in (files or {}).items():
            (folder / name).write_bytes(data)
        self.store.create(kind, title, spec.resource, dict(params or {}), sorted(files or {}), owner=owner,
                          job_id=job_id)
        self.ensure_runner()
        return job_id

    def get(self, job_id: str) -> JobState | None:
        return self.store.get(job_id)

    def list(self, kind: str | None = None) -> list[JobState]:
        """Jobs newest first (only ``kind``'s when given); restarts a vanished runner if work waits."""
        states = self.store.list(kind)
        if any(state.active for state in states):
            self.ensure_runner()
        return states

    def stop(self, job_id: str) -> None:
        self.store.request_stop(job_id)

    def dismiss(self, job_id: str) -> None:
        """Hide a finished job's error or notice on the page (the job itself is kept)."""
        self.store.dismiss(job_id)

    def retry(self, job_id: str) -> str:
        """A new job with the same kind, parameters and input files; returns its id."""
        state = self._ended(job_id)
        folder = self.job_dir(job_id)
        files = {name: (folder / name).read_bytes() for name in state.files if (folder / name).is_file()}
        return self.submit(state.kind, state.title, state.params, files, owner=state.owner)

    def resume(self, job_id: str) -> None:
        """Queue a stopped, interrupted or failed job of a resumable kind again, in its folder."""
        state = self._ended(job_id)
        if not kind_of(state.kind).resumable:
            raise UserFacingError(f"A {kind_of(state.kind).label} cannot be resumed; use Retry.")
        if state.status == job_store.FINISHED:
            raise UserFacingError("This job has finished; there is nothing to resume.")
        self.store.requeue(job_id, resumed=True)
        self.ensure_runner()

    def delete(self, job_id: str) -> None:
        state = self._ended(job_id)
        shutil.rmtree(self.job_dir(state.id), ignore_errors=True)
        self.store.delete(state.id)

    def _ended(self, job_id: str) -> JobState:
        state = self.store.get(job_id)
        if state is None:
            raise UserFacingError("That job no longer exists.")
        if state.active:
            raise UserFacingError("That job is still queued or running.")
        return state

    def wait(self, job_id: str, timeout: float = 60.0) -> JobState:
        """Block until the job is no longer active (CLIs and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(job_id)
            if state is None or not state.active:
                return state
            self.ensure_runner()
            time.sleep(0.05)
        state = self.get(job_id)
        raise TimeoutError(f"job {job_id} still {state.status if state else 'missing'} after {timeout} s")

    def file(self, state: JobState, key: str) -> Path | None:
        """A file named in the job's result under ``key`` (e.g. ``preview``), if it exists in the
        job's folder (a name from the result is untrusted: it must stay inside the folder)."""
        name = state.result.get(key) if isinstance(state.result, dict) else None
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            return None
        path = self.job_dir(state.id) / name
        return path if path.is_file() else None

    def interrupt_running(self, message: str, resume_message: str, timeout: float = 3.0) -> list[str]:
        """The app is stopping: mark every running job ``interrupted`` with ``message`` (a resumable
        one that nobody asked to stop gets ``resume_message`` and is queued again at the app's next
        start, :meth:`resume_after_app_stop`) and end every worker process of this job folder.
        Returns the ids of the interrupted jobs."""
        from services import processes

        interrupted = []
        for state in self.store.running():
            kind = KINDS.get(state.kind)
            resume = bool(kind and kind.resumable and not state.stop_requested)
            if self.store.interrupt(state.id, resume_message if resume else message, resume):
                interrupted.append(state.id)
        workers = [process for process in processes.find(self.root.resolve().parent)
                   if process.role in (processes.WORKER, processes.WARM_WORKER)]
        processes.end(workers, timeout)
        return interrupted

    def resume_after_app_stop(self) -> int:
        """Queue again the jobs the last app stop interrupted (and start the runner for them)."""
        count = self.store.requeue_interrupted_at_stop()
        if count:
            self.ensure_runner()
        return count

    def shutdown_runner(self, timeout: float = 10.0) -> None:
        """Stop this data root's runner; jobs still running finish on their own (a new runner
        adopts them). :func:`services.lifetime.stop_app` also ends them."""
        import signal

        pid, _ = self.store.runner()
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
