"""Shared pieces for pages that talk to the model service and the job runner."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from collections.abc import Iterator

import streamlit as st

from services.errors import UserFacingError
from services.model_service import client


@contextlib.contextmanager
def show_service_error() -> Iterator[None]:
    """Show a model-service refusal or restart as a message on the page (never a traceback)."""
    try:
        yield
    except client.ServiceRestarted as error:
        st.warning(str(error), icon=":material/restart_alt:")
    except UserFacingError as error:
        st.error(str(error))


@st.cache_data(ttl=300, show_spinner="Asking the model service for TensorFlow's devices…")
def _devices() -> list[dict]:
    return client.call("system.devices").result["devices"]


def tensorflow_devices() -> list[dict] | None:
    """The devices TensorFlow sees (asked of the model service; None with a message on failure)."""
    try:
        return _devices()
    except UserFacingError as error:
        st.error(str(error))
        return None


@st.cache_data(ttl=60, show_spinner="Measuring disk use…")
def data_root_usage(data_root: str) -> list[dict]:
    """Disk use per data-root folder, walked at most once a minute (a dataset folder can hold
    100,000 files: not on every rerun)."""
    from services import storage

    return storage.data_root_usage(Path(data_root))


def _memory_mib(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, TypeError):
        return None
    return None


def background_processes() -> list[dict]:
    """This web server, the job runner and the model service, with their memory."""
    from dashboard.adapters import job_manager

    manager = job_manager()
    runner_pid, beat = manager.store.runner()
    try:
        service_pid = client.call("system.ping", timeout=5).result.get("pid")
    except UserFacingError:
        service_pid = None
    rows = [("web server (no TensorFlow)", os.getpid(), True),
            ("job runner", runner_pid, manager.runner_alive()),
            ("model service", service_pid, service_pid is not None)]
    return [{"process": name, "pid": pid, "running": "yes" if alive else "no (starts on demand)",
             "memory (MiB)": _memory_mib(pid) if alive else None} for name, pid, alive in rows]
