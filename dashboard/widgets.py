"""Small UI pieces shared by the pages."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import streamlit as st

from services.errors import UserFacingError
from services.jobs import JobManager, JobState

STATUS_ICONS = {
    "queued": ":material/schedule:", "running": ":material/progress_activity:",
    "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
    "failed": ":material/error:", "interrupted": ":material/warning:",
}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Show a :class:`UserFacingError` as an error box instead of a traceback."""
    try:
        yield
    except UserFacingError as error:
        st.error(str(error), icon=":material/error:")


def synthetic_badge(what: str = "synthetic demo data") -> None:
    st.caption(f":orange-badge[:material/science: {what}] generated procedurally; not real tissue.")


def job_status_line(state: JobState) -> None:
    """Progress bar, status and message of one job, with a stop button while it is active."""
    icon = STATUS_ICONS.get(state.status, "")
    elapsed = (state.ended or time.time()) - (state.started or state.created)
    st.progress(state.progress, text=f"{icon} **{state.status}** · {state.title} · {elapsed:.0f} s"
                + (f" · {state.message}" if state.message else ""))
    if state.error:
        st.error(state.error)


def job_stop_button(manager: JobManager, state: JobState, key_prefix: str = "stop") -> None:
    if state.active and st.button("Stop", key=f"{key_prefix}-{state.id}", icon=":material/stop:"):
        manager.stop(state.id)
        st.toast("Stop requested; the job ends at its next step.")
