"""Start, stop and resume training runs; each runs in its own OS process.

``start_run(config)`` validates the configuration (bad values are refused before anything
launches), records the run as queued and calls :func:`schedule`, which starts queued runs while
fewer than ``settings.max_concurrent_runs`` run. Workers start in a new session, so they
outlive the Streamlit page and even the server; when a worker ends it schedules the next run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from services.config import get_settings
from services.errors import UserFacingError
from services.training import store as run_store
from services.training.config import InvalidConfig, RunConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
RESUMABLE = (run_store.STOPPED, run_store.INTERRUPTED, run_store.FAILED)


def _store(store: run_store.RunStore | None) -> run_store.RunStore:
    return store if store is not None else run_store.RunStore()


def create_run_for(config: RunConfig, store: run_store.RunStore | None = None, source: str = "dashboard",
                   status: str = run_store.QUEUED) -> str:
    """Record a validated run (queued for a worker; the CLI records it as running itself)."""
    config.validate()
    check_data_exists(config)
    return _store(store).create_run(
        config.name or f"{config.model} on {config.dataset}", model=config.model, dataset=config.dataset,
        split=config.split, source=source, config=config.to_dict(), hyperparameters=config.hyperparameters(),
        epochs=config.epochs, status=status)


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


def start_run(config: RunConfig, store: run_store.RunStore | None = None) -> str:
    """Validate, queue and (if a slot is free) launch a run; returns its id at once."""
    store = _store(store)
    run_id = create_run_for(config, store)
    schedule(store)
    return run_id


def spawn_run_process(module: str, run_id: str, store: run_store.RunStore) -> subprocess.Popen:
    """``python -m <module> <run_id> --store <path>`` in a new session, so it survives the page
    and the server; its output goes to the run's ``worker.log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(store.run_dir(run_id) / "worker.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, run_id, "--store", str(store.path)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    store.update_run(run_id, pid=process.pid)
    threading.Thread(target=process.wait, name=f"reap-{run_id}", daemon=True).start()  # no zombies
    return process


def launch_worker(run_id: str, store: run_store.RunStore) -> subprocess.Popen:
    """The training worker for ``run_id``."""
    return spawn_run_process("services.training.worker", run_id, store)


def schedule(store: run_store.RunStore | None = None) -> list[str]:
    """Mark vanished workers interrupted, then launch queued runs while slots are free."""
    store = _store(store)
    store.refresh_liveness()
    launched = []
    limit = max(1, get_settings().max_concurrent_runs)
    while (run_id := store.claim_next_queued(limit)) is not None:
        try:
            launch_worker(run_id, store)
        except OSError as error:
            store.set_status(run_id, run_store.FAILED, error=f"Could not start the training process: {error}")
            continue
        launched.append(run_id)
    return launched


def stop_run(run_id: str, store: run_store.RunStore | None = None) -> None:
    """Ask a run to stop (a running one stops after its current batch)."""
    _store(store).request_stop(run_id)


def resume_run(run_id: str, store: run_store.RunStore | None = None) -> None:
    """Queue a stopped, interrupted or failed run again; it continues from its last epoch."""
    store = _store(store)
    store.refresh_liveness()
    run = store.get_run(run_id)
    if run.status not in RESUMABLE:
        raise UserFacingError(f"Only stopped, interrupted or failed runs can be resumed; this one is {run.status}.")
    if run.source not in ("dashboard", "cli"):
        raise UserFacingError("This run was logged by someone's own script; resume it there.")
    store.update_run(run_id, status=run_store.QUEUED, stop_requested=0, error=None, ended=None, source="dashboard")
    schedule(store)
