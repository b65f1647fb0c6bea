"""Pickers that show what the user just created, and keep their choice.

Streamlit refuses to change a widget's value once the widget exists in the current run
(``StreamlitWidgetAlreadyInstantiatedError``), and a button's handler runs below the picker it
wants to move. So the handler asks with :func:`select_next` ("show this one from the next run
on") and reruns; the page calls :func:`apply_selection` just before it creates the picker, which
is the one moment the value may be set. One pattern for every page that adds something: a
detector model, an imported dataset, a new tissue map.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import streamlit as st

PENDING = "_choices_pending"
"""Session key of {widget key: value the next run selects}."""


def select_next(key: str, value: Any) -> None:
    """Make the picker with widget key ``key`` show ``value`` from the next run on."""
    st.session_state.setdefault(PENDING, {})[key] = value


def apply_selection(key: str, options: Collection | None = None) -> bool:
    """Before the picker ``key`` is created: give it the value a previous run asked for (when
    that value is among ``options``, if given). True when a selection was applied."""
    pending = st.session_state.get(PENDING) or {}
    if key not in pending:
        return False
    value = pending.pop(key)
    if options is not None and value not in options:
        return False
    st.session_state[key] = value
    return True


def keep_valid(key: str, options: Collection) -> None:
    """Before the picker ``key`` (one that needs a value) is created: forget a kept value that is
    not among ``options``, or the empty value it got while there were no options, so the picker
    starts on its first option instead of showing nothing."""
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if isinstance(value, list):
        if any(v not in options for v in value):
            st.session_state[key] = [v for v in value if v in options]
    elif value not in options:
        del st.session_state[key]


def pending_selection(key: str) -> Any:
    """The value :func:`select_next` asked for ``key`` and no picker has taken yet, else None."""
    return (st.session_state.get(PENDING) or {}).get(key)


def job_picker(label: str, jobs: Sequence, key: str, label_of: Callable[[Any], str]) -> str:
    """A picker of ``jobs`` (newest first) whose labels carry their status; returns the chosen id.

    The choice lives in ``key`` (a plain session key, so :func:`select_next` works on it). A
    selectbox keeps showing its old label text when only the labels change, so the widget itself
    is keyed by a digest of the labels: a status change redraws it, keeping the choice."""
    ids = [job.id for job in jobs]
    labels = {job.id: label_of(job) for job in jobs}
    digest = hashlib.blake2b("\n".join(f"{k}={v}" for k, v in labels.items()).encode(), digest_size=6).hexdigest()
    widget_key = f"{key}__{digest}"
    state = st.session_state
    pending = (state.get(PENDING) or {}).pop(key, None)
    if pending in labels:
        state[key] = pending
        state.pop(widget_key, None)  # the picker starts from the pending choice
    selected = state.get(key)
    chosen = st.selectbox(label, ids, index=ids.index(selected) if selected in ids else 0, format_func=labels.get,
                          key=widget_key, on_change=lambda: state.update({key: state[widget_key]}))
    state[key] = chosen
    return chosen
