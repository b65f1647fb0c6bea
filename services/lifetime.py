"""The app's lifetime: what happens to the background processes when the dashboard starts and stops.

The job runner, its workers and the model service run in sessions of their own, so that a web
server that crashes or is killed (SIGKILL, the OOM killer) leaves running jobs running and the
next server finds them. They end with the app only on an explicit, graceful stop:

- :func:`stop_app` ends every background process of a data root: the runner, every worker (the
  jobs they ran are marked ``interrupted``; resumable ones are queued again at the next start),
  the model service, and whatever else of them is still alive (SIGTERM, then SIGKILL). It finds
  them by their command line (:mod:`services.processes`), never by a pid a file remembers.
  ``make run``'s launcher (:mod:`services.supervisor`) calls it on Ctrl-C / SIGTERM; a web server
  started alone (``streamlit run dashboard/app.py``, Streamlit Cloud) calls it when it exits
  normally (:func:`stop_at_exit`), unless another web server still serves the data root.
- :func:`app_started` queues again the jobs the last stop interrupted.
"""

from __future__ import annotations

import atexit
import os
import signal
import time
from pathlib import Path

from services import processes
from services.config import DataRoot
from services.jobs import JobManager
from services.jobs.store import STORE_FILE
from services.model_service import client

STOP_MESSAGE = "interrupted: the dashboard was stopped"
RESUME_MESSAGE = STOP_MESSAGE + "; it continues when the dashboard starts again"
_registered: set[Path] = set()


def _jobs_manager(data_root: Path, autostart: bool) -> JobManager | None:
    jobs_dir = DataRoot(data_root).jobs_dir
    return JobManager(jobs_dir, autostart=autostart) if (jobs_dir / STORE_FILE).is_file() else None


def stop_app(data_root: Path, timeout: float = 7.0) -> list[str]:
    """End the background processes of ``data_root`` within about ``timeout`` seconds; returns
    the ids of the jobs it interrupted."""
    data_root = Path(data_root).resolve()
    deadline = time.monotonic() + timeout
    # The runner first, so that it starts nothing more (on SIGTERM it ends its idle warm worker).
    processes.end(processes.find(data_root, (processes.RUNNER,)), timeout=min(2.0, timeout / 3))
    manager = _jobs_manager(data_root, autostart=False)
    interrupted = [] if manager is None else manager.interrupt_running(STOP_MESSAGE, RESUME_MESSAGE,
                                                                        timeout=min(2.0, timeout / 3))
    if DataRoot(data_root).service_dir.is_dir():
        client.stop_service(timeout=min(1.0, max(0.1, deadline - time.monotonic())), data_root=data_root)
    left = [process for process in processes.find(data_root, processes.BACKGROUND) if process.pid != os.getpid()]
    processes.end(left, timeout=max(0.5, deadline - time.monotonic()))
    return interrupted


def app_started(data_root: Path) -> int:
    """The app starts: queue again the jobs the last stop interrupted; returns how many."""
    manager = _jobs_manager(Path(data_root).resolve(), autostart=True)
    return manager.resume_after_app_stop() if manager is not None else 0


def stop_at_exit(data_root: Path) -> None:
    """Call :func:`stop_app` when this web server process exits normally (Ctrl-C, SIGTERM): once
    per data root, and only if no other web server of the data root is still running then."""
    data_root = Path(data_root).resolve()
    if data_root in _registered:
        return
    _registered.add(data_root)
    atexit.register(_stop_unless_served, data_root)


def _stop_unless_served(data_root: Path) -> None:
    for number in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stop short
        signal.signal(number, signal.SIG_IGN)
    others = [process for process in processes.find(data_root, (processes.WEB_SERVER,)) if process.pid != os.getpid()]
    if not others and data_root.is_dir():
        stop_app(data_root)
