"""Shared pieces for pages that talk to the model service and the job runner."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from collections.abc import Iterator

import pandas as pd
import streamlit as st

from services import processes
from services.config import get_settings
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


def device_table(devices: list[dict]) -> pd.DataFrame:
    """TensorFlow's devices as the page lists them; a CPU has no memory of its own in TensorFlow's
    answer (None): it uses the host's, which the table says instead of "None"."""
    return pd.DataFrame([{"kind": d["kind"], "name": d["name"],
                          "memory (MiB)": "the host's (not reserved)" if d.get("memory_mb") is None
                          else f"{d['memory_mb']:,}"} for d in devices], columns=["kind", "name", "memory (MiB)"])


@st.cache_data(ttl=60, show_spinner="Measuring disk use…")
def data_root_usage(data_root: str) -> list[dict]:
    """Disk use per data-root folder, walked at most once a minute (a dataset folder can hold
    100,000 files: not on every rerun)."""
    from services import storage

    return storage.data_root_usage(Path(data_root))


def app_processes() -> tuple[list[dict], str]:
    """Every process of the app on this data root (this web server, the launcher, the
    remote-logging endpoint, the job runner, the warm worker, job workers, the model service)
    with its memory, and a sentence with their sum. The runner and the model service are listed
    also when they are not running (they start on demand)."""
    from dashboard.adapters import job_manager

    jobs = {state.pid: state.title for state in job_manager().store.running()}
    usage = processes.app_usage(get_settings().data_root, os.getpid())
    rows = [{"process": row.role + (f" ({jobs[row.pid]})" if row.pid in jobs else ""), "pid": row.pid,
             "memory (MiB)": None if row.bytes is None else round(row.bytes / 2**20, 1), "measured as": row.measure}
            for row in usage]
    for role in (processes.RUNNER, processes.MODEL_SERVICE):
        if all(row.role != role for row in usage):
            rows.append({"process": f"{role}: not running (starts on demand)", "pid": None, "memory (MiB)": None,
                         "measured as": None})
    total = sum(row.bytes or 0 for row in usage) / 2**20
    rss = any(row.measure == processes.RSS for row in usage)
    unread = sum(row.bytes is None for row in usage)
    missing = f"; the memory of {unread} could not be read and is not counted" if unread else ""
    return rows, f"{len(usage)} processes, {total:,.0f} MiB in all ({_RSS_NOTE if rss else _PSS_NOTE}{missing})."


_PSS_NOTE = "PSS: a page shared between processes is split among them, so the sum counts it once"
_RSS_NOTE = "RSS where PSS cannot be read: a shared page counts in every process, so the sum overstates"
