"""Process-wide services held with ``st.cache_resource``: one instance per server process,
shared by every browser session, created on first use."""

from __future__ import annotations

import streamlit as st

from services.config import get_settings
from services.jobs import JobManager


@st.cache_resource(show_spinner=False)
def _job_manager(jobs_dir: str) -> JobManager:
    return JobManager(jobs_dir)


def job_manager() -> JobManager:
    """The background-job manager of this data root (jobs run in worker processes)."""
    return _job_manager(str(get_settings().jobs_dir))
