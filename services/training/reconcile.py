"""A run's status follows its job: the job runner calls :func:`sweep` every few seconds.

A run started from the dashboard (kind ``training``) or by a comparison (kind ``transfer``) is
run by a job, and the job is its lifecycle: queued, running, Stop and liveness are the job's
(:mod:`services.jobs`). The run records its own end when its body can (finished, stopped,
failed, diverged: :mod:`services.training.lifecycle`); when it cannot (its worker was killed,
crashed, froze, or the job was stopped before it started), :func:`settle` gives the run its
job's ending. Runs with no job (scripts, the CLI, remote machines) keep their own status; their
liveness is :func:`services.training.liveness.interrupt_vanished`, swept here too.
"""

from __future__ import annotations

import time
from pathlib import Path

from services.training import liveness
from services.training import run_record as runs
from services.config import get_settings
from services.training.store import RunStore, default_store_path

RESUME_HINT = " Resume continues from the last completed epoch."


def job_ending(job) -> tuple[str, str | None] | None:
    """The run status (and error text) a job's ending gives a run that could not record its own;
    None while the job is active or when it finished (its run then recorded its end)."""
    if job.active or job.status == "finished":
        return None
    if job.status == "stopped":
        return runs.STOPPED, None
    text = job.error or job.message or "The training process ended before the run could record it."
    if job.status == "interrupted" or job.signal:
        return runs.INTERRUPTED, text.rstrip(".") + "." + RESUME_HINT
    return runs.FAILED, text


def settle(store: RunStore, get_job) -> list[str]:
    """Give every active run whose job has ended that job's ending (``get_job(job_id)`` -> the
    job's state or None); returns the ids of the runs changed."""
    changed = []
    for run in store.list_runs():
        if not run.active or not run.job_id:
            continue
        job = get_job(run.job_id)
        ending = job_ending(job) if job is not None else None
        if ending is None:
            continue
        status, error = ending
        if store.end_if(run.id, status, error, job.ended or time.time(), while_in=runs.ACTIVE):
            changed.append(run.id)
    return changed


def sweep(jobs_dir: Path, get_job) -> list[str]:
    """The job runner's sweep of the run store of its data root: runs whose job ended take its
    ending, runs with no job whose process vanished are interrupted. Returns the ids of the runs
    changed. A runner of another jobs folder than the configured one, or a data root without a
    run store, is left alone."""
    path = default_store_path()
    if Path(jobs_dir).resolve() != get_settings().jobs_dir.resolve() or not path.is_file():
        return []
    store = _store(str(path))
    return settle(store, get_job) + liveness.interrupt_vanished(store)


_stores: dict[str, RunStore] = {}


def _store(path: str) -> RunStore:
    """One store per path for the runner's lifetime (its connection stays open)."""
    if path not in _stores:
        _stores[path] = RunStore(path)
    return _stores[path]
