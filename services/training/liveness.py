"""Liveness of runs that no job runs (scripts on this machine, the CLI, remote machines).

A run started from the dashboard is a job's: the job runner watches its worker (heartbeat and
pid, :mod:`services.jobs.runner`) and :mod:`services.training.reconcile` gives the run the job's
ending. A run with no job has only its own row: on this host its pid decides (a dead or zombie
process, or a pid now used by another program); elsewhere a heartbeat older than
:data:`HEARTBEAT_TIMEOUT_S` does.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from services.training.run_record import INTERRUPTED, RUNNING

HEARTBEAT_TIMEOUT_S = 180.0
"""A running run whose heartbeat is older than this (and whose pid is unknown here) is interrupted."""
VANISHED = ("The training process vanished (killed, crashed or the machine restarted). "
            "Resume continues from the last completed epoch.")


def run_alive(run, now: float, host: str) -> bool:
    """Whether the process of a running run without a job still lives."""
    if run.host == host and run.pid:
        return process_alive(run.pid)
    return now - (run.heartbeat or run.started or run.created) < HEARTBEAT_TIMEOUT_S


def interrupt_vanished(store, now: float | None = None) -> list[str]:
    """Mark running runs without a job whose process vanished as interrupted; return their ids."""
    now = now or time.time()
    host = socket.gethostname()
    lost = [run.id for run in store.list_runs(status=RUNNING) if not run.job_id and not run_alive(run, now, host)]
    return [run_id for run_id in lost if store.end_if(run_id, INTERRUPTED, VANISHED, now, while_in=(RUNNING,))]


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) training process on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        return b"python" in cmdline or b"services.training" in cmdline
    except (OSError, IndexError):
        if not Path("/proc").is_dir():  # no procfs (macOS): fall back to signal 0
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False

