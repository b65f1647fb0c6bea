"""Process-wide services held with ``st.cache_resource``: one instance per server process,
shared by every browser session, created on first use."""

from __future__ import annotations

import streamlit as st

from services.config import get_settings
from services.jobs import JobManager


@st.cache_resource(show_spinner=False)
def _job_manager(jobs_dir: str, max_workers: int) -> JobManager:
    return JobManager(jobs_dir, max_workers=max_workers)


def job_manager() -> JobManager:
    """The background-job manager of this server (keyed by the configured jobs directory)."""
    settings = get_settings()
    return _job_manager(str(settings.jobs_dir), settings.max_background_jobs)
