"""A job worker process: runs exactly one job, then exits.

``python -m services.jobs.worker --jobs-dir D --job ID`` runs job ID (already claimed by the
runner). ``--warm --resource tensorflow`` imports TensorFlow first, prints ``ready`` and then
reads the id of the job to run from stdin: the import is paid before the user presses Start.

The worker writes the job's end state itself. If it dies instead (a signal, the OOM killer),
the runner that started it records the signal or exit code and the end of ``worker.log``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import traceback
from pathlib import Path

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
        returned = kind_of(state.kind).load_body()(dict(state.params), context)
    except JobStopped:
        store.finish(job_id, job_store.STOPPED, message="stopped on request", result=context.result,
                     only_if_running=True)
    except UserFacingError as error:
        store.finish(job_id, job_store.FAILED, error=str(error), result=context.result, only_if_running=True)
    except MemoryError:
        traceback.print_exc()
        store.finish(job_id, job_store.FAILED, error="The job ran out of memory. Try a smaller image, "
                     "batch or model.", result=context.result, log_tail=log_tail(log_path), only_if_running=True)
    except Exception as error:  # noqa: BLE001 - any failure becomes the job's failure, never the server's
        traceback.print_exc()
        sys.stdout.flush()
        store.finish(job_id, job_store.FAILED,
                     error=f"The job failed unexpectedly ({type(error).__name__}). The end of its log is below.",
                     result=context.result, log_tail=log_tail(log_path), only_if_running=True)
    else:
        stopped = context.should_stop()
        store.finish(job_id, job_store.STOPPED if stopped else job_store.FINISHED,
                     message="stopped on request" if stopped else context.closing_message,
                     result=merge_result(context.result, returned), only_if_running=True)
    finally:
        done.set()
        shutil.rmtree(scratch, ignore_errors=True)
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
        print("ready", flush=True)
        line = sys.stdin.readline().strip()
        if not line:
            return 0
        return run_job(jobs_dir, line)
    if not arguments.job:
        parser.error("--job or --warm is required")
    return run_job(jobs_dir, arguments.job)


if __name__ == "__main__":
    sys.exit(main())
