"""Deleting something a person made: who made it, a Delete button, then a confirmation.

The button checks first whether the signed-in person may (its owner or an administrator; with
sign-in off everybody may, see :mod:`services.access`) and shows the refusal otherwise; the
confirmation runs the service's own delete, which checks again. The outcome is shown after the
rerun by :func:`show_deleted_notice` until a run of the page completes
(:func:`forget_deleted_notice` at its end), so a page that reruns itself once more (to start a
job, say) does not swallow it.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard.auth import current_actor
from dashboard.widgets import md, user_errors
from services.access import Actor, owner_label

NOTICE = "deleted_notice"


def show_deleted_notice() -> None:
    """The message of the delete that a previous run did."""
    message = st.session_state.get(NOTICE)
    if message:
        st.success(md(message), icon=":material/delete:")


def forget_deleted_notice() -> None:
    """At the end of a page: the notice has been seen."""
    st.session_state.pop(NOTICE, None)


def delete_control(label: str, what: str, owner: str | None, key: str, delete: Callable[[Actor], None]) -> None:
    """``Created by ...`` and a ``label`` button that deletes ``what`` (plain text, e.g. "the
    dataset 'x'") with ``delete(actor)`` after a confirmation."""
    actor = current_actor()
    pending = f"delete-pending-{key}"
    st.caption(f"Created by {md(owner_label(owner))}")
    if st.button(label, icon=":material/delete:", key=f"delete-{key}"):
        st.session_state.pop(pending, None)
        with user_errors():
            actor.check_can_delete(owner, what=what)
            st.session_state[pending] = True
    if not st.session_state.get(pending):
        return
    st.warning(f"Delete {md(what)} for good? Its files are removed; this cannot be undone.", icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button("Delete permanently", type="primary", icon=":material/delete_forever:", key=f"delete-yes-{key}"):
        st.session_state.pop(pending, None)
        with user_errors():
            delete(actor)
            st.session_state[NOTICE] = f"Deleted {what}."
            st.rerun()
    elif no.button("Keep it", key=f"delete-no-{key}"):
        st.session_state.pop(pending, None)
        st.rerun()
