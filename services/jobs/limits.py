"""How many jobs of each resource class run at once, and the runner's own settings.

- ``tensorflow``: ``DASHBOARD_MAX_CONCURRENT_RUNS`` (default 1): training runs, comparisons,
  style transfer, batch detection and tissue maps share it, so two never fight for one GPU.
- ``cpu``: ``DASHBOARD_MAX_JOBS`` (default 2): indexing and imports.
- ``io``: ``DASHBOARD_MAX_DOWNLOADS`` (default 3): downloads.
"""

from __future__ import annotations


from services.config import env_flag, env_int, get_settings, profile_default
from services.jobs.kinds import CPU, IO, TENSORFLOW


def resource_limits() -> dict[str, int]:
    settings = get_settings()
    return {TENSORFLOW: max(1, settings.max_concurrent_runs), CPU: max(1, settings.max_background_jobs),
            IO: max(1, env_int("DASHBOARD_MAX_DOWNLOADS", 3))}


def warm_worker_enabled() -> bool:
    """A TensorFlow worker kept warm beside the runner (``DASHBOARD_WARM_WORKER``; off under
    the cloud profile, where each job starts its own and no TensorFlow process idles)."""
    return env_flag("DASHBOARD_WARM_WORKER", profile_default(True, False))


def prewarm_enabled() -> bool:
    """Start the job runner (and so its warm TensorFlow worker) as soon as a page asks for the
    job manager, before anyone presses Start (``DASHBOARD_PREWARM=0``, the cloud profile's
    default, waits for the first job)."""
    return env_flag("DASHBOARD_PREWARM", profile_default(True, False)) and warm_worker_enabled()


def runner_idle_seconds() -> float:
    """The runner exits after this long with nothing to do (``DASHBOARD_RUNNER_IDLE_S``;
    600 s, 60 s under the cloud profile)."""
    return float(env_int("DASHBOARD_RUNNER_IDLE_S", profile_default(600, 60)))


def stale_seconds() -> float:
    """A running job whose worker has not reported for this long is ended and marked
    interrupted (``DASHBOARD_JOB_STALE_S``, default 30)."""
    return float(env_int("DASHBOARD_JOB_STALE_S", 30))
