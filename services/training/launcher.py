"""Start, stop and resume training runs; each runs as a ``training`` job in its own worker process.

``start_run(config)`` validates the configuration (bad values are refused before anything
launches), records the run as queued in the run store and submits the job
``services.training.worker:training_job`` (params ``{"run_id", "store"}``) to the
:class:`~services.jobs.JobManager`, whose TensorFlow limit holds across every job kind (a run
waits while a style transfer or another run holds the slot). Workers outlive the page and the
server. :func:`schedule` (called by the monitor) mirrors job endings the run itself could not
record (a worker killed before it started, or killed by a signal) into the run store.
"""

from __future__ import annotations

from services.errors import UserFacingError
from services.jobs import kinds
from services.training import store as run_store
from services.training.config import InvalidConfig, RunConfig

RESUMABLE = (run_store.STOPPED, run_store.INTERRUPTED, run_store.FAILED)


def _store(store: run_store.RunStore | None) -> run_store.RunStore:
    return store if store is not None else run_store.RunStore()


def _manager(manager=None):
    if manager is not None:
        return manager
    from services.jobs import JobManager

    return JobManager()


def create_run_for(config: RunConfig, store: run_store.RunStore | None = None, source: str = "dashboard",
                   status: str = run_store.QUEUED, run_id: str | None = None, owner: str | None = None) -> str:
    """Record a validated run (queued for a worker; the CLI records it as running itself)."""
    config.validate()
    check_data_exists(config)
    return _store(store).create_run(
        config.name or f"{config.model} on {config.dataset}", model=config.model, dataset=config.dataset,
        split=config.split, source=source, config=config.to_dict(), hyperparameters=config.hyperparameters(),
        epochs=config.epochs, status=status, run_id=run_id, owner=owner)


def check_data_exists(config: RunConfig) -> None:
    """Refuse a dataset or saved split that does not exist (cheap: no indexing)."""
    from services.datasets import sources, splits

    try:
        sources.dataset_info(config.dataset)
    except UserFacingError as error:
        raise InvalidConfig(str(error)) from error
    if config.split and config.split not in splits.list_splits(config.dataset):
        raise InvalidConfig(f"Dataset {config.dataset!r} has no saved split {config.split!r}; "
                            "save one in the Dataset explorer or leave the split empty.")


def submit(run_id: str, store: run_store.RunStore, manager=None) -> str:
    """Submit the training job of a recorded run; returns the job id (also kept on the run)."""
    run = store.get_run(run_id)
    job_id = _manager(manager).submit(kinds.TRAINING, f"training · {run.name}", {"run_id": run_id, "store": str(store.path)})
    store.update_run(run_id, job_id=job_id)
    return job_id


def start_run(config: RunConfig, store: run_store.RunStore | None = None, manager=None,
              owner: str | None = None) -> str:
    """Validate, record (``owner``: who started it) and submit a run; returns its id at once."""
    store = _store(store)
    run_id = create_run_for(config, store, owner=owner)
    try:
        submit(run_id, store, manager)
    except Exception as error:
        store.set_status(run_id, run_store.FAILED, error=f"Could not queue the training job: {error}")
        raise
    return run_id


def schedule(store: run_store.RunStore | None = None, manager=None) -> list[str]:
    """Mark runs whose process vanished interrupted and mirror job endings into runs that could
    not record their own end; returns the ids of the runs changed."""
    store = _store(store)
    changed = store.refresh_liveness()
    active = [run for run in store.list_runs() if run.active and run.job_id]
    if not active:
        return changed
    manager = _manager(manager)
    for run in active:
        job = manager.get(run.job_id)
        if job is None or job.active:
            continue
        current = store.get_run(run.id)
        if not current.active:
            continue
        if job.status == "stopped":
            store.set_status(run.id, run_store.STOPPED)
        elif job.status == "finished":
            continue  # the run records its own end; a finished job left it consistent
        else:
            text = job.error or "The training process ended before the run could record it."
            status = run_store.INTERRUPTED if job.status == "interrupted" or job.signal else run_store.FAILED
            store.set_status(run.id, status, error=f"{text} Resume continues from the last completed epoch."
                             if status == run_store.INTERRUPTED else text)
        changed.append(run.id)
    return changed


def stop_run(run_id: str, store: run_store.RunStore | None = None, manager=None) -> None:
    """Ask a run to stop (a running one stops after its current batch, a queued one at once)."""
    store = _store(store)
    run = store.get_run(run_id)
    store.request_stop(run_id)
    if run.job_id:
        job = _manager(manager).get(run.job_id)
        if job is not None and job.active:
            _manager(manager).stop(run.job_id)


def resume_run(run_id: str, store: run_store.RunStore | None = None, manager=None) -> str:
    """Submit a stopped, interrupted or failed run again; it continues from its last backup.
    Returns the new job id."""
    store = _store(store)
    schedule(store, manager)
    run = store.get_run(run_id)
    if run.status not in RESUMABLE:
        raise UserFacingError(f"Only stopped, interrupted or failed runs can be resumed; this one is {run.status}.")
    if run.source not in ("dashboard", "cli"):
        raise UserFacingError("This run was logged by someone's own script; resume it there.")
    store.update_run(run_id, status=run_store.QUEUED, stop_requested=0, error=None, ended=None, source="dashboard")
    return submit(run_id, store, manager)
