"""Process-wide services held with ``st.cache_resource``: one instance per server process,
shared by every browser session, created on first use."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from services import disk_marker, lifetime
from services.access import Actor
from services.config import get_settings
from services.jobs import JobManager
from services.jobs.limits import prewarm_enabled


@st.cache_resource(show_spinner=False)
def _job_manager(jobs_dir: str) -> JobManager:
    return JobManager(jobs_dir)


@st.cache_resource(show_spinner=False)
def _app_lifetime(data_root: str) -> bool:
    lifetime.app_started(Path(data_root))
    lifetime.stop_at_exit(Path(data_root))
    return True


@st.cache_resource(show_spinner=False)
def _root_start(data_root: str) -> disk_marker.RootStart:
    return disk_marker.note_start(Path(data_root))


def root_start() -> disk_marker.RootStart:
    """Whether this server found the data root empty (new or wiped), noted once per server process
    before anything else writes into it (``dashboard/app.py`` asks first)."""
    return _root_start(str(get_settings().data_root))


def app_lifetime() -> None:
    """Once per server process and data root: continue the jobs the last stop of the app
    interrupted, and stop the background processes when this server exits normally."""
    _app_lifetime(str(get_settings().data_root))


class SessionJobs:
    """The job manager as one signed-in person uses it: jobs they submit record them as owner,
    and deleting a job needs its owner or an admin. Everything else is the manager's."""

    def __init__(self, manager: JobManager, actor: Actor):
        self._manager, self._actor = manager, actor

    def __getattr__(self, name: str):
        return getattr(self._manager, name)

    def submit(self, kind: str, title: str, params: dict | None = None, files: dict[str, bytes] | None = None,
               *, owner: str | None = None) -> str:
        return self._manager.submit(kind, title, params, files, owner=owner or self._actor.owner)

    def delete(self, job_id: str) -> None:
        state = self._manager.get(job_id)
        if state is not None:
            self._actor.check_can_delete(state.owner, what=f"the job {state.title!r}")
        self._manager.delete(job_id)


def job_manager() -> SessionJobs:
    """The background-job manager of this data root (jobs run in worker processes), for the
    person using this session."""
    from dashboard.auth import current_actor

    manager = _job_manager(str(get_settings().jobs_dir))
    if prewarm_enabled():
        manager.ensure_runner()  # cheap when it runs: one row read
    return SessionJobs(manager, current_actor())
