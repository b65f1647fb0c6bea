"""What a button did, said after the rerun it starts.

A handler that ends with ``st.rerun()`` (to redraw lists or pickers with what it created) loses
anything it drew. :func:`flash` keeps the sentence in the session; :func:`show_flashes`, called
where the user is looking (next to the button), draws it once as a status line and a toast.
"""

from __future__ import annotations

import streamlit as st

from dashboard.widgets import md

FLASHES = "_flashes"
ICONS = {"success": ":material/check_circle:", "info": ":material/info:", "warning": ":material/warning:",
         "error": ":material/error:"}


def flash(place: str, text: str, kind: str = "success") -> None:
    """Say ``text`` (plain text; escaped) at ``place`` on the next run; ``kind`` is success,
    info, warning or error."""
    st.session_state.setdefault(FLASHES, []).append((place, kind, str(text)))


def show_flashes(place: str, *, toast: bool = True) -> None:
    """The messages waiting for ``place``, once: a status line here and (``toast``) a toast.

    The messages go into a container that is drawn on every run, message or not: a message that
    comes and goes must not move the elements below it to new places, which Streamlit would draw
    afresh (an expander the user opened would close)."""
    box = st.container()
    waiting = st.session_state.get(FLASHES) or []
    mine = [item for item in waiting if item[0] == place]
    if not mine:
        return
    st.session_state[FLASHES] = [item for item in waiting if item[0] != place]
    for _, kind, text in mine:
        getattr(box, kind)(md(text), icon=ICONS[kind])
        if toast:
            st.toast(md(text), icon=ICONS[kind])


def toast(text: str, kind: str = "success") -> None:
    """Say ``text`` (plain text; escaped) at once as a toast, for a handler that does not rerun
    (its status line, drawn by the same run, is the lasting feedback)."""
    st.toast(md(text), icon=ICONS[kind])
