"""A job worker process: runs exactly one job, then exits.

``python -m services.jobs.worker --jobs-dir D --job ID`` runs job ID (already claimed by the
runner). ``--warm --resource tensorflow`` imports TensorFlow first, prints ``ready`` and then
reads the id of the job to run from stdin: the import is paid before the user presses Start.
After a job of a kind that reuses its worker (``JobKind.reuses_worker``: tissue maps, which keep
their models loaded), a warm worker whose memory is below ``reused_worker_max_mb`` prints
``ready`` again and takes the next such job the runner hands it; after any other job it exits.

The worker writes the job's end state itself. If it dies instead (a signal, the OOM killer),
the runner that started it records the signal or exit code and the end of ``worker.log``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Callable

from services import run_layout
from services.config import Env
from services.errors import UserFacingError
from services.jobs import store as job_store
from services.jobs.context import JobContext, JobStopped, merge_result
from services.jobs.kinds import TENSORFLOW, kind_of
from services.jobs.logs import log_tail

HEARTBEAT_S = 1.0


class StoreReporter:
    """Sends a context's reports to the job store (each report is also a heartbeat)."""

    def __init__(self, store: job_store.JobStore, job_id: str):
        self.store, self.job_id = store, job_id

    def report(self, progress: float, message: str | None, result: dict) -> None:
        self.store.report(self.job_id, progress, message, result)

    def stop_requested(self) -> bool:
        return self.store.stop_requested(self.job_id)


def _heartbeat(store: job_store.JobStore, job_id: str, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_S):
        try:
            store.beat(job_id)
        except Exception:  # noqa: BLE001 - a missed beat is harmless; the next one may pass
            pass


def _redirect_output(log_path: Path) -> None:
    """Send this process's stdout and stderr (also C-level output) to the job's log."""
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def run_job(jobs_dir: Path, job_id: str) -> int:
    store = job_store.open_store(jobs_dir)
    state = store.get(job_id)
    if state is None:
        return 2
    _run(store, jobs_dir, job_id, state)
    return 0


def _run(store: job_store.JobStore, jobs_dir: Path, job_id: str, state: job_store.JobState,
         before_end: Callable[[], object] | None = None) -> None:
    """Run one job and record its end state; ``before_end`` runs just before the record."""
    folder = jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    log_path = run_layout.worker_log(folder)
    _redirect_output(log_path)
    # TensorFlow's autograph and other libraries write temporary files: keep them in the job
    # folder and remove them when the job ends (nothing is left in /tmp).
    scratch = folder / "tmp"
    scratch.mkdir(exist_ok=True)
    os.environ[Env.TMPDIR] = str(scratch)
    tempfile.tempdir = str(scratch)
    store.set_pid(job_id, os.getpid())
    done = threading.Event()
    threading.Thread(target=_heartbeat, args=(store, job_id, done), daemon=True).start()
    context = JobContext(StoreReporter(store, job_id), folder, dict(state.params), resumed=state.resumed,
                         job_id=job_id, owner=state.owner)
    if state.resumed:
        context.update_result(**state.result)
    print(f"--- job {job_id} ({state.kind}) attempt {state.attempts}", flush=True)
    try:
        status, fields = _outcome(state, context, log_path)
        if before_end is not None:
            before_end()
        store.finish(job_id, status, **fields, only_if_running=True)
    finally:
        done.set()
        shutil.rmtree(scratch, ignore_errors=True)


def _outcome(state: job_store.JobState, context: JobContext, log_path: Path) -> tuple[str, dict]:
    """Run the job's body: its end status and what the store records with it."""
    try:
        returned = kind_of(state.kind).load_body()(dict(state.params), context)
    except JobStopped:
        return job_store.STOPPED, {"message": "stopped on request", "result": context.result}
    except UserFacingError as error:
        return job_store.FAILED, {"error": str(error), "result": context.result}
    except MemoryError:
        traceback.print_exc()
        return job_store.FAILED, {"error": "The job ran out of memory. Try a smaller image, batch or model.",
                                  "result": context.result, "log_tail": log_tail(log_path)}
    except Exception as error:  # noqa: BLE001 - any failure becomes the job's failure, never the server's
        traceback.print_exc()
        sys.stdout.flush()
        return job_store.FAILED, {
            "error": f"The job failed unexpectedly ({type(error).__name__}). The end of its log is below.",
            "result": context.result, "log_tail": log_tail(log_path)}
    stopped = context.should_stop()
    return (job_store.STOPPED if stopped else job_store.FINISHED,
            {"message": "stopped on request" if stopped else context.closing_message,
             "result": merge_result(context.result, returned)})


def may_take_another(kind: str) -> bool:
    """Whether a warm worker that just ran a job of ``kind`` stays for the next one (see the module doc)."""
    from services.config import get_settings
    from services.jobs.kinds import KINDS
    from services.processes import memory

    declared = KINDS.get(kind)
    if not (declared and declared.reuses_worker):
        return False
    gc.collect()  # what the job no longer holds, before its memory is weighed
    used, _ = memory(os.getpid())
    return used is not None and used < get_settings().reused_worker_max_mb * 1024**2


def serve_warm(jobs_dir: Path) -> int:
    """Take job ids from stdin, one at a time, while each job allows the next (:func:`may_take_another`).

    ``ready`` goes on the original stdout (the runner's pipe), for the next job before the end
    state of the last one is recorded: whoever sees that end state and submits the next map
    finds this worker ready for it. Between jobs the output goes back where the runner sent it."""
    control = os.fdopen(os.dup(1), "w")
    outputs = os.dup(1), os.dup(2)
    staying = True
    print("ready", file=control, flush=True)
    while staying:
        job_id = sys.stdin.readline().strip()
        if not job_id:
            return 0
        store = job_store.open_store(jobs_dir)
        state = store.get(job_id)
        if state is None:
            return 2

        def between_jobs() -> None:
            nonlocal staying
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(outputs[0], 1)
            os.dup2(outputs[1], 2)
            staying = may_take_another(state.kind)
            if staying:
                print("ready", file=control, flush=True)

        _run(store, jobs_dir, job_id, state, between_jobs)
    return 0


def warm_up(resource: str) -> None:
    if resource == TENSORFLOW:
        from services.runtime import tensorflow

        tensorflow()
        import keras  # noqa: F401 - the import is what a warm worker saves its job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs-dir", required=True, type=Path)
    parser.add_argument("--job")
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--resource", default=TENSORFLOW)
    arguments = parser.parse_args(argv)
    jobs_dir = arguments.jobs_dir.resolve()
    if arguments.warm:
        warm_up(arguments.resource)
        return serve_warm(jobs_dir)
    if not arguments.job:
        parser.error("--job or --warm is required")
    return run_job(jobs_dir, arguments.job)


if __name__ == "__main__":
    sys.exit(main())
