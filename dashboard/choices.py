"""Pickers that show what the user just created, and keep their choice.

Streamlit refuses to change a widget's value once the widget exists in the current run
(``StreamlitWidgetAlreadyInstantiatedError``), and a button's handler runs below the picker it
wants to move. So the handler asks with :func:`select_next` ("show this one from the next run
on") and reruns; the page calls :func:`apply_selection` just before it creates the picker, which
is the one moment the value may be set. One pattern for every page that adds something: a
detector model, an imported dataset, a new tissue map.
"""

from __future__ import annotations

from collections.abc import Collection
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


def pending_selection(key: str) -> Any:
    """The value :func:`select_next` asked for ``key`` and no picker has taken yet, else None."""
    return (st.session_state.get(PENDING) or {}).get(key)
