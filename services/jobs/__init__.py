"""Background jobs, each in its own worker process, under one lifecycle (docs/architecture.md).

- :mod:`services.jobs.kinds`: every kind of job (body, resource class, resumable).
- :mod:`services.jobs.store`: the SQLite job store.
- :mod:`services.jobs.manager`: :class:`JobManager`, what pages and CLIs use.
- :mod:`services.jobs.runner`: the supervisor process that starts workers.
- :mod:`services.jobs.worker`: a worker process (runs one job).
- :mod:`services.jobs.context`: what a body sees (:class:`JobContext`), :func:`run_inline`.
"""

from services.jobs.context import InlineResult, JobContext, JobStopped, run_inline
from services.jobs.manager import JobManager
from services.jobs.store import (ACTIVE, ENDED, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, STOPPED,
                                 JobState)

__all__ = ["ACTIVE", "ENDED", "FAILED", "FINISHED", "INTERRUPTED", "QUEUED", "RUNNING", "STOPPED",
           "InlineResult", "JobContext", "JobManager", "JobState", "JobStopped", "run_inline"]
