"""Start, stop and resume training runs; each runs as a ``training`` job in its own worker process.

``start_run(config)`` validates the configuration (bad values are refused before anything
launches), records the run as queued in the run store and submits the job
``services.training.worker:training_job`` (params ``{"run_id", "store"}``) to the
:class:`~services.jobs.JobManager`, whose TensorFlow limit holds across every job kind (a run
waits while a style transfer or another run holds the slot). Workers outlive the page and the
server. The job is the run's lifecycle: Stop goes to the job, and the job runner gives the run
its job's ending when the run could not record it (:mod:`services.training.reconcile`).
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


def stop_run(run_id: str, store: run_store.RunStore | None = None, manager=None) -> None:
    """Ask a run to stop (a running one stops after its current batch, a queued one at once):
    its job's Stop, or for a run with no job (a script's, or one whose job was deleted) the run's
    own stop flag."""
    store = _store(store)
    run = store.get_run(run_id)
    manager = _manager(manager) if run.job_id else None
    if manager is not None and manager.get(run.job_id) is not None:
        manager.stop(run.job_id)
    else:
        store.request_stop(run_id)


def resume_run(run_id: str, store: run_store.RunStore | None = None, manager=None) -> str:
    """Submit a stopped, interrupted or failed run again; it continues from its last backup.
    Returns the new job id."""
    store = _store(store)
    run = store.get_run(run_id)
    if run.status not in RESUMABLE:
        raise UserFacingError(f"Only stopped, interrupted or failed runs can be resumed; this one is {run.status}.")
    if run.source not in ("dashboard", "cli"):
        raise UserFacingError("This run was logged by someone's own script; resume it there.")
    # queued without a job until submit names the new one (the old job's ending must not apply)
    store.update_run(run_id, status=run_store.QUEUED, stop_requested=0, error=None, ended=None, source="dashboard",
                     job_id=None)
    return submit(run_id, store, manager)
