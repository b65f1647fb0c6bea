"""Small UI pieces shared by the pages.

Anything user-controlled (file, folder and class names, job messages) goes through
:func:`md` before it reaches a Streamlit element that renders Markdown, and through
:func:`html.escape` (see :func:`swatches_html`) before raw HTML; images go through
:func:`show_image`, which never hands ``st.image`` a giant array.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from services import provenance
from services.config import get_settings
from services.errors import UserFacingError
from services.images import DISPLAY_MAX_SIDE, display_copy

if TYPE_CHECKING:
    from services.jobs import JobManager, JobState

STATUS_ICONS = {
    "queued": ":material/schedule:", "running": ":material/progress_activity:",
    "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
    "failed": ":material/error:", "interrupted": ":material/warning:",
}
_MARKDOWN_ACTIVE = re.compile(r"([\\\[\]<>$|])")
"""What turns text into links, images, HTML, LaTeX or colour directives in Streamlit Markdown,
or ends a cell of a Markdown table."""


def md(text: object) -> str:
    """``text`` escaped for Streamlit Markdown: no link, image, HTML, LaTeX or colour directive
    can come out of a user's file or class name (emphasis may, harmlessly), nor a table cell
    end early; newlines become spaces, so a name cannot start a heading or list."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", str(text)).replace("\n", " ")


def swatches_html(items: Iterable[tuple[str, str]]) -> str:
    """Colour swatches (label, ``#rrggbb``) as HTML for ``st.html``; labels are escaped and
    colours that are not plain hex codes are dropped."""
    cells = []
    for label, colour in items:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour or ""):
            continue
        cells.append(
            "<div style='display:inline-block;margin:4px;text-align:center'><div style='width:70px;height:40px;"
            f"background:{colour};border:1px solid #999;border-radius:4px'></div>"
            f"<small>{html.escape(label)}<br>{colour}</small></div>"
        )
    return f"<div>{''.join(cells)}</div>"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Show a :class:`UserFacingError` as an error box instead of a traceback."""
    try:
        yield
    except UserFacingError as error:
        st.error(md(error), icon=":material/error:")


@contextlib.contextmanager
def asking_the_model_service(target=None) -> Iterator[None]:
    """A status line, drawn at once (a spinner appears only after half a second), while a call
    to the model service runs; removed when it returns. ``target``: a column or container."""
    line = (target or st).empty()
    line.caption(":material/hourglass_top: Asking the model service… (the first call starts TensorFlow "
                 "there: a few seconds)")
    try:
        yield
    finally:
        line.empty()


def synthetic_badge(what: str = "synthetic demo data") -> None:
    st.caption(f":orange-badge[:material/science: {what}] generated procedurally; not real tissue.")


def random_weights_badge(meaning: str) -> None:
    """The one caption that says weights were random (untrained); ``meaning``: what that means here."""
    st.caption(f":orange-badge[:material/casino: {provenance.RANDOM_INIT}] {meaning}")


def show_image(pixels: np.ndarray, *, target=None, max_side: int = DISPLAY_MAX_SIDE, **kwargs) -> None:
    """``st.image`` (or ``target.image``) of a display-safe copy of ``pixels``."""
    (target or st).image(display_copy(pixels, max_side), **kwargs)


def job_status_line(state: JobState) -> None:
    """Progress bar, status (``queued, 2 ahead``, ``failed (SIGSEGV)``...) and message of one job;
    a failure's text and, when the worker died, the end of its log."""
    icon = STATUS_ICONS.get(state.status, "")
    elapsed = (state.ended or time.time()) - (state.started or state.created)
    status = getattr(state, "status_text", state.status)
    st.progress(state.progress, text=f"{icon} **{md(status)}** · {md(state.title)} · {elapsed:.0f} s"
                + (f" · {md(state.message)}" if state.message else ""))
    if state.error:
        st.error(md(state.error))
    if getattr(state, "log_tail", None):
        with st.expander("End of the job's log"):
            st.code(state.log_tail, language=None)


def job_stop_button(manager: JobManager, state: JobState, key_prefix: str = "stop", *, recovery: bool = True) -> None:
    """Stop for a queued or running job; with ``recovery``, Retry (and Resume, for kinds that
    resume) for one that failed, stopped or was interrupted (pages with their own pass False)."""
    from services.jobs.kinds import KINDS

    if state.active:
        if st.button("Stop", key=f"{key_prefix}-{state.id}", icon=":material/stop:"):
            manager.stop(state.id)
            st.toast("Stop requested; the job ends at its next step.")
        return
    if not recovery or state.status not in ("failed", "stopped", "interrupted"):
        return
    retry, resume = st.columns(2)
    if retry.button("Retry", key=f"{key_prefix}-retry-{state.id}", icon=":material/replay:",
                    help="Run it again from the start with the same settings"):
        with user_errors():
            manager.retry(state.id)
            st.rerun()
    kind = KINDS.get(state.kind)
    if kind is not None and kind.resumable and resume.button(
            "Resume", key=f"{key_prefix}-resume-{state.id}", icon=":material/play_arrow:",
            help="Continue from where it stopped"):
        with user_errors():
            manager.resume(state.id)
            st.rerun()


def _live_key(job_id: str) -> str:
    return f"live_job:{job_id}"  # shared by every panel of the job: the page reruns once


def mark_live(job_id: str) -> None:
    """Make the job's panel rerun the page once when it sees the job ended, even when the job
    (a fast download) ends before any panel drew it running: call it right after submitting."""
    st.session_state[_live_key(job_id)] = True


def live_job(manager: JobManager, job_id: str, key_prefix: str, *, recovery: bool = True, every: float = 1.0,
             on_end: Callable[[JobState], None] | None = None) -> JobState | None:
    """The one panel of a job a page shows: its status line and Stop (with ``recovery``, Retry /
    Resume), in a fragment that reruns every ``every`` seconds while the job is queued or
    running. When a job the panel saw running ends, ``on_end(state)`` runs and the whole page
    reruns once, so that what the job made appears. Returns the job (None when unknown)."""
    state = manager.get(job_id)
    if state is None:
        return None
    if state.active:
        mark_live(job_id)
    live_key = _live_key(job_id)

    def panel() -> None:
        current = manager.get(job_id)
        if current is None:
            return
        job_status_line(current)
        job_stop_button(manager, current, key_prefix, recovery=recovery)
        if not current.active and st.session_state.pop(live_key, False):
            if on_end is not None:
                on_end(current)
            st.rerun(scope="app")

    st.fragment(panel, run_every=every if state.active else None)()
    return state


def job_failure_banner(manager: JobManager, state: JobState, key_prefix: str = "dismiss") -> None:
    """The error of a failed job, with a button that dismisses it for good (``manager.dismiss``).
    Show it only on the page that started the job."""
    if state.status != "failed" or getattr(state, "dismissed", False):
        return
    text, button = st.columns([12, 1], vertical_alignment="center")
    text.error(f"{md(state.title)}: {md(state.error or 'failed')}", icon=":material/error:")
    if button.button(":material/close:", key=f"{key_prefix}-{state.id}", help="Dismiss this message"):
        manager.dismiss(state.id)
        st.rerun()


def link_to_page(file: str, label: str, icon: str | None = None) -> None:
    """A link to the page ``file`` of the navigation (``"transfer_learning.py"``); the label in
    bold when the page runs outside the app's navigation (a page tested on its own)."""
    from streamlit.errors import StreamlitPageNotFoundError

    from dashboard.pages_registry import page

    try:
        st.page_link(page(file).link, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.markdown(f"**{md(label)}**")


def why_disabled(reason: str | None, target=None) -> None:
    """Beside a button: why it is disabled, as a short caption (nothing when ``reason`` is None)."""
    if reason:
        (target or st).caption(f":material/block: {md(reason)}")


def model_preview_wanted(label: str, key: str) -> bool:
    """Whether a preview that asks the model service (TensorFlow) may run now: always under the
    lab profile; under the cloud profile only after the person turns on ``label`` (opening a
    page never starts TensorFlow on a small box)."""
    if not get_settings().models_on_click:
        return True
    return st.toggle(label, key=key, help="Starts TensorFlow in the model service (a few seconds and a few "
                                          "hundred MB the first time); it stops again after a minute unused.")
