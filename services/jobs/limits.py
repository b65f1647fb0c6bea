"""How many jobs of each resource class run at once, and the runner's own settings.

- ``tensorflow``: ``DASHBOARD_MAX_CONCURRENT_RUNS`` (default 1): training runs, comparisons,
  style transfer, batch detection and tissue maps share it, so two never fight for one GPU.
- ``cpu``: ``DASHBOARD_MAX_JOBS`` (default 2): indexing and imports.
- ``io``: ``DASHBOARD_MAX_DOWNLOADS`` (default 3): downloads.
"""

from __future__ import annotations


from services.config import get_settings
from services.jobs.kinds import CPU, IO, TENSORFLOW


def resource_limits() -> dict[str, int]:
    settings = get_settings()
    return {TENSORFLOW: max(1, settings.max_concurrent_runs), CPU: max(1, settings.max_background_jobs),
            IO: max(1, settings.max_downloads)}


def warm_worker_enabled() -> bool:
    """A TensorFlow worker kept warm beside the runner (``DASHBOARD_WARM_WORKER``; off under
    the cloud profile, where each job starts its own and no TensorFlow process idles)."""
    return get_settings().warm_worker


def prewarm_enabled() -> bool:
    """Start the job runner (and so its warm TensorFlow worker) as soon as a page asks for the
    job manager, before anyone presses Start (``DASHBOARD_PREWARM=0``, the cloud profile's
    default, waits for the first job)."""
    return get_settings().prewarm


def runner_idle_seconds() -> float:
    """The runner exits after this long with nothing to do (``DASHBOARD_RUNNER_IDLE_S``;
    600 s, 60 s under the cloud profile)."""
    return get_settings().runner_idle_s


def stale_seconds() -> float:
    """A running job whose worker has not reported for this long is ended and marked
    interrupted (``DASHBOARD_JOB_STALE_S``, default 30)."""
    return get_settings().job_stale_s
